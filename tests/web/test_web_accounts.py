"""Sign up, log in, log out through the real app: flows, refusals, throttling, next=."""

from __future__ import annotations

import pytest

from tests.support.clocks import Clock
from tests.support.web_client import (
    PASSWORD,
    Client,
    MakeClient,
    log_in,
    log_out,
    page_token,
    post_form,
    session_cookie,
    sign_up,
    use_session,
)


async def test_sign_up_logs_in_and_lands_on_the_chat(client: Client) -> None:
    response = await sign_up(client, "Ada")
    assert response.headers["Location"] == "/chat"
    cookie = response.cookies["pb_session"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and not cookie["secure"]
    assert cookie["max-age"] == str(14 * 24 * 3600)
    page = await client.get("/account")
    assert page.status == 200
    assert "Ada" in await page.text()


async def test_log_out_then_log_in_again(client: Client) -> None:
    await sign_up(client, "ada")
    out = await log_out(client)
    assert out.status == 303 and out.headers["Location"] == "/?done=logged_out"
    assert (await client.get("/account", allow_redirects=False)).status == 303
    back = await log_in(client, "ADA")  # names compare case-insensitively
    assert back.status == 303 and back.headers["Location"] == "/chat"
    assert (await client.get("/account")).status == 200


async def test_logout_revokes_the_session_on_the_server(client: Client) -> None:
    await sign_up(client, "ada")
    token = session_cookie(client)
    await log_out(client)
    use_session(client, token)
    assert (await client.get("/account", allow_redirects=False)).status == 303


async def test_login_rotates_the_session(client: Client) -> None:
    await sign_up(client, "ada")
    before = session_cookie(client)
    await log_in(client, "ada")
    after = session_cookie(client)
    assert before and after and before != after
    use_session(client, before)
    assert (await client.get("/account", allow_redirects=False)).status == 303


@pytest.mark.parametrize(
    "second",
    [
        pytest.param("ada", id="same"),
        pytest.param("ADA", id="upper"),
        pytest.param("AdA", id="mixed"),
    ],
)
async def test_duplicate_usernames_in_any_case_are_refused(client: Client, second: str) -> None:
    await sign_up(client, "Ada")
    await log_out(client)
    response = await post_form(
        client,
        "/signup",
        {"username": second, "password": "another passphrase", "confirm": "another passphrase"},
    )
    assert response.status == 409
    assert "That username is taken" in await response.text()


@pytest.mark.parametrize(
    ("username", "password", "confirm", "message"),
    [
        pytest.param("ab", PASSWORD, PASSWORD, "3 to 32 characters", id="short-name"),
        pytest.param("ada lovelace", PASSWORD, PASSWORD, "may use only", id="bad-alphabet"),
        pytest.param("ada", "short", "short", "at least 10", id="short-password"),
        pytest.param("ada", "password123", "password123", "too common", id="common-password"),
        pytest.param("ada", PASSWORD, PASSWORD + "x", "not the same", id="mismatch"),
    ],
)
async def test_sign_up_refusals_explain_themselves(
    client: Client, username: str, password: str, confirm: str, message: str
) -> None:
    response = await post_form(
        client, "/signup", {"username": username, "password": password, "confirm": confirm}
    )
    assert response.status == 400
    assert message in await response.text()
    assert session_cookie(client) is None


async def test_unknown_user_and_wrong_password_get_the_same_response(client: Client) -> None:
    await sign_up(client, "ada")
    await log_out(client)
    unknown = await log_in(client, "someone", "wrong password!")
    unknown_body = await unknown.text()
    await sign_up(client, "someone")
    await log_out(client)
    wrong = await log_in(client, "someone", "wrong password!")
    assert unknown.status == wrong.status == 401
    assert unknown_body == await wrong.text()
    assert "Wrong username or password." in unknown_body


async def test_repeated_failures_are_throttled_with_retry_after(client: Client) -> None:
    await sign_up(client, "ada")
    await log_out(client)
    for _ in range(10):
        assert (await log_in(client, "ada", "wrong password!")).status == 401
    refused = await log_in(client, "ada")  # even the right password, for now
    assert refused.status == 429
    assert 0 < int(refused.headers["Retry-After"]) <= 900
    assert "Too many failed attempts" in await refused.text()


async def test_an_expired_session_goes_back_to_login(client: Client, clock: Clock) -> None:
    await sign_up(client, "ada")
    token = await page_token(client, "/account")
    clock.advance(15 * 24 * 3600)
    page = await client.get("/account", allow_redirects=False)
    assert page.status == 303 and page.headers["Location"] == "/login?next=/account"
    # a form shown before the session expired also leads to the login page
    posted = await client.post(
        "/account/link-code",
        data={"csrf_token": token},
        allow_redirects=False,
        headers={"Referer": str(client.make_url("/account"))},
    )
    assert posted.status == 303 and posted.headers["Location"].startswith("/login?next=/account")
    follow = await client.get("/login?next=/account")
    assert follow.status == 200 and "Log in" in await follow.text()


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("https://evil.example/", id="absolute"),
        pytest.param("//evil.example/", id="scheme-relative"),
        pytest.param("/\\evil.example", id="backslash"),
        pytest.param("\\\\evil.example", id="double-backslash"),
        pytest.param("/%0a/evil", id="percent-encoded-stays-a-local-path"),
        pytest.param("/\t/evil.example", id="tab"),
        pytest.param("javascript:alert(1)", id="javascript"),
        pytest.param("evil.example", id="no-slash"),
    ],
)
async def test_unsafe_next_is_ignored(client: Client, target: str) -> None:
    await sign_up(client, "ada")
    await log_out(client)
    response = await log_in(client, "ada", next=target)
    expected = target if target == "/%0a/evil" else "/chat"
    assert response.headers["Location"] == expected


async def test_a_safe_next_is_followed(client: Client) -> None:
    await sign_up(client, "ada")
    await log_out(client)
    response = await client.get("/account", allow_redirects=False)
    login_page = response.headers["Location"]
    assert login_page == "/login?next=/account"
    html = await (await client.get(login_page)).text()
    assert 'name="next" value="/account"' in html
    assert (await log_in(client, "ada", next="/account")).headers["Location"] == "/account"


async def test_sign_ups_per_address_are_limited(make_client: MakeClient) -> None:
    client = await make_client(signups_per_hour=2)
    for name in ("one", "two"):
        await sign_up(client, name)
        await log_out(client)
    response = await post_form(
        client, "/signup", {"username": "three", "password": PASSWORD, "confirm": PASSWORD}
    )
    assert response.status == 429 and "Retry-After" in response.headers
