"""What wraps every request: the front, :class:`Front`, around each route's handler.

In order, outermost first: the slow-client deadlines (:mod:`adapters.web.deadlines`),
the client's address behind trusted proxies (:mod:`adapters.web.proxies`), the security
headers (:mod:`adapters.web.headers`), metrics, the central error handler, the body
check (:func:`~adapters.web.forms.check_body`) and the CSRF check
(:mod:`adapters.web.csrf`). They are steps of one wrapper rather than six middlewares,
and the wrapper is put around each route's handler once, when ``create_app`` registers
the route, rather than being an aiohttp middleware: aiohttp runs every middleware as a
coroutine of its own and, with any middleware at all, builds a handler chain per
request; without one it calls the handler directly (issue 19: the front as six
middlewares cost as much as the whole login page, and even one costs a few percent).

The error handler is the one place an exception becomes a response. Users get a short
page (or JSON for our scripts) in plain words, never a traceback; unexpected exceptions
are logged with their traceback for the operator. A body that cannot be read as what it
says it is (an unknown charset, a broken form) is refused before anything reads it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from adapters.web.csrf import check_csrf
from adapters.web.deadlines import HeadDeadline, cut_if_unread
from adapters.web.forms import check_body
from adapters.web.headers import add_security_headers, security_headers
from adapters.web.metrics import PrometheusMetrics
from adapters.web.proxies import TrustedProxies, resolve_client
from adapters.web.render import Page, render_page
from adapters.web.replies import json_error, wants_json
from bot.errors import StoreUnavailable

__all__ = ["Front", "add_security_headers", "error_response"]

log = logging.getLogger(__name__)

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


class Front:
    """Wraps route handlers in the front (see the module's docstring for its steps).

    ``metrics`` counts every request by route pattern; ``proxies`` (when any are
    trusted) give the client's address; ``secure`` adds HSTS to the security headers.
    ``create_app`` wraps every route's handler once, as it registers the route."""

    def __init__(
        self,
        *,
        metrics: PrometheusMetrics,
        body_timeout: float,
        proxies: TrustedProxies | None = None,
        secure: bool = False,
    ):
        self._metrics = metrics
        self._body_timeout = body_timeout
        self._proxies = proxies or None
        self._headers = security_headers(secure=secure)

    def wrap(
        self, handler: Handler, *, label: str | None = None, unmatched: bool = False
    ) -> Handler:
        """``handler`` behind the front. Its metrics label is the route's pattern
        (looked up on its first request) unless ``label`` is given. ``unmatched`` is for
        the catch-all route that answers 404 and 405: no body or CSRF check there, as
        before any route is chosen. The wrapper keeps the handler's attributes (its
        CSRF marks)."""
        headers_to_add = self._headers
        observe = self._metrics.http_observer
        clock = time.perf_counter
        proxies = self._proxies
        body_timeout = self._body_timeout
        checks = not unmatched
        route_label = label
        call_later = None

        @functools.wraps(handler)
        async def front(request: web.Request) -> web.StreamResponse:
            nonlocal route_label, call_later
            # The slow-client deadlines (request_started, inlined: it runs for every
            # request).
            transport = request.transport
            connection = transport.get_protocol() if transport is not None else None
            watch = connection if type(connection) is HeadDeadline else None
            if watch is not None:
                watch.head_received()
            timer = None
            if request.body_exists and not request.content.is_eof():
                if call_later is None:
                    call_later = asyncio.get_running_loop().call_later
                timer = call_later(body_timeout, cut_if_unread, request)
            try:
                if proxies:
                    request = resolve_client(request, proxies)
                began = clock()
                status = 500
                try:
                    try:
                        if checks and request.method != "GET":
                            await check_body(request)
                            await check_csrf(request)
                        response = await handler(request)
                    except web.HTTPException as exc:
                        if exc.status < 400 or exc.content_type == "application/json":
                            raise  # redirects, and errors that already speak JSON
                        response = _answer_http_error(request, exc)
                    except Exception as exc:
                        response = _answer_error(request, exc)
                    status = response.status
                except web.HTTPException as exc:  # redirects raised as exceptions
                    status = exc.status
                    for name, value in headers_to_add:
                        exc.headers.setdefault(name, value)
                    raise
                finally:
                    if route_label is None:
                        route_label = request.match_info.route.resource.canonical  # type: ignore[union-attr]
                    observe(request.method, route_label, status, clock() - began)
                if not response.prepared and type(response) is not Page:  # (pages have them)
                    headers = response.headers
                    for name, value in headers_to_add:
                        headers.setdefault(name, value)
                return response
            finally:
                if timer is not None:
                    timer.cancel()
                if watch is not None:
                    watch.request_finished()

        return front


def _answer_http_error(request: web.Request, exc: web.HTTPException) -> web.Response:
    """Our page for an HTTP error a handler or a check raised."""
    kept = {name: exc.headers[name] for name in _KEPT_HEADERS if name in exc.headers}
    return error_response(request, exc.status, headers=kept)


def _answer_error(request: web.Request, exc: Exception) -> web.Response:
    """The response to an exception a handler (or a check) raised, other than an
    ``HTTPException``; called while the exception is being handled."""
    if isinstance(exc, web.RequestPayloadError):
        # The body could not be received as sent (a broken gzip stream, for one).
        log.info("unreadable request body on %s %s", request.method, request.path)
        response = error_response(request, 400)
        response.force_close()  # the rest of the body cannot be read past either
        return response
    if isinstance(exc, ConnectionResetError):
        # The client went away while we read its request: nobody to answer, no error.
        log.debug("client disconnected during %s %s", request.method, request.path)
        return web.Response(status=400)
    if isinstance(exc, StoreUnavailable):
        log.warning("store unavailable on %s %s: %s", request.method, request.path, exc)
        return error_response(request, 503, headers={"Retry-After": "5"})
    log.exception("unhandled error on %s %s", request.method, request.path)
    return error_response(request, 500)
