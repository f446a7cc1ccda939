"""HTTP interactions: signed POSTs to the route the web adapter serves, replies over
REST to the fake Discord. The route is mounted in the real web app (CSRF and all)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from nacl.signing import SigningKey

from adapters.discord import INTERACTIONS_PATH, DiscordAdapter
from adapters.web import create_app
from auth import TEST_PARAMS, AccountService, PasswordHasher
from bot.backends.base import Backend
from bot.linking import create_link_code
from bot.messages import Identity
from bot.store.memory import MemoryStore
from tests.discord.test_discord_media import FileEcho, attachment
from tests.support.discord_harness import (
    ALICE,
    BreakingBackend,
    assert_pieces_of,
    autocomplete,
    build_engine,
    fast_adapter,
    long_reply,
    slash,
)
from tests.support.discord_server import FakeDiscord
from tests.support.fakes import TextBackend

Client = TestClient[web.Request, web.Application]
KEY = SigningKey(bytes(range(32)))


def signed(body: bytes, *, key: SigningKey = KEY, timestamp: float | None = None) -> dict[str, str]:
    stamp = str(int(time.time() if timestamp is None else timestamp))
    signature = key.sign(stamp.encode() + body).signature.hex()
    return {
        "X-Signature-Ed25519": signature,
        "X-Signature-Timestamp": stamp,
        "Content-Type": "application/json",
    }


class Endpoint:
    """The web app with the Discord route, and the adapter behind it."""

    def __init__(self, client: Client, adapter: DiscordAdapter, fake: FakeDiscord):
        self.client = client
        self.adapter = adapter
        self.fake = fake

    async def post(self, payload: dict[str, Any]) -> tuple[int, Any]:
        body = json.dumps(payload).encode()
        response = await self.client.post(INTERACTIONS_PATH, data=body, headers=signed(body))
        return response.status, await response.json()

    async def reply(self, payload: dict[str, Any]) -> list[str]:
        status, answer = await self.post(payload)
        assert status == 200
        assert answer["type"] == 5, "deferred at once"

        def finished() -> list[str] | None:
            pieces = self.fake.transcript(token=payload["token"])
            busy = self.adapter.replies_in_flight or any("▌" in p for p in pieces)
            return None if busy or not pieces else pieces

        result: list[str] = await self.fake.wait_for(finished)
        return result


MakeEndpoint = Callable[..., Awaitable[Endpoint]]


@pytest.fixture
async def make_endpoint(
    fake: FakeDiscord, store: MemoryStore, aiohttp_client: Callable[..., Awaitable[Client]]
) -> AsyncIterator[MakeEndpoint]:
    stack = AsyncExitStack()

    async def make(backend: Backend | None = None) -> Endpoint:
        engine = build_engine(store, backend)
        settings = fake.settings(token=None, public_key=KEY.verify_key.encode().hex())
        adapter = fast_adapter(engine, settings, events=store)
        accounts = AccountService(store, hasher=PasswordHasher(TEST_PARAMS))
        app = create_app(engine, accounts, upkeep=store, extra_routes=adapter.web_routes())
        await stack.enter_async_context(adapter)
        return Endpoint(await aiohttp_client(app), adapter, fake)

    async with stack:
        yield make


async def test_ping_is_answered_with_pong(make_endpoint: MakeEndpoint) -> None:
    endpoint = await make_endpoint()
    assert await endpoint.post({"type": 1, "id": "1", "application_id": "1000"}) == (
        200,
        {"type": 1},
    )


async def test_a_signed_command_is_deferred_then_followed_up(
    make_endpoint: MakeEndpoint, fake: FakeDiscord
) -> None:
    text = "@everyone " + " ".join(f"part{i}" for i in range(40))
    endpoint = await make_endpoint(TextBackend(text, chunk=20, pause=0.01))
    assert endpoint.adapter.client is None, "no token: no gateway connection"
    payload = slash("chat", message="hello over http")

    pieces = await endpoint.reply(payload)

    assert pieces == [text]
    edits = fake.find("PATCH", rf"^/webhooks/1000/{payload['token']}/messages/@original$")
    assert len(edits) >= 2, "streamed"
    assert all(edit.body["allowed_mentions"] == {"parse": []} for edit in edits)
    assert not fake.find("POST", r"^/interactions/"), "the HTTP answer was the callback"


@pytest.mark.parametrize(
    ("name", "options", "guild", "deferred"),
    [
        pytest.param("whoami", {}, True, {"type": 5, "data": {"flags": 64}}, id="guild-ephemeral"),
        pytest.param("whoami", {}, False, {"type": 5}, id="dm-plain"),
        pytest.param("chat", {"message": "hi"}, True, {"type": 5}, id="chat-visible"),
    ],
)
async def test_account_commands_are_ephemeral_in_guilds(
    make_endpoint: MakeEndpoint,
    name: str,
    options: dict[str, str],
    guild: bool,
    deferred: dict[str, Any],
) -> None:
    endpoint = await make_endpoint()
    payload = slash(name, guild=guild, **options)
    body = json.dumps(payload).encode()
    response = await endpoint.client.post(INTERACTIONS_PATH, data=body, headers=signed(body))
    assert await response.json() == deferred
    pieces = await endpoint.fake.wait_for(lambda: endpoint.fake.transcript(token=payload["token"]))
    assert pieces[0]


def _tamper(body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    return body.replace(b"hello", b"HELLO"), headers


def _wrong_key(body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    return body, signed(body, key=SigningKey(bytes(range(1, 33))))


def _old(body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    return body, signed(body, timestamp=time.time() - 301)


def _future(body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    return body, signed(body, timestamp=time.time() + 301)


def _unsigned(body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    return body, {"Content-Type": "application/json"}


def _garbage(body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    return body, headers | {"X-Signature-Ed25519": "not-hex"}


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(_tamper, id="tampered-body"),
        pytest.param(_wrong_key, id="wrong-key"),
        pytest.param(_old, id="old-timestamp"),
        pytest.param(_future, id="future-timestamp"),
        pytest.param(_unsigned, id="no-signature"),
        pytest.param(_garbage, id="malformed-signature"),
    ],
)
async def test_a_bad_signature_is_refused(
    make_endpoint: MakeEndpoint,
    fake: FakeDiscord,
    spoil: Callable[[bytes, dict[str, str]], tuple[bytes, dict[str, str]]],
) -> None:
    endpoint = await make_endpoint()
    body = json.dumps(slash("chat", message="hello")).encode()
    body, headers = spoil(body, signed(body))
    response = await endpoint.client.post(INTERACTIONS_PATH, data=body, headers=headers)
    assert response.status == 401
    assert endpoint.adapter.replies_in_flight == 0
    assert fake.calls == []


async def test_a_signed_but_malformed_interaction_is_a_bad_request(
    make_endpoint: MakeEndpoint,
) -> None:
    endpoint = await make_endpoint()
    body = b'{"type": 2, "data": {}}'
    response = await endpoint.client.post(INTERACTIONS_PATH, data=body, headers=signed(body))
    assert response.status == 400


async def test_an_unknown_command_is_answered_inline(make_endpoint: MakeEndpoint) -> None:
    endpoint = await make_endpoint()
    assert await endpoint.post(slash("dance")) == (
        200,
        {
            "type": 4,
            "data": {
                "content": "I don't know /dance. Try /help.",
                "allowed_mentions": {"parse": []},
                "flags": 64,
            },
        },
    )


async def test_persona_autocomplete_over_http(make_endpoint: MakeEndpoint) -> None:
    endpoint = await make_endpoint()
    assert await endpoint.post(autocomplete("persona", "id", "ad")) == (
        200,
        {"type": 8, "data": {"choices": [{"name": "Professor Ada (ada)", "value": "ada"}]}},
    )


async def test_a_5000_character_reply_over_http_is_split_into_follow_ups(
    make_endpoint: MakeEndpoint, fake: FakeDiscord
) -> None:
    text = long_reply()
    endpoint = await make_endpoint(TextBackend(text, chunk=400, pause=0.005))
    payload = slash("chat", message="code please", guild=False)
    pieces = await endpoint.reply(payload)
    assert_pieces_of(pieces, text)
    followups = fake.find("POST", rf"^/webhooks/1000/{payload['token']}$")
    assert len(followups) == len(pieces) - 1
    assert all(call.query == {"wait": "true"} for call in followups)


async def test_a_rate_limited_follow_up_waits_for_retry_after(
    make_endpoint: MakeEndpoint, fake: FakeDiscord
) -> None:
    endpoint = await make_endpoint()
    fake.fail_next("PATCH", r"/messages/@original$", retry_after=0.3)
    payload = slash("chat", message="limited")
    assert await endpoint.reply(payload) == ["re:limited saw:[]"]
    limited, retried = fake.find("PATCH", r"/messages/@original$")[:2]
    assert retried.body == limited.body
    assert retried.at - limited.at >= 0.29


async def test_the_user_and_scope_come_from_the_payload(
    make_endpoint: MakeEndpoint, store: MemoryStore
) -> None:
    endpoint = await make_endpoint()
    await endpoint.reply(slash("chat", message="first"))
    assert await endpoint.reply(slash("chat", message="second")) == ["re:second saw:[first]"]
    assert await endpoint.reply(slash("chat", message="private", guild=False)) == [
        "re:private saw:[]"
    ], "a DM is another conversation than the guild channel"
    assert ALICE["id"] in (await endpoint.reply(slash("whoami")))[0]


async def test_an_error_after_a_long_partial_reply_deletes_the_extra_follow_up(
    make_endpoint: MakeEndpoint, fake: FakeDiscord
) -> None:
    partial = " ".join(f"half{i}" for i in range(500))  # over 3,000 characters
    endpoint = await make_endpoint(BreakingBackend(partial, chunk=1000, pause=0.01))
    payload = slash("chat", message="go")
    pieces = await endpoint.reply(payload)
    assert len(pieces) == 1 and "/retry" in pieces[0]
    (deleted,) = fake.find("DELETE", rf"^/webhooks/1000/{payload['token']}/messages/\d+$")
    assert deleted.body is None


async def test_link_over_http_asks_with_buttons_and_a_press_confirms(
    make_endpoint: MakeEndpoint, fake: FakeDiscord, store: MemoryStore
) -> None:
    account = await store.create_account("alice", "hash", 0.0)
    code = await create_link_code(store, account.id, time.time())
    endpoint = await make_endpoint()
    asked = slash("link", code=code)
    assert '"alice"' in (await endpoint.reply(asked))[0]
    patched = fake.find("PATCH", rf"^/webhooks/1000/{asked['token']}/messages/@original$")
    rows = [call.body["components"] for call in patched if "components" in call.body]
    assert [b["custom_id"] for b in rows[-1][0]["components"]] == [
        "pb:/link confirm",
        "pb:/link confirm move",
        "pb:/link cancel",
    ]
    assert await store.get_identity(Identity("discord", ALICE["id"])) is None
    pressed = {
        **{k: v for k, v in asked.items() if k not in ("data", "id", "token")},
        "id": "9001",
        "token": "itoken-pressed",
        "type": 3,
        "data": {"custom_id": "pb:/link confirm move", "component_type": 2},
    }
    answer = await endpoint.reply(pressed)
    assert answer[0].startswith("Linked: this Discord account now speaks for alice.")
    link = await store.get_identity(Identity("discord", ALICE["id"]))
    assert link is not None and link.account_id == account.id


async def test_a_foreign_button_is_a_bad_request(make_endpoint: MakeEndpoint) -> None:
    endpoint = await make_endpoint()
    payload = {**slash("whoami"), "type": 3, "data": {"custom_id": "other:thing"}}
    status, _ = await endpoint.post(payload)
    assert status == 400


async def test_chat_with_an_attachment_over_http(
    make_endpoint: MakeEndpoint, fake: FakeDiscord
) -> None:
    endpoint = await make_endpoint(FileEcho())  # type: ignore[arg-type]
    file = attachment(fake, "notes.txt", b"remember the milk", "text/plain")
    payload = slash("chat", message="read this")
    payload["data"]["options"].append({"name": "attachment", "type": 11, "value": file["id"]})
    payload["data"]["resolved"] = {"attachments": {file["id"]: file}}
    pieces = await endpoint.reply(payload)
    assert "\n".join(pieces).startswith("re:read this\n\nnotes.txt:")
    assert fake.attachment_downloads == ["notes.txt"]


async def test_an_attachment_the_payload_does_not_carry_is_a_bad_request(
    make_endpoint: MakeEndpoint,
) -> None:
    endpoint = await make_endpoint()
    payload = slash("chat", message="read this")
    payload["data"]["options"].append({"name": "attachment", "type": 11, "value": "404"})
    status, _ = await endpoint.post(payload)
    assert status == 400
