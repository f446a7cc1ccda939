"""The account page: linked identities, link codes, persona, export, delete."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from adapters.web.forms import client_address, form_fields, notice, see_other
from adapters.web.keys import ACCOUNTS, ENGINE, OPTIONS
from adapters.web.redirects import safe_next
from adapters.web.render import render
from adapters.web.session import (
    clear_session_cookie,
    device_token,
    require_account,
    session_token,
    set_device_cookie,
    set_session_cookie,
)
from auth import AuthError, LoginFailed, LoginThrottled
from bot import userpersona
from bot.errors import UnknownPersona
from bot.linking import LINK_CODE_TTL
from bot.messages import UserPersona, account_owner
from bot.store.base import Account

routes = web.RouteTableDef()

#: Where ``/link CODE`` can be sent, as shown on the account page.
LINK_PLACES = (
    ("Telegram", "a private message to the bot"),
    ("Discord", "a direct message to the bot, or its /link slash command"),
    ("Terminal", "personabridge chat"),
)


async def _page(
    request: web.Request,
    account: Account,
    *,
    status: int = 200,
    link_code: str | None = None,
    error: str | None = None,
    me: UserPersona | None = None,
) -> web.Response:
    engine = request.app[ENGINE]
    options = request.app[OPTIONS]
    persona = await engine.active_persona(account_owner(account.id))
    me = me if me is not None else await engine.user_persona(account_owner(account.id))
    telegram_link = (
        f"https://t.me/{options.telegram_bot_username}?start=link-{link_code}"
        if link_code and options.telegram_bot_username
        else None
    )
    return await render(
        request,
        "account.html",
        status=status,
        identities=await request.app[ACCOUNTS].identities(account.id),
        notices=await request.app[ACCOUNTS].notices_of(account.id),
        personas=list(engine.personas),
        current_persona=persona,
        link_code=link_code,
        link_minutes=int(LINK_CODE_TTL // 60),
        link_places=LINK_PLACES,
        telegram_link=telegram_link,
        me=me,
        me_limits=(userpersona.MAX_NAME_CHARS, userpersona.MAX_DESCRIPTION_CHARS),
        error=error,
        notice=notice(request),
    )


@routes.get("/account", name="account")
async def account_page(request: web.Request) -> web.Response:
    return await _page(request, await require_account(request))


@routes.post("/account/link-code")
async def create_link_code(request: web.Request) -> web.Response:
    account = await require_account(request)
    code = await request.app[ACCOUNTS].create_link_code(account.id)
    # Shown in this response only (never in a URL, never stored unhashed).
    return await _page(request, account, link_code=code)


@routes.post("/account/unlink")
async def unlink(request: web.Request) -> web.Response:
    account = await require_account(request)
    form = await form_fields(request)
    done = await request.app[ACCOUNTS].unlink(
        account.id, form.get("platform", ""), form.get("user_id", "")
    )
    return see_other("/account?done=" + ("unlinked" if done else "not_linked"))


@routes.post("/account/persona")
async def choose_persona(request: web.Request) -> web.Response:
    account = await require_account(request)
    form = await form_fields(request)
    try:
        await request.app[ENGINE].set_persona(account_owner(account.id), form.get("persona", ""))
    except UnknownPersona:
        return await _page(request, account, status=400, error="There is no such persona.")
    return see_other(safe_next(form.get("next"), "/account?done=persona"))


@routes.post("/account/me")
async def about_me(request: web.Request) -> web.Response:
    """Who the user is to every persona: the name ``{{user}}`` stands for, and a short
    description for the prompt. Empty fields are removed."""
    account = await require_account(request)
    form = await form_fields(request)
    wanted = UserPersona(form.get("name", ""), form.get("description", ""))
    try:
        await request.app[ENGINE].set_user_persona(account_owner(account.id), wanted)
    except userpersona.InvalidUserPersona as exc:
        # the page keeps what was typed, so nothing is lost to a typo
        return await _page(request, account, status=400, error=str(exc), me=wanted)
    return see_other("/account?done=me")


@routes.get("/account/export", name="export")
async def export(request: web.Request) -> web.Response:
    account = await require_account(request)
    data: dict[str, Any] = await request.app[ACCOUNTS].export(account)
    return web.Response(
        text=json.dumps(data, ensure_ascii=False, indent=2),
        content_type="application/json",
        headers={
            "Content-Disposition": 'attachment; filename="personabridge-export.json"',
            "Cache-Control": "no-store",
        },
    )


@routes.post("/account/delete")
async def delete_account(request: web.Request) -> web.Response:
    account = await require_account(request)
    form = await form_fields(request)
    try:
        await request.app[ACCOUNTS].delete_account(
            account,
            form.get("password", ""),
            address=client_address(request),
            device=device_token(request),
        )
    except LoginFailed:
        return await _page(
            request, account, status=403, error="That password is wrong: nothing was deleted."
        )
    except LoginThrottled as exc:
        response = await _page(request, account, status=429, error=str(exc))
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    response = see_other("/?done=deleted")
    clear_session_cookie(request, response)
    return response


# -- sign-in and sessions ---------------------------------------------------------------


@routes.post("/account/logout-everywhere")
async def log_out_everywhere(request: web.Request) -> web.Response:
    account = await require_account(request)
    await request.app[ACCOUNTS].log_out_elsewhere(account.id, session_token(request))
    return see_other("/account?done=logged_out_elsewhere")


@routes.post("/account/password")
async def change_password(request: web.Request) -> web.Response:
    account = await require_account(request)
    form = await form_fields(request)
    if form.get("password", "") != form.get("confirm", ""):
        return await _page(
            request, account, status=400, error="The two new passwords are not the same."
        )
    accounts = request.app[ACCOUNTS]
    try:
        changed, session = await accounts.change_password(
            account,
            form.get("current", ""),
            form.get("password", ""),
            address=client_address(request),
            device=device_token(request),
            replacing=session_token(request),
        )
    except LoginFailed:
        return await _page(
            request,
            account,
            status=403,
            error="Your current password is wrong: the password was not changed.",
        )
    except LoginThrottled as exc:
        response = await _page(request, account, status=429, error=str(exc))
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except AuthError as exc:  # the new password breaks the rules
        return await _page(request, account, status=400, error=str(exc))
    response = see_other("/account?done=password_changed")
    set_session_cookie(request, response, session)
    set_device_cookie(request, response, changed)
    return response
