"""Fuzzing the web front end with hostile requests (hypothesis).

Every form and JSON endpoint gets missing, repeated and huge fields, NUL bytes, lone
surrogates, bytes that are not UTF-8, wrong or missing Content-Types, charsets that lie
or do not exist, broken multipart and gzip bodies, chunked bodies; random paths,
methods and query strings go to the raw socket. Whatever is sent: never a 5xx, only the
statuses the endpoint defines, no traceback in the body, nothing stored from a refused
request, and the next ordinary request is still served.

One real app (a real SQLite file, the real aiohttp server on loopback) serves all the
examples of a test: hypothesis drives a synchronous test, and every request runs on the
site's own event loop (``asyncio.Runner``), so no example pays for a server start.
"""

from __future__ import annotations

import asyncio
import gc
import gzip
import json
import re
import time
import warnings
from collections.abc import AsyncIterator, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote_plus

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDictProxy

from adapters.web import create_app
from auth import TEST_PARAMS, AccountService, InvalidUsername, PasswordHasher
from auth.rules import check_username
from bot.backends.guard import GuardPolicy, ReplyGuard
from bot.config import RateLimitSettings
from bot.engine_parts import build_engine
from bot.linking import create_link_code
from bot.messages import (
    DIRECT_SCOPE,
    ConversationKey,
    Identity,
    Incoming,
    ReplyDone,
    Turn,
    account_owner,
    clean_text,
)
from bot.personas import Persona, PersonaLibrary
from bot.store.base import Account, BackendState
from bot.store.sqlite import SqliteStore
from tests.support.fakes import make_persona

T = TypeVar("T")
PASSWORD = "correct horse battery"
USERNAME = "fuzzer"
LINKED = ("telegram", "42")
CHAT_LIMIT = 4000
MAX_BODY = 64 * 1024
#: A shared fixture serves many examples on purpose; the examples are slow by design.
FUZZ = settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    deadline=None,
)
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_SURROGATES = re.compile("[\ud800-\udfff]")
_LEAKS = ("Traceback", 'File "/', "site-packages")
#: aiohttp spools a multipart upload to a SpooledTemporaryFile and, when a later part is
#: broken, drops it unclosed (it is in memory: bodies are at most 64 KiB). Only the
#: warning is left, when the garbage collector gets to it.
SPOOLED_UPLOAD = "Unclosed file <tempfile.SpooledTemporaryFile"
pytestmark = [
    pytest.mark.filterwarnings(f"ignore:{SPOOLED_UPLOAD}:ResourceWarning"),
    # aiohttp warns about a malformed Content-Disposition of a part, then reads on; under
    # pytest's "error" filter the warning would be raised inside the server instead.
    pytest.mark.filterwarnings("ignore::aiohttp.multipart.BadContentDispositionHeader"),
    pytest.mark.filterwarnings("ignore::aiohttp.multipart.BadContentDispositionParam"),
]


# -- the site under test ----------------------------------------------------------------


class Parrot:
    """Our backend for these tests: one short delta that repeats what it was told (so a
    hostile message flows back out through the SSE stream and the page)."""

    name = "parrot"

    async def reply(
        self, persona: Persona, window: Sequence[Turn], message: Turn, state: BackendState
    ) -> AsyncIterator[str]:
        yield f"re:{message.text[:80]}"

    async def aclose(self) -> None:
        pass


@dataclass
class Answer:
    status: int
    headers: CIMultiDictProxy[str]
    body: str


class Site:
    """The real app over a real SQLite file, a browser for it, and its own event loop."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self._runner = asyncio.Runner()
        self.token = ""  # the CSRF token of the browser's current session
        self.created: dict[str, str] = {}  # accounts the fuzzer made: casefolded name -> password

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._runner.run(coro)

    async def start(self) -> None:
        self.store = SqliteStore(self.db)
        await self.store.__aenter__()
        backend = Parrot()
        personas = [
            make_persona("ada", "Professor Ada", backend=backend.name),
            make_persona("morrow", "Captain Morrow", backend=backend.name),
        ]
        policy = GuardPolicy(first_delta_timeout=30, total_timeout=60, retries=0)
        self.engine = build_engine(
            self.store,
            PersonaLibrary(personas),
            ReplyGuard({backend.name: backend}, policy),
            rate_limit=RateLimitSettings(exempt_platforms=("web",)),
        )
        self.accounts = AccountService(self.store, hasher=PasswordHasher(TEST_PARAMS))
        app = create_app(self.engine, self.accounts, upkeep=self.store, signups_per_hour=1_000_000)
        self.client: TestClient[web.Request, web.Application] = TestClient(TestServer(app))
        await self.client.start_server()

    def close(self) -> None:
        async def stop() -> None:
            await self.client.close()
            await self.store.__aexit__(None, None, None)

        try:
            self.run(stop())
        finally:
            self._runner.close()
            with warnings.catch_warnings():  # now, not in some later test
                warnings.filterwarnings("ignore", SPOOLED_UPLOAD, ResourceWarning)
                gc.collect()

    async def send(
        self,
        method: str,
        path: str,
        body: bytes | AsyncIterator[bytes] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        headers = dict(headers or {})
        # Send exactly the Content-Type the example chose, or none at all.
        skip = () if "Content-Type" in headers else ("Content-Type",)
        async with self.client.request(
            method,
            path,
            data=body,
            headers=headers,
            allow_redirects=False,
            skip_auto_headers=skip,
        ) as response:
            raw = await response.read()
        return Answer(response.status, response.headers, raw.decode("utf-8", "replace"))

    async def token_of(self, path: str) -> str:
        answer = await self.send("GET", path)
        assert answer.status == 200, answer.status
        match = _CSRF.search(answer.body)
        assert match, "the page has a form"
        return match.group(1)

    # -- an account with a linked identity, for the logged-in tests -------------------

    async def sign_up(self) -> Account:
        token = await self.token_of("/signup")
        form = {"csrf_token": token, "username": USERNAME, "password": PASSWORD}
        answer = await self.send(
            "POST",
            "/signup",
            urlencode([*form.items(), ("confirm", PASSWORD)]),
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert answer.status == 303, answer.body
        account = await self.store.find_account(USERNAME)
        assert account is not None
        self.account = account
        await self.link(*LINKED)
        self.token = await self.token_of("/account")
        return account

    async def link(self, platform: str, user_id: str) -> None:
        """Link the identity the way a user does: ``/link CODE`` sent from it, then
        ``/link confirm``."""
        code = await create_link_code(self.store, self.account.id, time.time())
        for text in (f"/link {code}", "/link confirm"):
            incoming = Incoming(platform, user_id, "tg user", user_id, True, text)
            events = [event async for event in self.engine.handle(incoming)]
        assert isinstance(events[-1], ReplyDone)
        assert (platform, user_id) in await self.linked_ids(), events[-1].text

    async def relink(self, platform: str, user_id: str) -> None:
        """Link it again after a fuzzed unlink, through the store (the engine allows an
        identity only a few link attempts per quarter of an hour)."""
        await self.store.link_identity(
            Identity(platform, user_id), "tg user", self.account.id, time.time()
        )

    async def restore_session(self) -> None:
        """Log the browser in again without a password (the login throttle may be shut
        after examples that sent wrong passwords)."""
        session = await self.accounts.sessions.start(self.account.id)
        self.client.session.cookie_jar.update_cookies({"pb_session": session.token})
        self.token = await self.token_of("/account")

    async def linked_ids(self) -> set[tuple[str, str]]:
        return {(i.platform, i.user_id) for i in await self.accounts.identities(self.account.id)}

    async def active_persona(self) -> str:
        return (await self.engine.active_persona(account_owner(self.account.id))).id

    async def chat_version(self, persona: str | None = None) -> tuple[int, tuple[Turn, ...]]:
        """The version and last two turns of the web chat with ``persona`` (by default
        the active one)."""
        persona = persona or await self.active_persona()
        key = ConversationKey(account_owner(self.account.id), persona, DIRECT_SCOPE)
        window = await self.store.load_window(key, 2)
        return window.version, window.turns


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    site = Site(tmp_path / "fuzz.db")
    site.run(site.start())
    try:
        yield site
    finally:
        site.close()


@pytest.fixture
def member(site: Site) -> Site:
    """The site with the browser logged in to an account that has a linked identity."""
    site.run(site.sign_up())
    return site


def assert_answered(answer: Answer, allowed: set[int], what: object) -> None:
    assert answer.status < 500, (answer.status, what, answer.body[:300])
    assert answer.status in allowed, (answer.status, what, answer.body[:300])
    assert not any(leak in answer.body for leak in _LEAKS), (what, answer.body[:300])


# -- hostile values and bodies ----------------------------------------------------------

HOSTILE = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfffy",
    "\ufeff",
    "\u202eevil",
    '<script>alert("x")</script>',
    "' OR 1=1 --",
    "../../etc/passwd",
    "%00",
    "%ff",
    "\r\n\r\n",
    "😀" * 3,
    "ada",
    "morrow",
    "telegram",
    "42",
    "null",
    "{{char}}",
    "Ｆｕｌｌｗｉｄｔｈ",
]
weird_chars = st.one_of(
    st.characters(),
    st.characters(categories=["Cs"]),  # lone surrogates
    st.sampled_from("\x00\r\n\t\x7f\u202e\ufeff\u0301"),
)
hostile_text = st.one_of(
    st.text(min_size=1, max_size=60),  # ordinary text, so that many requests succeed
    st.sampled_from(HOSTILE),
    st.text(weird_chars, max_size=30),
    st.sampled_from([CHAT_LIMIT, CHAT_LIMIT + 1, 20_000, MAX_BODY + 10]).map(lambda n: "y" * n),
)
CHARSETS = [None, "utf-8", "UTF-8", "latin-1", "utf-16", "ascii", "bogus", "base64", "rot13"]
BODY_ENCODINGS = ["utf-8", "latin-1", "utf-16"]


def _quote(text: str) -> str:
    return quote_plus(text.encode("utf-8", "surrogatepass"))


def urlencode(pairs: Sequence[tuple[str, str]]) -> bytes:
    return "&".join(f"{_quote(k)}={_quote(v)}" for k, v in pairs).encode()


def _raw(text: str, encoding: str) -> bytes:
    return text.encode(encoding, "surrogatepass" if encoding.startswith("utf") else "replace")


@dataclass
class Body:
    """A request body as the example built it, with what it was built from."""

    content_type: str | None
    data: bytes
    kind: str
    pairs: tuple[tuple[str, str], ...] = ()

    def __repr__(self) -> str:
        pairs = [
            (k[:40], v[:40] + (f"...({len(v)})" if len(v) > 40 else "")) for k, v in self.pairs
        ]
        return f"Body({self.content_type!r}, {self.kind}, {_short(self.data)}, {pairs!r})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # hypothesis' printer
        printer.text(repr(self))


def _short(data: bytes | None) -> str:
    """Bytes for a failure message: the start of huge bodies only."""
    if data is None or len(data) <= 300:
        return repr(data)
    return f"{data[:300]!r}...({len(data)} bytes)"


Pairs = list[tuple[str, str]]
NO_PAIRS: st.SearchStrategy[Pairs] = st.just([])


@st.composite
def form_bodies(
    draw: st.DrawFn, names: Sequence[str], token: str | None, valid: st.SearchStrategy[Pairs]
) -> Body:
    """A form for one endpoint: often the fields a browser sends (``valid``) first, then
    its own field names and others, missing, repeated or hostile values, the CSRF token
    in the body (when given), in many encodings, some of them broken on purpose."""
    field = st.one_of(st.sampled_from(names), st.text(weird_chars, max_size=8))
    pairs = draw(st.one_of(valid, valid, NO_PAIRS)) + draw(
        st.lists(st.tuples(field, hostile_text), max_size=5)
    )
    if token is not None:
        pairs.insert(0, ("csrf_token", token))
    if draw(st.integers(0, 2)) == 0:  # a third of the forms are sent as a browser would
        return Body(
            "application/x-www-form-urlencoded", urlencode(pairs), "urlencoded", tuple(pairs)
        )
    kind = draw(st.sampled_from(["urlencoded"] * 4 + ["raw", "multipart", "garbage", "none"]))
    charset = draw(st.sampled_from([None, None, None, *CHARSETS]))
    suffix = f"; charset={charset}" if charset else ""
    if kind == "urlencoded":
        data = urlencode(pairs)
        content_type = "application/x-www-form-urlencoded" + suffix
    elif kind == "raw":  # unescaped values, in some encoding, declared or not
        encoding = draw(st.sampled_from(BODY_ENCODINGS))
        data = b"&".join(_raw(k, encoding) + b"=" + _raw(v, encoding) for k, v in pairs)
        content_type = "application/x-www-form-urlencoded" + suffix
    elif kind == "multipart":
        data, content_type = draw(multipart(pairs))
    elif kind == "garbage":
        data = draw(st.binary(max_size=64))
        content_type = draw(st.sampled_from(["application/x-www-form-urlencoded", ""]))
    else:
        data = urlencode(pairs)
        content_type = draw(
            st.sampled_from([None, "text/plain", "application/json", "application/xml"])
        )
    if draw(st.integers(0, 4)) == 0:  # a few stray bytes somewhere (often not UTF-8)
        where = draw(st.integers(0, len(data)))
        data = data[:where] + draw(st.binary(min_size=1, max_size=4)) + data[where:]
    return Body(content_type, data, kind, tuple(pairs))


@st.composite
def multipart(draw: st.DrawFn, pairs: Sequence[tuple[str, str]]) -> tuple[bytes, str]:
    boundary = draw(st.sampled_from(["b0undary", "x", "a" * 70]))
    parts = []
    for name, value in pairs:
        header = f'Content-Disposition: form-data; name="{name}"'.encode("utf-8", "replace")
        if draw(st.booleans()):
            header = b"Content-Disposition: form-data"  # no name
        if draw(st.integers(0, 5)) == 0:
            header += b'; filename="a.txt"'
        if draw(st.integers(0, 3)) == 0:
            charset = draw(st.sampled_from(CHARSETS[1:]))
            header += f"\r\nContent-Type: text/plain; charset={charset}".encode()
        parts.append(
            b"--" + boundary.encode() + b"\r\n" + header + b"\r\n\r\n" + _raw(value, "utf-8")
        )
    data = b"\r\n".join(parts) + b"\r\n--" + boundary.encode() + b"--\r\n"
    cut = draw(st.one_of(st.none(), st.integers(0, len(data))))
    if cut is not None:  # truncated
        data = data[:cut]
    declared = draw(st.sampled_from([boundary, None, "other"]))
    content_type = "multipart/form-data" + (f"; boundary={declared}" if declared else "")
    return data, content_type


def first(pairs: Sequence[tuple[str, str]], name: str) -> str | None:
    return next((value for key, value in pairs if key == name), None)


def readable(body: Body) -> bool:
    """Whether the server reads this body's fields exactly as we wrote them: a well-formed
    url-encoded UTF-8 form, untouched, of text that UTF-8 can spell."""
    utf8 = ("", "; charset=utf-8", "; charset=UTF-8")
    return (
        body.kind == "urlencoded"
        and body.data == urlencode(body.pairs)
        and body.content_type in tuple("application/x-www-form-urlencoded" + c for c in utf8)
        and not any(_SURROGATES.search(k + v) for k, v in body.pairs)
    )


# -- the anonymous forms: sign up and log in --------------------------------------------

ANONYMOUS_STATUSES = {
    "/signup": {303, 400, 403, 409, 413, 415, 429},
    "/login": {303, 400, 401, 403, 413, 415, 429},
}


@settings(FUZZ, max_examples=100)
@given(data=st.data())
def test_sign_up_and_log_in_survive_hostile_forms(site: Site, data: st.DataObject) -> None:
    if not site.token:
        site.token = site.run(site.token_of("/signup"))  # the anonymous double-submit token
    created = site.created
    path = data.draw(st.sampled_from(sorted(ANONYMOUS_STATUSES)))
    in_field = data.draw(st.booleans())
    which, right = data.draw(st.integers(0, 1000)), data.draw(st.booleans())
    valid = signup_pairs() if path == "/signup" else login_pairs(site.created, which, right)
    names = ["username", "password", "confirm", "next"]
    body = data.draw(form_bodies(names, site.token if in_field else None, valid))
    headers = {} if in_field else {"X-CSRF-Token": site.token}
    if body.content_type is not None:
        headers["Content-Type"] = body.content_type
    usernames = {v.strip() for k, v in body.pairs if k == "username" and _valid_username(v)}
    existed = {name for name in usernames if site.run(site.store.find_account(name))}

    answer = site.run(site.send("POST", path, body.data, headers))
    event(f"{path} -> {answer.status}")  # see --hypothesis-show-statistics

    assert_answered(answer, ANONYMOUS_STATUSES[path], body)
    username, password = first(body.pairs, "username"), first(body.pairs, "password")
    if answer.status == 303:
        assert username is not None and password is not None, body
        name = username.strip()
        if path == "/signup":
            assert name in usernames and name not in existed, body
            assert password == first(body.pairs, "confirm"), "the two passwords matched"
            created[name.casefold()] = password
        else:
            assert created.get(name.casefold()) == password, "only a right password logs in"
    elif path == "/signup":
        for name in usernames - existed:
            assert site.run(site.store.find_account(name)) is None, f"{name!r} from a refused form"
    if answer.status == 400 and readable(body) and path == "/signup":
        assert 'role="alert"' in answer.body and 'action="/signup"' in answer.body, "says why"
    assert site.run(site.send("GET", "/login")).status in (200, 303), "still serving"


def signup_pairs() -> st.SearchStrategy[Pairs]:
    """A sign-up form a person could send (and sometimes one that is nearly right)."""
    username = st.from_regex(r"[A-Za-z0-9_.-]{2,33}", fullmatch=True)
    password = st.one_of(
        st.sampled_from(["correct horse battery", "paßwort für alle 7", "Ｔｒｏｕｂａｄｏｒ ３"]),
        st.text(st.characters(codec="utf-8"), min_size=8, max_size=24),
    )
    same = st.sampled_from([True, True, True, False])
    return st.tuples(username, password, same).map(
        lambda t: [("username", t[0]), ("password", t[1]), ("confirm", t[1] if t[2] else "x")]
    )


def login_pairs(created: dict[str, str], which: int, right: bool) -> st.SearchStrategy[Pairs]:
    """A log-in form for an account the fuzzer made (with its password when ``right``).
    (Drawn as plain numbers first: what exists depends on the examples before.)"""
    name, password = sorted(created.items())[which % len(created)] if created else ("ada", "")
    return st.just([("username", name), ("password", password if right else password + "!")])


def _valid_username(value: str) -> bool:
    try:
        check_username(value)
    except InvalidUsername:
        return False
    return True


# -- the account's forms: link code, unlink, persona, chat, delete, log out -------------

ACCOUNT_FORMS = {
    "/account/link-code": ({200}, ["next"]),
    "/account/unlink": ({303}, ["platform", "user_id"]),
    "/account/persona": ({303, 400}, ["persona", "next"]),
    "/account/delete": ({403, 429}, ["password"]),
    "/chat/send": ({303}, ["text"]),
    "/logout": ({303}, []),
}
#: What the account page's own forms send.
ACCOUNT_VALID: dict[str, st.SearchStrategy[Pairs]] = {
    "/account/unlink": st.just([("platform", LINKED[0]), ("user_id", LINKED[1])]),
    "/account/persona": st.sampled_from(["ada", "morrow"]).map(lambda p: [("persona", p)]),
    "/account/delete": st.just([("password", PASSWORD + "?")]),
    "/chat/send": st.text(min_size=1, max_size=200).map(lambda t: [("text", t)]),
}
REFUSED = {400, 403, 413, 415}


@settings(FUZZ, max_examples=130)
@given(data=st.data())
def test_account_forms_survive_hostile_forms(member: Site, data: st.DataObject) -> None:
    site = member
    path = data.draw(st.sampled_from(sorted(ACCOUNT_FORMS)))
    accepted, names = ACCOUNT_FORMS[path]
    csrf = data.draw(st.sampled_from(["header", "header", "field", "field", "none", "wrong"]))
    token = {"header": None, "field": site.token, "none": None, "wrong": "0" * 64}[csrf]
    valid = ACCOUNT_VALID.get(path, NO_PAIRS)
    body = data.draw(form_bodies([*names, "csrf_token"], token, valid))
    if path == "/account/delete":
        assume(PASSWORD not in {v for _, v in body.pairs})
    if path == "/chat/send":  # commands (switch persona, forget...) are not this test's
        assume(not any(v.lstrip().startswith("/") for k, v in body.pairs if k == "text"))
    headers = {"X-CSRF-Token": site.token} if csrf == "header" else {}
    if body.content_type is not None:
        headers["Content-Type"] = body.content_type
    persona_before = site.run(site.active_persona())
    version_before, _ = site.run(site.chat_version(persona_before))

    answer = site.run(site.send("POST", path, body.data, headers))
    event(f"{path} -> {answer.status}")  # see --hypothesis-show-statistics

    if csrf in ("none", "wrong") and first(body.pairs, "csrf_token") != site.token:
        assert_answered(answer, REFUSED, body)
    else:
        assert_answered(answer, accepted | REFUSED, body)
    succeeded = answer.status not in REFUSED
    # Nothing changed that the request did not ask for.
    assert site.run(site.store.get_account(site.account.id)) is not None, "never deleted"
    linked = site.run(site.linked_ids())
    if LINKED not in linked:
        assert path == "/account/unlink" and succeeded, body
        assert (first(body.pairs, "platform"), first(body.pairs, "user_id")) == LINKED
        site.run(site.relink(*LINKED))
    persona = site.run(site.active_persona())
    if persona != persona_before:
        assert path == "/account/persona" and answer.status == 303, body
        assert first(body.pairs, "persona") == persona
    version, turns = site.run(site.chat_version(persona_before))
    if version != version_before:
        assert path == "/chat/send" and answer.status == 303, body
        text = first(body.pairs, "text")
        if readable(body):
            assert text is not None and turns[0].text == clean_text(text.strip())
    elif path == "/chat/send" and answer.status == 303 and readable(body):
        text = first(body.pairs, "text") or ""
        assert not text.strip() or len(text) > CHAT_LIMIT or text.lstrip().startswith("/")
    if answer.status == 303 and path == "/logout":
        site.run(site.restore_session())
    assert site.run(site.send("GET", "/account")).status == 200, "still serving, logged in"


# -- the chat's JSON endpoint -----------------------------------------------------------

#: Chat text that is not a command (commands switch personas, forget, reset: not ours here).
chat_text = hostile_text.map(lambda text: "_" + text if text.lstrip().startswith("/") else text)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),  # with NaN and infinities, which json.dumps writes as bare words
    chat_text,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


@dataclass
class JsonBody:
    content_type: str | None
    data: bytes | None
    #: The message exactly as the server must read it, when the body is well formed.
    expected: str | None
    canonical: bool

    def __repr__(self) -> str:
        expected = None if self.expected is None else self.expected[:60]
        return f"JsonBody({self.content_type!r}, {_short(self.data)}, expected={expected!r})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # hypothesis' printer
        printer.text(repr(self))


@st.composite
def json_bodies(draw: st.DrawFn) -> JsonBody:
    shape = draw(st.sampled_from(["message"] * 5 + ["any", "bytes", "deep", "huge"]))
    expected: str | None = None
    if shape == "message":
        text = draw(st.one_of(chat_text, json_values))
        extra = draw(st.dictionaries(st.text(max_size=5), json_values, max_size=2))
        value: Any = {**extra, "text": text}
        ascii_only = draw(st.booleans())
        data = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
        canonical = ascii_only or not _SURROGATES.search(data.decode("utf-8", "surrogatepass"))
        expected = text if isinstance(text, str) else None
    elif shape == "any":
        data = json.dumps(draw(json_values)).encode()
        canonical = False
    elif shape == "bytes":
        data = draw(st.binary(max_size=80))
        canonical = False
    elif shape == "deep":
        depth = draw(st.integers(1, MAX_BODY - 10))
        data = draw(st.sampled_from([b"[", b'{"a":'])) * (depth // 5 + 1)
        canonical = False
    else:
        data = b'{"text": "' + b"z" * draw(st.integers(MAX_BODY - 20, 3 * MAX_BODY)) + b'"}'
        canonical = False
    charset = draw(st.sampled_from([None, None, None, *CHARSETS]))
    content_type = draw(
        st.sampled_from(
            ["application/json"] * 4 + ["text/plain", "application/x-www-form-urlencoded", None]
        )
    )
    if content_type is not None and charset is not None:
        content_type += f"; charset={charset}"
    canonical = canonical and content_type in (
        "application/json",
        "application/json; charset=utf-8",
        "application/json; charset=UTF-8",
    )
    return JsonBody(content_type, data, expected if canonical else None, canonical)


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _events(body: str) -> list[str]:
    return re.findall(r"^event: (\w+)$", body, re.MULTILINE)


@settings(FUZZ, max_examples=150)
@given(
    body=json_bodies(),
    accept=st.sampled_from(["text/event-stream", "application/json", "text/html", "*/*", None]),
    transfer=st.sampled_from(
        ["plain", "plain", "chunked", "gzip", "gzip-broken", "deflate-broken"]
    ),
)
def test_the_chat_json_endpoint_survives_hostile_bodies(
    member: Site, body: JsonBody, accept: str | None, transfer: str
) -> None:
    site = member
    headers = {"X-CSRF-Token": site.token}
    if body.content_type is not None:
        headers["Content-Type"] = body.content_type
    if accept is not None:
        headers["Accept"] = accept
    data: bytes | AsyncIterator[bytes] | None = body.data
    assert body.data is not None
    if transfer == "chunked":
        data = _chunks(body.data, 1000)
    elif transfer == "gzip":
        data, headers["Content-Encoding"] = gzip.compress(body.data), "gzip"
    elif transfer == "gzip-broken":
        data, headers["Content-Encoding"] = gzip.compress(body.data)[:-9], "gzip"
    elif transfer == "deflate-broken":
        data, headers["Content-Encoding"] = b"\x00garbage" + body.data, "deflate"
    version_before, _ = site.run(site.chat_version())

    answer = site.run(site.send("POST", "/chat/send", data, headers))
    event(f"{transfer} -> {answer.status}")

    assert_answered(answer, {200, 303, 400, 413, 415}, (body, accept, transfer))
    version, turns = site.run(site.chat_version())
    if answer.status == 200:
        assert answer.headers["Content-Type"].startswith("text/event-stream")
        assert _events(answer.body)[-1:] == ["done"], answer.body[-300:]
        assert "error" not in _events(answer.body)
        assert version == version_before + 2, "the message and its reply are stored"
    elif answer.status != 303:
        assert version == version_before, "nothing is stored from a refused message"
        if accept in ("text/event-stream", "application/json"):
            assert json.loads(answer.body)["error"], "a script gets a JSON error"
    if (
        body.canonical
        and transfer in ("plain", "chunked", "gzip")
        and accept == "text/event-stream"
    ):
        text = body.expected
        ok = isinstance(text, str) and bool(text.strip()) and len(text) <= CHAT_LIMIT
        expected = 413 if len(body.data) > MAX_BODY else 200 if ok else 400
        assert answer.status == expected, (answer.status, answer.body[:200])
        if ok:
            assert text is not None and turns[0].text == clean_text(text.strip())
    page = site.run(site.send("GET", "/chat"))
    assert page.status == 200, "the chat page still shows, whatever was stored"


# -- raw requests: random methods, paths and query strings ------------------------------

PAGES = [
    "/",
    "/login",
    "/signup",
    "/chat",
    "/account",
    "/account/export",
    "/healthz",
    "/metrics",
    "/logout",
    "/chat/send",
    "/static/app.css",
    "/static/",
    "/static/x",
]
segments = st.one_of(
    st.sampled_from(
        [
            "..",
            ".",
            "%2e%2e",
            "%2f",
            "%00",
            "%ff",
            "%",
            "%zz",
            "static",
            "account",
            "a" * 300,
            "~",
            "%C0%AF",
            ";",
            "@",
            ":",
        ]
    ),
    st.text(
        st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="?#"), max_size=12
    ),
)
query_values = st.one_of(
    st.sampled_from(
        [
            "//evil.example",
            "/\\evil",
            "https://evil.example/",
            "%ff",
            "%00",
            "/chat",
            "logged_out",
            "deleted",
            "x" * 3000,
            "%E2%80%AE",
            "javascript:x",
        ]
    ),
    st.text(
        st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="#&"), max_size=20
    ),
)


@st.composite
def raw_targets(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        path = draw(st.sampled_from(PAGES))
    else:
        path = "/" + "/".join(draw(st.lists(segments, min_size=1, max_size=4)))
    if draw(st.booleans()):
        keys = st.sampled_from(["next", "done", "x", "", "next[]", "%ff"])
        pairs = draw(st.lists(st.tuples(keys, query_values), max_size=3))
        path += "?" + "&".join(f"{k}={v}" for k, v in pairs)
    return path


async def raw_request(site: Site, request: bytes) -> tuple[int, dict[str, str], str]:
    """One request written to the socket as given (no client library to tidy it up)."""
    server = site.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(30):
            raw = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    if headers.get("Transfer-Encoding") == "chunked":
        body = _dechunk(body)
    return status, headers, body.decode("utf-8", "replace")


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2 :]
    return bytes(out)


METHODS = [
    "GET",
    "GET",
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "PATCH",
    "DELETE",
    "OPTIONS",
    "TRACE",
    "PROPFIND",
    "BREW",
]


@settings(FUZZ, max_examples=100)
@given(method=st.sampled_from(METHODS), target=raw_targets(), logged_in=st.booleans())
def test_random_paths_methods_and_queries_get_friendly_answers(
    member: Site, method: str, target: str, logged_in: bool
) -> None:
    site = member
    cookies = site.client.session.cookie_jar.filter_cookies(site.client.make_url("/"))
    cookie = "; ".join(f"{k}={v.value}" for k, v in cookies.items()) if logged_in else ""
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    if cookie:
        lines.append(f"Cookie: {cookie}")
    if method in ("POST", "PUT", "PATCH"):
        lines.append("Content-Length: 0")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    status, headers, body = site.run(raw_request(site, request))
    event(f"{method} -> {status}")

    assert status < 500, (status, method, target, body[:300])
    assert status in {200, 204, 303, 400, 403, 404, 405, 415}, (status, method, target)
    assert not any(leak in body for leak in _LEAKS), (method, target, body[:300])
    if status == 303:
        location = headers.get("Location", "")
        assert location.startswith("/") and not location.startswith(("//", "/\\")), location
    # (A missing static file is aiohttp's bare 404: the file is only looked for as the
    # response is sent, after every middleware has run. Browsers never show it.)
    if status in (404, 405) and method != "HEAD" and not target.startswith("/static/"):
        assert "<!doctype html>" in body.lower() or '"error"' in body, "a friendly page"
    assert site.run(site.send("GET", "/account")).status == 200, "still serving"


# -- found by the fuzzers above, kept as plain tests ------------------------------------


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        pytest.param("application/x-www-form-urlencoded", b"text=\xff\xfe", 400, id="not-utf8"),
        pytest.param(
            "application/x-www-form-urlencoded; charset=utf-16", b"text=hi", 400, id="utf16-lie"
        ),
        pytest.param(
            "application/x-www-form-urlencoded; charset=bogus",
            b"text=hi",
            415,
            id="unknown-charset",
        ),
        pytest.param(
            "application/json; charset=bogus", b'{"text": "hi"}', 415, id="json-unknown-charset"
        ),
        pytest.param("multipart/form-data", b"text=hi", 400, id="multipart-no-boundary"),
        pytest.param(
            "multipart/form-data; boundary=x",
            b'--x\r\nContent-Disposition: form-data; name="text"\r\n\r\nhi',
            400,
            id="multipart-truncated",
        ),
        pytest.param(
            "multipart/form-data; boundary=x",
            b"--x\r\nContent-Disposition: form-data\r\n\r\nhi\r\n--x--\r\n",
            400,
            id="multipart-no-name",
        ),
        pytest.param("application/json", b"[" * 60_000, 400, id="json-nested-too-deep"),
    ],
)
def test_unreadable_bodies_are_client_errors_not_500(
    member: Site, content_type: str, body: bytes, status: int
) -> None:
    for csrf in ("header", "field"):
        headers = {"Content-Type": content_type}
        if csrf == "header":
            headers["X-CSRF-Token"] = member.token
        else:  # the CSRF check itself reads the form first
            body = b"csrf_token=" + member.token.encode() + b"&" + body
        answer = member.run(member.send("POST", "/chat/send", body, headers))
        assert answer.status in (status, 403), (csrf, answer.status)
        if csrf == "header":
            assert answer.status == status
        assert "Traceback" not in answer.body


def test_a_broken_gzip_body_is_400_and_the_next_request_is_served(member: Site) -> None:
    headers = {
        "X-CSRF-Token": member.token,
        "Content-Type": "application/json",
        "Content-Encoding": "gzip",
        "Accept": "text/event-stream",
    }
    answer = member.run(member.send("POST", "/chat/send", b"\x1f\x8bgarbage", headers))
    assert answer.status == 400 and json.loads(answer.body)["error"]
    assert member.run(member.send("GET", "/account")).status == 200


def test_a_lone_surrogate_in_json_is_stored_as_a_replacement_character(member: Site) -> None:
    """JSON can spell a lone surrogate; UTF-8 (and so SQLite) cannot store one. Before the
    fix the message failed to store and the reply ended in an error event."""
    headers = {"X-CSRF-Token": member.token, "Accept": "text/event-stream"}
    headers["Content-Type"] = "application/json"
    for text in ("a\ud800b", "and then hello"):
        body = json.dumps({"text": text}).encode()
        answer = member.run(member.send("POST", "/chat/send", body, headers))
        assert _events(answer.body)[-1:] == ["done"], answer.body
    _, turns = member.run(member.chat_version())
    assert turns[-1].text.startswith("re:and then hello")
    page = member.run(member.send("GET", "/chat"))
    assert page.status == 200 and "a\ufffdb" in page.body
