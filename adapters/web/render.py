"""Pages from jinja2 templates, always autoescaped.

Every value a template prints is HTML-escaped unless a template says otherwise (none
does): usernames, display names from other platforms, persona cards and chat text are
all data a stranger may have written.
"""

from __future__ import annotations

from collections.abc import Hashable
from datetime import UTC, datetime
from typing import Any

import jinja2
from aiohttp import web

from adapters.web.cookies import set_cookie
from adapters.web.csrf import anonymous_form_token, csrf_token, set_csrf_cookie
from adapters.web.headers import page_headers
from adapters.web.keys import ENGINE, OPTIONS, PAGE_CACHE, TEMPLATES
from adapters.web.pagecache import CSRF_PLACEHOLDER
from adapters.web.session import current_account

#: A page's headers (its type, no-store, the security headers), by ``secure_cookies``.
PAGE_HEADERS = {secure: page_headers(secure=secure) for secure in (False, True)}
_PLACEHOLDER = CSRF_PLACEHOLDER.encode()


class Page(web.Response):
    """An HTML page, built with every header of :data:`PAGE_HEADERS` (the security
    headers among them): the front middleware has none to add."""


def build_templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("adapters.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        # Templates ship with the code: checking their files for changes costs a stat()
        # per template per request, a third of the time of a page.
        auto_reload=False,
    )
    env.filters["when"] = _when
    return env


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


async def render(
    request: web.Request, template: str, *, status: int = 200, **context: Any
) -> web.Response:
    """A page for the current visitor (with their account and a CSRF token)."""
    account = await current_account(request)
    token = await csrf_token(request)
    response = render_page(
        request, template, status=status, account=account, csrf_token=token, **context
    )
    set_csrf_cookie(request, response)
    return response


def render_anonymous(
    request: web.Request,
    template: str,
    *,
    cache_key: Hashable,
    status: int = 200,
    **context: Any,
) -> web.Response:
    """A page for a visitor who is not logged in (the caller has checked), from the
    page cache when it can be (a plain function: nothing in it waits).

    ``cache_key`` must hold everything of ``context`` that varies between requests;
    the CSRF token is put in per request. Pages show persona cards, which can be
    reloaded while running: their version is part of the key."""
    app = request.app
    key = (template, status, cache_key, app[ENGINE].personas.version)
    cache = app[PAGE_CACHE]
    parts = cache.get(key)
    if parts is None:
        html = (
            app[TEMPLATES]
            .get_template(template)
            .render(account=None, csrf_token=CSRF_PLACEHOLDER, **context)
        )
        parts = tuple(html.encode().split(_PLACEHOLDER))
        cache.put(key, parts)
    token, new_cookie = anonymous_form_token(request)
    options = app[OPTIONS]
    response = Page(
        body=token.encode().join(parts), status=status, headers=PAGE_HEADERS[options.secure_cookies]
    )
    if new_cookie is not None:
        set_cookie(response, options.csrf_cookie, new_cookie, secure=options.secure_cookies)
    return response


def render_page(
    request: web.Request,
    template: str,
    *,
    status: int = 200,
    account: object = None,
    csrf_token: str = "",
    **context: Any,
) -> web.Response:
    """A page from the given context only: error pages use it, as they must work when
    the store does not."""
    html = (
        request.app[TEMPLATES]
        .get_template(template)
        .render(account=account, csrf_token=csrf_token, **context)
    )
    return Page(
        body=html.encode(), status=status, headers=PAGE_HEADERS[request.app[OPTIONS].secure_cookies]
    )
