"""Writing our cookies.

The values are ours (``secrets.token_urlsafe``: letters, digits, ``-`` and ``_``), so
the ``Set-Cookie`` header is written directly rather than through ``http.cookies``,
whose morsels cost more than the rest of a small page.
"""

from __future__ import annotations

import re

from aiohttp import web

_SAFE_VALUE = re.compile(r"[A-Za-z0-9_-]*")


def set_cookie(
    response: web.StreamResponse,
    name: str,
    value: str,
    *,
    secure: bool,
    max_age: int | None = None,
) -> None:
    """An HttpOnly, SameSite=Lax cookie for the whole site (``Secure`` when asked)."""
    if not _SAFE_VALUE.fullmatch(value):
        raise ValueError("cookie values are URL-safe tokens")
    parts = [f"{name}={value}", "HttpOnly", "Path=/", "SameSite=Lax"]
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    if secure:
        parts.append("Secure")
    response.headers.add("Set-Cookie", "; ".join(parts))


def delete_cookie(response: web.StreamResponse, name: str, *, secure: bool) -> None:
    set_cookie(response, name, "", secure=secure, max_age=0)
