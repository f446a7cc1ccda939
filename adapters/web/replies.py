"""Small helpers for answering: JSON or HTML, and errors for scripts."""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web


def wants_json(request: web.Request) -> bool:
    """Whether the client is our script (fetch) rather than a page load."""
    accept = request.headers.get("Accept", "")
    if "text/html" in accept:
        return False
    return (
        "application/json" in accept
        or "text/event-stream" in accept
        or request.content_type == "application/json"
    )


def json_error(status: int, message: str, **extra: str) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


def same_site_referer_path(request: web.Request) -> str | None:
    """The path of the Referer when it is a page of this site, else None."""
    referer = request.headers.get("Referer")
    if not referer:
        return None
    parts = urlsplit(referer)
    if parts.netloc.lower() != request.host.lower():
        return None
    return parts.path + (f"?{parts.query}" if parts.query else "")
