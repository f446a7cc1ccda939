"""Session attacks: fixation, a stolen cookie after logout, switching accounts, deleting
the account, tokens at rest, expiry, and junk cookies.

The web app has no password change: deleting the account is the one credential event
that must end the account's other sessions.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from auth import SESSION_TTL
from tests.support.clocks import Clock
from tests.support.web_site import PASSWORD, Browser, Site, db_rows, db_snapshot

COOKIE = "pb_session"


def session_rows(db_path: Path) -> list[tuple[str, str]]:
    rows = db_rows(db_path, "SELECT token_hash, account_id FROM web_sessions")
    return [(str(token_hash), str(account_id)) for token_hash, account_id in rows]


def stolen_copy(site: Site, browser: Browser) -> Browser:
    """Another browser holding a copy of ``browser``'s session cookie (an attacker who
    read it off a shared machine, a proxy log, ...)."""
    thief = site.browser()
    thief.cookies[COOKIE] = browser.cookies[COOKIE]
    return thief


@pytest.mark.parametrize("entry", ["login", "signup"])
@pytest.mark.parametrize("planted", ["made-up-token", "attackers-live-session"])
async def test_fixation_a_planted_session_id_is_never_the_session_after_login(
    site: Site, db_path: Path, entry: str, planted: str
) -> None:
    attacker = site.browser()
    if planted == "made-up-token":
        fixed = "F" * 43  # shaped like a real token, never issued
    else:
        await attacker.sign_up("mallory")
        fixed = attacker.cookies[COOKIE]
    victim = site.browser()
    victim.cookies[COOKIE] = fixed  # planted (a sibling subdomain, a link, a shared PC)
    if entry == "login":
        await site.browser().sign_up("victim")  # the account exists already
        reply = await victim.log_in("victim")
    else:
        reply = await victim.sign_up("victim")
    assert reply.status == 303
    issued = reply.cookie(COOKIE)
    assert issued is not None and issued.value != fixed, "a new session id on login"
    assert await victim.logged_in_as() == "victim"
    holder = site.browser()
    holder.cookies[COOKIE] = fixed
    assert await holder.logged_in_as() is None, "the planted id is worth nothing afterwards"
    planted_hash = hashlib.sha256(fixed.encode()).hexdigest()
    assert planted_hash not in {h for h, _ in session_rows(db_path)}


async def test_logout_revokes_the_session_on_the_server(site: Site, db_path: Path) -> None:
    alice = site.browser()
    await alice.sign_up("alice")
    thief = stolen_copy(site, alice)
    old_token = await thief.token("/account")  # the CSRF token of the stolen session
    assert await thief.logged_in_as() == "alice", "the copy works while the session lives"

    reply = await alice.log_out()
    assert reply.status == 303
    cleared = reply.cookie(COOKIE)
    assert cleared is not None and cleared.deletes, "the browser is told to drop it"
    assert session_rows(db_path) == [], "and the server forgot it"

    assert await thief.logged_in_as() is None
    before = db_snapshot(db_path)
    sent = await thief.post(
        "/chat/send",
        json_body={"text": "written with a dead session"},
        headers={"X-CSRF-Token": old_token, "Accept": "text/event-stream"},
    )
    assert sent.status == 401
    for path in ("/account/link-code", "/account/persona"):
        refused = await thief.post(path, data={"csrf_token": old_token, "persona": "morrow"})
        assert refused.status == 303 and refused.location is not None
        assert refused.location.startswith("/login")
    export = await thief.get("/account/export")
    assert export.status == 303 and "alice" not in export.text
    assert db_snapshot(db_path) == before, "a revoked session writes nothing"


async def test_logging_in_as_someone_else_rotates_and_revokes_the_old_session(
    site: Site, db_path: Path
) -> None:
    await site.browser().sign_up("bob")
    browser = site.browser()
    await browser.sign_up("alice")
    alice_copy = stolen_copy(site, browser)
    alice_token = browser.cookies[COOKIE]

    reply = await browser.log_in("bob")  # the token of the logged-in page, then bob
    assert reply.status == 303
    assert browser.cookies[COOKIE] != alice_token
    assert await browser.logged_in_as() == "bob"
    assert await alice_copy.logged_in_as() is None, "alice's session ended with the switch"
    alice_hash = hashlib.sha256(alice_token.encode()).hexdigest()
    assert alice_hash not in {h for h, _ in session_rows(db_path)}


async def test_deleting_the_account_ends_every_session_of_it(site: Site, db_path: Path) -> None:
    laptop, phone = site.browser(), site.browser()
    await laptop.sign_up("alice")
    assert (await phone.log_in("alice")).status == 303
    other = site.browser()
    await other.sign_up("carol")
    assert len(session_rows(db_path)) == 3

    reply = await laptop.submit("/account/delete", {"password": PASSWORD}, token_from="/account")
    assert reply.status == 303
    cleared = reply.cookie(COOKIE)
    assert cleared is not None and cleared.deletes
    assert await phone.logged_in_as() is None, "the other device is logged out too"
    assert await laptop.logged_in_as() is None
    assert await other.logged_in_as() == "carol", "nobody else's session is touched"
    assert len(session_rows(db_path)) == 1


async def test_sessions_are_kept_only_as_hashes(site: Site, db_path: Path) -> None:
    alice = site.browser()
    await alice.sign_up("alice")
    token = alice.cookies[COOKIE]
    assert len(token) >= 43, "256 random bits"
    [(stored, _)] = session_rows(db_path)
    assert stored == hashlib.sha256(token.encode()).hexdigest()
    dump = repr(db_snapshot(db_path))
    assert token not in dump, "a copy of the database gives no usable token"


async def test_a_session_ends_on_the_server_when_its_time_is_up(
    site: Site, clock: Clock, db_path: Path
) -> None:
    alice = site.browser()
    await alice.sign_up("alice")
    thief = stolen_copy(site, alice)  # keeps sending the cookie whatever its Max-Age
    clock.advance(SESSION_TTL - 60)
    assert await thief.logged_in_as() == "alice"
    clock.advance(120)
    assert await thief.logged_in_as() is None
    assert await alice.logged_in_as() is None


@pytest.mark.parametrize(
    "junk",
    [
        pytest.param("x" * 5000, id="huge"),
        pytest.param("é-not-ascii", id="non-ascii"),
        pytest.param('"quoted"', id="quoted"),
        pytest.param("../../etc/passwd", id="path"),
        pytest.param("' OR 1=1 --", id="sql"),
    ],
)
async def test_a_junk_session_cookie_is_a_visitor_not_an_error(site: Site, junk: str) -> None:
    browser = site.browser()
    await browser.sign_up("alice")
    browser.cookies[COOKIE] = junk
    for path in ("/", "/login", "/account", "/chat"):
        reply = await browser.get(path)
        assert reply.status in (200, 303), (path, reply.status)
    assert await browser.logged_in_as() is None


async def test_a_session_cookie_of_invalid_utf8_is_a_visitor_not_an_error(site: Site) -> None:
    """Browsers pass cookie bytes through; a 500 here would be a crash any visitor can
    cause."""
    host, port = site.url.removeprefix("http://").split(":")
    for path in (b"/account", b"/"):
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            b"GET " + path + b" HTTP/1.1\r\nHost: " + host.encode() + b"\r\n"
            b"Cookie: pb_session=ab\xff\xfecd; pb_csrf=\xc3\x28\r\nConnection: close\r\n\r\n"
        )
        await writer.drain()
        head = (await asyncio.wait_for(reader.read(), 10)).split(b"\r\n", 1)[0]
        writer.close()
        await writer.wait_closed()
        assert head.split()[1] in (b"200", b"303"), (path, head)
