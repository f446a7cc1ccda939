"""The account page's "log out everywhere else" and "change password".

Each ends every other session of the account; a password change needs the current
password (throttled like a login), follows the sign-up rules and gives this browser a
new session. Both are CSRF-protected. Driven through the real web adapter with aiohttp's
client, one cookie jar per "browser".
"""

from __future__ import annotations

from tests.support.web_site import PASSWORD, Browser, Site

NEW_PASSWORD = "a brand new passphrase"


async def test_log_out_everywhere_else(site: Site) -> None:
    here, there, elsewhere = site.browser(), site.browser(), site.browser()
    await here.sign_up("alice")
    for browser in (there, elsewhere):
        assert (await browser.log_in("alice")).status == 303
    bob = site.browser()
    await bob.sign_up("bob")
    reply = await here.submit("/account/logout-everywhere", {}, token_from="/account")
    assert reply.status == 303 and reply.location == "/account?done=logged_out_elsewhere"
    assert await here.logged_in_as() == "alice"
    assert await there.logged_in_as() is None
    assert await elsewhere.logged_in_as() is None
    assert await bob.logged_in_as() == "bob", "other accounts are not touched"


async def test_log_out_everywhere_needs_the_csrf_token(site: Site) -> None:
    here, there = site.browser(), site.browser()
    await here.sign_up("alice")
    await there.log_in("alice")
    forged = await here.post("/account/logout-everywhere", headers={"Origin": here.origin})
    assert forged.status == 403
    assert await there.logged_in_as() == "alice"


async def change(browser: Browser, current: str, new: str, confirm: str | None = None) -> int:
    fields = {"current": current, "password": new, "confirm": new if confirm is None else confirm}
    reply = await browser.submit("/account/password", fields, token_from="/account")
    return reply.status


async def test_change_password_ends_the_other_sessions(site: Site) -> None:
    here, there = site.browser(), site.browser()
    await here.sign_up("alice")
    await there.log_in("alice")
    old_cookie = here.cookies["pb_session"]
    assert await change(here, PASSWORD, NEW_PASSWORD) == 303
    assert here.cookies["pb_session"] != old_cookie, "a new session for this browser"
    assert await here.logged_in_as() == "alice"
    assert await there.logged_in_as() is None
    again = site.browser()
    assert (await again.log_in("alice", PASSWORD)).status == 401
    assert (await again.log_in("alice", NEW_PASSWORD)).status == 303


async def test_a_refused_change_changes_nothing(site: Site) -> None:
    here, there = site.browser(), site.browser()
    await here.sign_up("alice")
    await there.log_in("alice")
    assert await change(here, "not my password", NEW_PASSWORD) == 403
    assert await change(here, PASSWORD, "short") == 400
    assert await change(here, PASSWORD, "password123") == 400  # too common
    assert await change(here, PASSWORD, NEW_PASSWORD, confirm="something else entirely") == 400
    assert await here.logged_in_as() == "alice"
    assert await there.logged_in_as() == "alice"
    assert (await site.browser().log_in("alice", PASSWORD)).status == 303


async def test_change_password_needs_the_csrf_token(site: Site) -> None:
    here = site.browser()
    await here.sign_up("alice")
    forged = await here.post(
        "/account/password",
        data={"current": PASSWORD, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
        headers={"Origin": here.origin},
    )
    assert forged.status == 403
    assert (await site.browser().log_in("alice", PASSWORD)).status == 303


async def test_guessing_the_current_password_is_throttled(site: Site) -> None:
    thief = site.browser()
    await thief.sign_up("alice")
    statuses = [await change(thief, f"guess {n}", NEW_PASSWORD) for n in range(11)]
    assert statuses[:10] == [403] * 10 and statuses[10] == 429
