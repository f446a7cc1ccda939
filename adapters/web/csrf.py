"""Cross-site request forgery protection for every state-changing request.

Every POST, PUT, PATCH and DELETE must carry a token, in the form field
``csrf_token`` or the ``X-CSRF-Token`` header (for ``fetch``); otherwise 403.

* Logged in, the token is derived from the session token (an HMAC keyed with it), so
  it is tied to the session, changes when the session does, and needs no storage.
* Anonymous forms (log in, sign up) use a double-submit cookie: a random value in an
  HttpOnly cookie, with the token derived from it in the form. A cross-site page can
  neither read the cookie nor the token.

On top, a request whose ``Origin`` header names another host is refused (as is one
without ``Origin`` whose ``Referer`` names another host: older browsers send no
``Origin`` on same-origin form posts, but a ``Referer`` from elsewhere is never ours),
and the session cookie is ``SameSite=Lax``. A form posted with a session that has expired
since the page was shown sends the browser to the login page rather than a bare 403.

Routes contributed by other adapters (webhooks, signed with their own scheme) opt out
by saying so: ``WebRoute(..., csrf_exempt=True)`` (:mod:`bot.adapter`); ``create_app``
marks their handlers with :func:`csrf_exempt`, which this check reads.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
from collections import deque
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit

from aiohttp import web

from adapters.web.cookies import cookie_value, set_cookie
from adapters.web.keys import NEW_CSRF_COOKIE, OPTIONS
from adapters.web.redirects import login_url
from adapters.web.replies import same_site_referer_path, wants_json
from adapters.web.session import current_account, session_token

CSRF_EXEMPT_ATTR = "csrf_exempt"
#: Marks the anonymous forms (log in, sign up): they also accept the anonymous token when
#: a session is live, so a login form left open in a second tab still works.
CSRF_ANONYMOUS_ATTR = "csrf_anonymous"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
_MAX_TOKEN = 128
#: An anonymous CSRF cookie we could have set (``secrets.token_urlsafe``). Other values
#: (also bytes that are not UTF-8, which arrive as unencodable surrogates) are ignored.
_COOKIE_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,128}")

F = TypeVar("F", bound=Callable[..., object])


def csrf_exempt(handler: F) -> F:
    """Mark a route handler as exempt from the CSRF check (it authenticates its
    requests another way, such as a signature or a shared secret)."""
    setattr(handler, CSRF_EXEMPT_ATTR, True)
    return handler


def csrf_anonymous(handler: F) -> F:
    """Mark the handler of an anonymous form (see :data:`CSRF_ANONYMOUS_ATTR`)."""
    setattr(handler, CSRF_ANONYMOUS_ATTR, True)
    return handler


def _derive(seed: str) -> str:
    # A hash of the secret seed, personalised so it can never equal another hash made
    # of the same secret (the store keeps sha256(session token)). BLAKE2 is used for
    # its speed: this runs for every page.
    return hashlib.blake2b(seed.encode(), digest_size=32, person=b"pb-csrf-v1").hexdigest()


async def _seed(request: web.Request, *, mint: bool, anonymous: bool = False) -> str | None:
    """The secret the request's token derives from: the session token when the
    session is live (unless ``anonymous``), else the anonymous CSRF cookie (minted
    when ``mint``)."""
    if not anonymous and await current_account(request) is not None:
        return session_token(request)
    if NEW_CSRF_COOKIE in request:
        return request[NEW_CSRF_COOKIE]
    cookie = cookie_value(request, request.app[OPTIONS].csrf_cookie)
    if cookie and _COOKIE_SHAPE.fullmatch(cookie):
        return cookie
    if not mint:
        return None
    request[NEW_CSRF_COOKIE] = value = _NEW_COOKIES.take()
    return value


async def csrf_token(request: web.Request) -> str:
    """The token to put into this page's forms (minting the anonymous cookie if needed)."""
    seed = await _seed(request, mint=True)
    assert seed is not None
    return _derive(seed)


def set_csrf_cookie(request: web.Request, response: web.StreamResponse) -> None:
    """Send the anonymous cookie if one was minted for this request's page."""
    value = request.get(NEW_CSRF_COOKIE)
    if value is not None:
        options = request.app[OPTIONS]
        set_cookie(response, options.csrf_cookie, value, secure=options.secure_cookies)


def anonymous_form_token(request: web.Request) -> tuple[str, str | None]:
    """For a page shown to a visitor known not to be logged in (the anonymous pages
    check that first): the token for its forms, and the anonymous cookie to set with
    it when the browser sent none of ours (None when it did).

    The same token :func:`csrf_token` gives such a visitor, without its steps for
    logged-in visitors: the login page is what every visitor meets first."""
    options = request.app[OPTIONS]
    cookie = cookie_value(request, options.csrf_cookie)
    if cookie and _COOKIE_SHAPE.fullmatch(cookie):
        return _derive(cookie), None
    minted = _NEW_COOKIES.take()
    return _derive(minted), minted


class _CookiePool:
    """New anonymous cookie values, as ``secrets.token_urlsafe(32)`` makes them, drawn
    from the OS's random source a batch at a time: one ``getrandom`` call per visitor
    cost more than the rest of the login page (3 µs on this machine's VM). Each value
    is handed out once (``deque.popleft`` is atomic); a forked child starts with an
    empty pool, so no two processes ever share a value."""

    def __init__(self, batch: int = 64) -> None:
        self._batch = batch
        self._values: deque[str] = deque()
        os.register_at_fork(after_in_child=self._values.clear)

    def take(self) -> str:
        try:
            return self._values.popleft()
        except IndexError:
            randomness = os.urandom(32 * self._batch)
            self._values.extend(
                base64.urlsafe_b64encode(randomness[i : i + 32]).rstrip(b"=").decode("ascii")
                for i in range(0, len(randomness), 32)
            )
            return self._values.popleft()


_NEW_COOKIES = _CookiePool()


def _foreign_origin(request: web.Request) -> bool:
    """Whether the browser says the request comes from a page of another site."""
    origin = request.headers.get("Origin")
    if origin is None:
        origin = request.headers.get("Referer")
        if not origin:
            return False  # neither header (privacy settings strip them): the token decides
    if origin == "null":
        return True
    try:
        netloc = urlsplit(origin).netloc
    except ValueError:  # not a URL at all
        return True
    return netloc.lower() != request.host.lower()


def _same(sent: str, expected: str) -> bool:
    """Constant-time comparison of what was sent with the expected token; as bytes,
    since ``hmac.compare_digest`` raises on ``str`` with non-ASCII characters."""
    return hmac.compare_digest(sent.encode("utf-8", "surrogateescape"), expected.encode())


async def _sent_token(request: web.Request) -> str | None:
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.content_type in _FORM_TYPES:
        value = (await request.post()).get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    return sent


async def check_csrf(request: web.Request) -> None:
    """Refuse a state-changing request without the right token (403, or a redirect to
    the login page when the session it was meant for has ended). Called for every
    request by :class:`~adapters.web.middleware.Front`; safe methods, requests
    that matched no route, and exempt routes pass."""
    if request.method in SAFE_METHODS or request.match_info.http_exception is not None:
        return
    if getattr(request.match_info.handler, CSRF_EXEMPT_ATTR, False):
        return
    if _foreign_origin(request):
        raise web.HTTPForbidden(reason="cross-site request refused")
    sent = await _sent_token(request)
    if sent and len(sent) <= _MAX_TOKEN:
        seeds = [await _seed(request, mint=False)]
        if getattr(request.match_info.handler, CSRF_ANONYMOUS_ATTR, False):
            seeds.append(await _seed(request, mint=False, anonymous=True))
        if any(seed and _same(sent, _derive(seed)) for seed in seeds):
            return
    if session_token(request) is not None and await current_account(request) is None:
        # The page was shown to a session that has since expired or was logged out.
        back = login_url(same_site_referer_path(request) or "/account")
        if wants_json(request):
            raise web.HTTPUnauthorized(
                text=json.dumps({"error": "Your session has expired.", "login": back}),
                content_type="application/json",
            )
        raise web.HTTPSeeOther(back)
    raise web.HTTPForbidden(reason="missing or wrong CSRF token")
