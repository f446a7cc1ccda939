"""The container's plain environment: the app's settings that are not secrets."""

from __future__ import annotations

from .service import WEB_PORT


def container_environment(
    *, table_name: str, region: str, public_url: str, trusted_proxies: str
) -> dict[str, str]:
    """``PERSONABRIDGE_*`` settings for a task behind the load balancer.

    ``trusted_proxies`` is the VPC's address range: the load balancer's nodes take
    addresses in its subnets, and only they reach the tasks (their security group), so
    the ``X-Forwarded-For`` they append names the real client (login and sign-up
    throttles key on it).

    Secure cookies follow the public URL's scheme: browsers drop ``Secure`` cookies over
    plain HTTP, so they are on exactly when users reach the app over HTTPS. Telegram runs
    as a webhook: several tasks polling the same bot would take updates from each other.
    """
    return {
        "PERSONABRIDGE_STORE__KIND": "dynamodb",
        "PERSONABRIDGE_STORE__DYNAMODB_TABLE": table_name,
        "PERSONABRIDGE_STORE__DYNAMODB_REGION": region,
        "PERSONABRIDGE_WEB__HOST": "0.0.0.0",  # noqa: S104 (inside the container)
        "PERSONABRIDGE_WEB__PORT": str(WEB_PORT),
        "PERSONABRIDGE_WEB__PUBLIC_URL": public_url,
        "PERSONABRIDGE_WEB__SECURE_COOKIES": str(public_url.startswith("https://")).lower(),
        "PERSONABRIDGE_WEB__TRUSTED_PROXIES": trusted_proxies,
        "PERSONABRIDGE_TELEGRAM__MODE": "webhook",
    }
