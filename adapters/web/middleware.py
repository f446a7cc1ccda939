"""What wraps every request: the central error handler, security headers, metrics.

The error middleware is the one place an exception becomes a response. Users get a
short page (or JSON for our scripts) in plain words, never a traceback; unexpected
exceptions are logged with their traceback for the operator. It also refuses a body
that cannot be read as what it says it is (an unknown charset, a broken form) before
anything reads it: see :func:`~adapters.web.forms.check_body`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import MutableMapping

from aiohttp import web
from aiohttp.typedefs import Handler

from adapters.web.forms import check_body
from adapters.web.keys import METRICS, OPTIONS
from adapters.web.render import render_page
from adapters.web.replies import json_error, wants_json
from bot.errors import StoreUnavailable

log = logging.getLogger(__name__)

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
_KEPT_HEADERS = ("Retry-After", "Allow", "WWW-Authenticate")

ERROR_TEXT = {
    400: ("Bad request", "That request didn't make sense to us."),
    401: ("Please log in", "You need to log in to do that."),
    403: (
        "Not allowed",
        "That form has expired or did not come from this site. Go back, reload the page "
        "and try again.",
    ),
    404: ("Not found", "There is no page here."),
    405: ("Not allowed", "This page doesn't accept that kind of request."),
    413: (
        "Too large",
        "That was more than this site accepts in one request. Please send something shorter.",
    ),
    415: (
        "Unreadable request",
        "This site could not read what was sent: send a form or JSON, in UTF-8.",
    ),
    429: ("Slow down", "Too many attempts. Please wait a little and try again."),
    500: (
        "Something went wrong",
        "Something went wrong on our side. It has been logged; please try again.",
    ),
    503: (
        "Temporarily unavailable",
        "The site can't reach its storage right now. Please try again in a moment.",
    ),
}


def error_response(
    request: web.Request, status: int, *, headers: dict[str, str] | None = None
) -> web.Response:
    title, message = ERROR_TEXT.get(status, ERROR_TEXT[500 if status >= 500 else 400])
    if wants_json(request):
        response = json_error(status, message)
    else:
        response = render_page(request, "error.html", status=status, title=title, message=message)
    response.headers.update(headers or {})
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        if request.match_info.http_exception is None:
            await check_body(request)
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise  # redirects, and errors that already speak JSON to our scripts
        kept = {name: exc.headers[name] for name in _KEPT_HEADERS if name in exc.headers}
        return error_response(request, exc.status, headers=kept)
    except web.RequestPayloadError:
        # The body could not be received as sent (a broken gzip stream, for one).
        log.info("unreadable request body on %s %s", request.method, request.path)
        response = error_response(request, 400)
        response.force_close()  # the rest of the body cannot be read past either
        return response
    except ConnectionResetError:
        # The client went away while we read its request: nobody to answer, no error.
        log.debug("client disconnected during %s %s", request.method, request.path)
        return web.Response(status=400)
    except StoreUnavailable as exc:
        log.warning("store unavailable on %s %s: %s", request.method, request.path, exc)
        return error_response(request, 503, headers={"Retry-After": "5"})
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(request, 500)


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Counts requests by route pattern (not by raw path: bounded label values)."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        request.app[METRICS].http_request(
            request.method, route, status, time.perf_counter() - started
        )


def add_security_headers(request: web.Request, headers: MutableMapping[str, str]) -> None:
    """Put the security headers on a response (a handler that streams, and so prepares
    its response itself, calls this before ``prepare``)."""
    for name, value in SECURITY_HEADERS.items():
        if name not in headers:
            headers[name] = value
    if request.app[OPTIONS].secure_cookies and HSTS[0] not in headers:
        headers[HSTS[0]] = HSTS[1]


@web.middleware
async def security_headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The outermost middleware: every response leaving the app gets the headers.

    (A middleware rather than ``on_response_prepare``: the signal costs about as much
    as rendering a small page.)"""
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # redirects raised as exceptions
        add_security_headers(request, exc.headers)
        raise
    if not response.prepared:
        add_security_headers(request, response.headers)
    return response
