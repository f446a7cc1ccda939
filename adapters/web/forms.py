"""Reading what a browser posted, and who posted it."""

from __future__ import annotations

from aiohttp import web

#: Fixed messages shown after a redirect (``?done=key``): never text from the URL.
NOTICES = {
    "logged_out": "You are logged out.",
    "deleted": "Your account and everything in it have been deleted.",
    "unlinked": "The identity is unlinked. It chats as a guest again; your history stays here.",
    "not_linked": "That identity is not linked to your account.",
    "persona": "Your persona is saved. It follows you on every linked platform.",
    "welcome": "Welcome! Your account is ready.",
}


def notice(request: web.Request) -> str | None:
    return NOTICES.get(request.query.get("done", ""))


async def form_fields(request: web.Request) -> dict[str, str]:
    """The posted text fields (uploads are ignored: no form here takes one)."""
    form = await request.post()
    return {name: value for name, value in form.items() if isinstance(value, str)}


def client_address(request: web.Request) -> str:
    """The peer's address, for login throttling. Behind a reverse proxy this is the
    proxy's address unless the proxy's forwarded headers are applied in front of us."""
    return request.remote or "unknown"


def see_other(location: str) -> web.Response:
    """A 303 redirect as a response, so cookies can be set on it."""
    return web.Response(status=303, headers={"Location": location})
