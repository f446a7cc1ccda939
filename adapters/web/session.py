"""The browser's side of a web session: the cookie, and who the request is from.

The account is looked up lazily, once per request, so pages that do not care (static
files, health checks, contributed webhooks) cost no store call.
"""

from __future__ import annotations

from aiohttp import web

from adapters.web.cookies import cookie_value, delete_cookie, set_cookie
from adapters.web.keys import ACCOUNT, ACCOUNTS, OPTIONS
from adapters.web.redirects import login_url
from auth import NewSession
from auth.devices import DEVICE_TTL
from bot.store.base import Account


def session_token(request: web.Request) -> str | None:
    return cookie_value(request, request.app[OPTIONS].session_cookie) or None


async def current_account(request: web.Request) -> Account | None:
    """The logged-in account, or None (no cookie, or an expired or revoked session)."""
    token = session_token(request)
    if token is None:
        return None  # no session cookie: nobody, and nothing to look up
    if ACCOUNT in request:
        return request[ACCOUNT]
    account = await request.app[ACCOUNTS].session_account(token)
    request[ACCOUNT] = account
    return account


async def require_account(request: web.Request) -> Account:
    """The logged-in account; otherwise the browser goes to the login page and comes
    back here afterwards."""
    account = await current_account(request)
    if account is None:
        raise web.HTTPSeeOther(login_url(request.path_qs))
    return account


def set_session_cookie(
    request: web.Request, response: web.StreamResponse, session: NewSession
) -> None:
    options = request.app[OPTIONS]
    max_age = int(request.app[ACCOUNTS].sessions.ttl)
    set_cookie(
        response,
        options.session_cookie,
        session.token,
        secure=options.secure_cookies,
        max_age=max_age,
    )


def clear_session_cookie(request: web.Request, response: web.StreamResponse) -> None:
    options = request.app[OPTIONS]
    delete_cookie(response, options.session_cookie, secure=options.secure_cookies)


def device_token(request: web.Request) -> str | None:
    """The browser's device token (see :mod:`auth.devices`), if it has one."""
    return cookie_value(request, request.app[OPTIONS].device_cookie) or None


def set_device_cookie(request: web.Request, response: web.StreamResponse, account: Account) -> None:
    """Remember that this browser logged in to ``account`` (lets it past a lock-out)."""
    options = request.app[OPTIONS]
    accounts = request.app[ACCOUNTS]
    set_cookie(
        response,
        options.device_cookie,
        accounts.device_token(account),
        secure=options.secure_cookies,
        max_age=int(DEVICE_TTL),
    )
