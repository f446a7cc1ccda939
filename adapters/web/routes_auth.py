"""The pages anyone can see: the landing page, sign up, log in, log out."""

from __future__ import annotations

from typing import NamedTuple

from aiohttp import web

from adapters.web.csrf import csrf_anonymous
from adapters.web.forms import client_address, form_fields, notice, see_other
from adapters.web.keys import ACCOUNTS, ENGINE, METRICS, SIGNUP_LIMITER
from adapters.web.redirects import safe_next
from adapters.web.render import render, render_anonymous
from adapters.web.session import (
    clear_session_cookie,
    current_account,
    device_token,
    session_token,
    set_device_cookie,
    set_session_cookie,
)
from auth import AuthError, LoginFailed, LoginThrottled
from auth.rules import PASSWORD_MIN, USERNAME_ALPHABET, USERNAME_MAX, USERNAME_MIN
from bot.errors import UsernameTaken

routes = web.RouteTableDef()


class Rules(NamedTuple):
    """What the sign-up form tells people (hashable, so the page can be cached)."""

    username_min: int = USERNAME_MIN
    username_max: int = USERNAME_MAX
    username_alphabet: str = USERNAME_ALPHABET
    password_min: int = PASSWORD_MIN


RULES = Rules()


@routes.get("/", name="home")
async def home(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    if await current_account(request) is None:
        text = notice(request)
        return render_anonymous(
            request, "home.html", cache_key=text, personas=list(engine.personas), notice=text
        )
    return await render(
        request, "home.html", personas=list(engine.personas), notice=notice(request)
    )


# -- sign up ----------------------------------------------------------------------------


@routes.get("/signup", name="signup")
async def signup_form(request: web.Request) -> web.Response:
    next_path = safe_next(request.query.get("next"))
    if await current_account(request) is not None:
        raise web.HTTPSeeOther(next_path)
    return render_anonymous(
        request,
        "signup.html",
        cache_key=next_path,
        next=next_path,
        username="",
        error=None,
        rules=RULES,
    )


@routes.post("/signup")
@csrf_anonymous
async def signup_submit(request: web.Request) -> web.Response:
    form = await form_fields(request)
    username = form.get("username", "")
    next_path = safe_next(form.get("next"))

    async def refuse(message: str, status: int = 400) -> web.Response:
        return await render(
            request,
            "signup.html",
            status=status,
            next=next_path,
            username=username,
            error=message,
            rules=RULES,
        )

    limiter = request.app[SIGNUP_LIMITER]
    address = client_address(request)
    if not limiter.try_acquire(address):
        wait = max(1, int(limiter.retry_after(address)) + 1)
        response = await refuse("Too many new accounts from your address. Try again later.", 429)
        response.headers["Retry-After"] = str(wait)
        return response
    if form.get("password", "") != form.get("confirm", ""):
        return await refuse("The two passwords are not the same.")
    accounts = request.app[ACCOUNTS]
    try:
        account = await accounts.sign_up(username, form.get("password", ""))
    except UsernameTaken:
        return await refuse("That username is taken. Choose another one.", 409)
    except AuthError as exc:
        return await refuse(str(exc))
    session = await accounts.sessions.start(account.id, replacing=session_token(request))
    response = see_other(next_path)
    set_session_cookie(request, response, session)
    set_device_cookie(request, response, account)
    return response


# -- log in and out ---------------------------------------------------------------------


@routes.get("/login", name="login")
async def login_form(request: web.Request) -> web.Response:
    next_path = safe_next(request.query.get("next"))
    # (no session cookie, as for most visitors here: nobody, without a coroutine)
    if session_token(request) is not None and await current_account(request) is not None:
        raise web.HTTPSeeOther(next_path)
    return render_anonymous(
        request, "login.html", cache_key=next_path, next=next_path, username="", error=None
    )


@routes.post("/login")
@csrf_anonymous
async def login_submit(request: web.Request) -> web.Response:
    form = await form_fields(request)
    username = form.get("username", "")
    next_path = safe_next(form.get("next"))
    metrics = request.app[METRICS]
    try:
        account, session = await request.app[ACCOUNTS].log_in(
            username,
            form.get("password", ""),
            address=client_address(request),
            replacing=session_token(request),
            device=device_token(request),
        )
    except (LoginFailed, LoginThrottled) as exc:
        throttled = isinstance(exc, LoginThrottled)
        metrics.login("throttled" if throttled else "failed")
        response = await render(
            request,
            "login.html",
            status=429 if throttled else 401,
            next=next_path,
            username=username,
            error=str(exc),
        )
        if isinstance(exc, LoginThrottled):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response
    metrics.login("ok")
    response = see_other(next_path)
    set_session_cookie(request, response, session)
    set_device_cookie(request, response, account)
    return response


@routes.post("/logout", name="logout")
async def logout(request: web.Request) -> web.Response:
    token = session_token(request)
    if token is not None:
        await request.app[ACCOUNTS].log_out(token)
    response = see_other("/?done=logged_out")
    clear_session_cookie(request, response)
    return response
