"""The security headers every response carries, built once.

:class:`~adapters.web.middleware.Front` puts them on every response that
leaves the app without them; pages (:mod:`adapters.web.render`) are built with them
already, from :func:`page_headers`, which costs one copy instead of a lookup and an
insert per header per request.
"""

from __future__ import annotations

from collections.abc import MutableMapping

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from adapters.web.keys import OPTIONS

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "media-src 'self'",  # replies read aloud (/chat/voice/...)
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    # the microphone for the chat's voice notes (this site only)
    "Permissions-Policy": "camera=(), microphone=(self), geolocation=(), payment=()",
}
HSTS = ("Strict-Transport-Security", "max-age=31536000")
#: Pages carry a CSRF token or an account's data: never stored by a cache.
HTML_HEADERS = {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}


def security_headers(*, secure: bool) -> tuple[tuple[str, str], ...]:
    """The security headers, with HSTS when the site is served over HTTPS."""
    return (*SECURITY_HEADERS.items(), *([HSTS] if secure else []))


def add_security_headers(request: web.Request, headers: MutableMapping[str, str]) -> None:
    """Put the security headers on a response (a handler that streams, and so prepares
    its response itself, calls this before ``prepare``); a header the response already
    has is left as it is."""
    for name, value in security_headers(secure=request.app[OPTIONS].secure_cookies):
        if name not in headers:
            headers[name] = value


def page_headers(*, secure: bool) -> CIMultiDictProxy[str]:
    """The headers of an HTML page (``web.Response`` copies them)."""
    return CIMultiDictProxy(CIMultiDict([*HTML_HEADERS.items(), *security_headers(secure=secure)]))
