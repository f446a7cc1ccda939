"""Open redirects: every ``Location`` the app sends stays on this site.

``next=`` comes from a link anyone can craft; an open redirect after login would lend
our domain (and the user's trust, right after typing their password) to a phishing
page. Every redirecting route is driven with a list of known bypasses, and each
``Location`` is resolved the way a browser's URL parser does (WHATWG: tabs and
newlines dropped anywhere, ``\\`` read as ``/``, any number of slashes before a host,
``scheme:`` without slashes). Browsers do not percent-decode a ``Location``, and
nothing in the app decodes ``next=`` twice, so ``/%2F%2Fhost`` is a local path (as
``tests/web`` also pins for ``/%0a/evil``).
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.web.redirects import MAX_NEXT, login_url, safe_next
from tests.support.web_site import Site, db_rows

EVIL = "evil.example"
BYPASSES = [
    f"//{EVIL}",
    f"///{EVIL}",
    f"////{EVIL}/path",
    f"/\\{EVIL}",
    f"\\\\{EVIL}",
    f"\\/{EVIL}",
    f"/\\/{EVIL}",
    f"https://{EVIL}",
    f"HTTPS://{EVIL}",
    f"https:{EVIL}",
    f"http:/{EVIL}",
    f"http:\\\\{EVIL}",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(document.cookie)",
    "java\tscript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    f"/%2F{EVIL}",
    f"/%2F%2F{EVIL}",
    f"%2F%2F{EVIL}",
    f"/%5C{EVIL}",
    f"/%252F%252F{EVIL}",
    f"/%09/{EVIL}",
    f"/\t/{EVIL}",
    f"/\n/{EVIL}",
    f"\t//{EVIL}",
    f" //{EVIL}",
    f"/\r\nSet-Cookie: pwned=1\r\nX: //{EVIL}",
    f"/\x00/{EVIL}",
    f"/\x7f/{EVIL}",
    f"／／{EVIL}",
    f"/／{EVIL}",
    f"\u2215\u2215{EVIL}",
    f"/\u2044{EVIL}",
    f"/\uff3c{EVIL}",
    f"//{EVIL}@127.0.0.1",
    f"//127.0.0.1@{EVIL}",
    f"https://127.0.0.1@{EVIL}",
    f"/.//{EVIL}",
    f"/..//{EVIL}",
    "/" + "a" * (MAX_NEXT + 10),
]
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")


def where_a_browser_goes(base: str, location: str) -> str:
    """The ``scheme://host`` a browser navigates to for ``Location: location`` on a
    page of ``base`` (http/https), after the WHATWG URL parser's normalisations."""
    site = urlsplit(base)
    here = f"{site.scheme}://{site.netloc}"
    url = location.strip("".join(map(chr, range(0x21))))
    url = re.sub(r"[\t\n\r]", "", url)
    match = _SCHEME.match(url)
    if match:
        scheme = match.group(1).lower()
        rest = url[match.end() :]
        if scheme not in ("http", "https"):
            return f"{scheme}:"
        rest = rest.replace("\\", "/")
        if scheme == site.scheme and not rest.startswith("/"):
            return here  # "http:path" is relative to the page in the same scheme
        return f"{scheme}://{_host(rest)}"
    url = url.replace("\\", "/")
    if url.startswith("//"):
        return f"{site.scheme}://{_host(url)}"
    return here


def _host(after_scheme: str) -> str:
    authority = re.split(r"[/?#]", after_scheme.lstrip("/"), maxsplit=1)[0]
    return unquote(authority.rsplit("@", 1)[-1]).lower()


def assert_on_site(site_url: str, location: str | None, what: str) -> None:
    assert location is not None, what
    here = where_a_browser_goes(site_url, site_url + "/")
    assert where_a_browser_goes(site_url, location) == here, f"{what}: {location!r}"
    assert "\r" not in location and "\n" not in location, f"{what}: header injection"


def test_the_browser_model_sees_the_bypasses() -> None:
    """The oracle: most bypasses, sent as is, would leave the site (the encoded ones
    and the lookalike slashes stay: browsers read them as paths)."""
    base = "http://127.0.0.1:8080"
    leaving = [b for b in BYPASSES if where_a_browser_goes(base, b) != "http://127.0.0.1:8080"]
    assert len(leaving) >= 20
    assert where_a_browser_goes(base, "/chat?x=1") == base
    assert where_a_browser_goes(base, "/\t/evil.example") == "http://evil.example"


# -- every redirecting route ------------------------------------------------------------


async def test_login_never_sends_the_browser_off_site(site: Site) -> None:
    await site.browser().sign_up("alice")
    for target in BYPASSES:
        browser = site.browser()
        reply = await browser.log_in("alice", next=target)
        assert reply.status == 303, target
        assert_on_site(site.url, reply.location, f"POST /login next={target!r}")
        assert "pwned" not in browser.cookies


async def test_pages_visited_while_logged_in_never_redirect_off_site(site: Site) -> None:
    alice = site.browser()
    await alice.sign_up("alice")
    for target in BYPASSES:
        for page in ("/login", "/signup"):
            reply = await alice.get(f"{page}?next={quote(target, safe='')}")
            assert reply.status == 303, (page, target)
            assert_on_site(site.url, reply.location, f"GET {page}?next={target!r}")


async def test_sign_up_never_sends_the_browser_off_site(site: Site) -> None:
    # New accounts per address are limited (20 an hour): a sample of the bypasses.
    for number, target in enumerate(BYPASSES[::3]):
        reply = await site.browser().submit(
            "/signup",
            {
                "username": f"user{number}",
                "password": "correct horse battery",
                "confirm": "correct horse battery",
                "next": target,
            },
        )
        assert reply.status == 303, (target, reply.text[:200])
        assert_on_site(site.url, reply.location, f"POST /signup next={target!r}")


async def test_choosing_a_persona_never_sends_the_browser_off_site(site: Site) -> None:
    alice = site.browser()
    await alice.sign_up("alice")
    token = await alice.token("/account")
    for target in BYPASSES:
        reply = await alice.post(
            "/account/persona",
            data={"csrf_token": token, "persona": "morrow", "next": target},
            headers={"Origin": site.url},
        )
        assert reply.status == 303, target
        assert_on_site(site.url, reply.location, f"POST /account/persona next={target!r}")


async def test_the_login_detour_keeps_only_a_local_path(site: Site) -> None:
    """A protected page sends a visitor to log in and back: the way back is built from
    the request, and after logging in it still lands here."""
    await site.browser().sign_up("alice")
    for target in BYPASSES[:12]:
        browser = site.browser()
        reply = await browser.get(f"/account?back={quote(target, safe='')}")
        assert reply.status == 303
        assert_on_site(site.url, reply.location, "the login detour")
        assert reply.location is not None and reply.location.startswith("/login?next=")
        next_value = unquote(reply.location.removeprefix("/login?next="))
        landed = await browser.log_in("alice", next=next_value)
        assert_on_site(site.url, landed.location, "back from the login detour")


async def test_an_expired_session_goes_to_login_with_a_local_path_only(
    site: Site, db_path: Path
) -> None:
    """A form posted after the session ended goes to the login page, coming back to
    the page it was on: taken from the Referer, which is attacker-influenced."""
    alice = site.browser()
    await alice.sign_up("alice")
    token = await alice.token("/account")
    stale = alice.cookies["pb_session"]
    await alice.log_out()
    assert db_rows(db_path, "SELECT * FROM web_sessions") == []
    referers = [f"https://{EVIL}/account", f"{site.url}//{EVIL}", f"{site.url}/\\{EVIL}"]
    referers += [f"{site.url}/{b.lstrip('/')}" for b in BYPASSES[:10]]
    for referer in referers:
        browser = site.browser()
        browser.cookies["pb_session"] = stale
        reply = await browser.post(
            "/account/link-code", data={"csrf_token": token}, headers={"Referer": referer}
        )
        if reply.status == 403:  # a foreign Referer: refused outright
            continue
        assert reply.status == 303, (referer, reply.status)
        assert_on_site(site.url, reply.location, f"expired session, Referer {referer!r}")


# -- the filter itself, on anything -----------------------------------------------------

#: Pieces bypasses are made of: a target is a short run of them.
PIECES = [
    *"/\\:.%@?#&=; \t\n\r\x00\x0bAaEeFfCc259vilhtpsjx",
    *("／", "＼", "\u2215", "\u2044", "\u3002"),
    *("%2F", "%2f", "%5C", "%09", "%0A", "%25", "//", "http", "javascript", EVIL),
]
DANGEROUS = st.lists(st.sampled_from(PIECES), max_size=12).map("".join)


@settings(max_examples=150)
@given(target=DANGEROUS)
def test_safe_next_output_always_stays_on_site(target: str) -> None:
    base = "https://bot.example.org"
    for chosen in (safe_next(target), login_url(target)):
        assert where_a_browser_goes(base, chosen) == base, (target, chosen)


LOCAL_PATHS = st.lists(
    st.text(alphabet=st.sampled_from(list("abcxyz019-_.~")), min_size=1, max_size=8),
    min_size=1,
    max_size=4,
).map(lambda parts: "/" + "/".join(parts))


@settings(max_examples=60)
@given(path=LOCAL_PATHS, query=st.sampled_from(["", "?page=2", "?q=a%20b&x=1"]))
def test_safe_next_keeps_ordinary_local_paths(path: str, query: str) -> None:
    """(So the filter is not simply "always the default".)"""
    assert safe_next(path + query, "/default") == path + query


@pytest.mark.parametrize("target", BYPASSES)
def test_safe_next_refuses_every_bypass_that_leaves(target: str) -> None:
    base = "http://127.0.0.1:8080"
    chosen = safe_next(target, "/default")
    assert where_a_browser_goes(base, chosen) == base
