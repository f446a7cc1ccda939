"""CharacterAIBackend against a fake with PyCharacterAI's surface; the thin real-client
module against fakes of PyCharacterAI's client that raise its own exceptions."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from PyCharacterAI.exceptions import (
    ActionError,
    AuthenticationError,
    FetchError,
    RequestError,
    SessionClosedError,
)

import tests.support.media_samples as samples
from bot.app import PersonaBridge
from bot.app_settings import Settings
from bot.backends.characterai import CHARACTER_ID, CHAT_ID, CharacterAIBackend
from bot.backends.characterai_client import SharedClient, connect
from bot.backends.guard import GuardPolicy, ReplyGuard
from bot.backends.offline import OfflineBackend
from bot.config import MediaSettings
from bot.errors import BackendError, BackendTimeout, BackendUnavailable, ConfigError
from bot.media import MediaProcessor
from bot.messages import IncomingFile, ReplyKind, Turn
from bot.personas import PersonaLibrary
from bot.store.memory import MemoryStore
from bot.store.sqlite import SqliteStore
from tests.support.backend_harness import build_engine, card
from tests.support.characterai_client import FakeCharacterAI, FakeCharacterAIService
from tests.support.engine import dm, key, reply, send
from tests.support.media_samples import FakeTranscriber

PERSONA = card(backend="characterai", character_id="char-ada")


class Connector:
    """``connect`` for the backend: a client of the fake service, counted."""

    def __init__(self, service: FakeCharacterAIService, failures: Sequence[BaseException] = ()):
        self.service = service
        self.failures = list(failures)
        self.clients: list[FakeCharacterAI] = []
        self.attempts = 0

    async def __call__(self) -> FakeCharacterAI:
        self.attempts += 1
        if self.failures:
            raise self.failures.pop(0)
        client = self.service.client()
        self.clients.append(client)
        return client


@pytest.fixture
def service() -> FakeCharacterAIService:
    return FakeCharacterAIService()


async def started(connector: Connector) -> CharacterAIBackend:
    backend = CharacterAIBackend(connector)
    await backend.start()
    return backend


# -- the chat lives in the conversation's state ----------------------------------------


async def test_the_chat_is_kept_in_the_state_and_reused_across_messages(
    service: FakeCharacterAIService, store: MemoryStore
) -> None:
    connector = Connector(service)
    backend = await started(connector)
    engine = build_engine(store, [backend], [PERSONA])
    assert (await reply(engine, dm("alice", "one"))).text == "char-ada heard: one (#1)"
    assert (await reply(engine, dm("alice", "two"))).text == "char-ada heard: two (#2)"
    assert (await reply(engine, dm("bob", "hi"))).text == "char-ada heard: hi (#1)"
    assert service.created == ["chat-1", "chat-2"]
    assert [(chat, text) for _, chat, text in service.sent] == [
        ("chat-1", "one"),
        ("chat-1", "two"),
        ("chat-2", "hi"),
    ]
    state = (await store.load_window(key("alice"), 1)).backend_state
    assert state == {CHAT_ID: "chat-1", CHARACTER_ID: "char-ada"}
    assert connector.attempts == 1  # one client for everyone


async def test_the_chat_continues_after_a_restart(
    service: FakeCharacterAIService, tmp_path: Path
) -> None:
    path = tmp_path / "pb.db"
    async with SqliteStore(path) as first_store:
        backend = await started(Connector(service))
        engine = build_engine(first_store, [backend], [PERSONA])
        assert (await reply(engine, dm("alice", "before"))).text.endswith("(#1)")
        await engine.aclose()
        await backend.aclose()
    # a new process: a new store object on the same file, a new client, a new engine
    async with SqliteStore(path) as second_store:
        backend = await started(Connector(service))
        engine = build_engine(second_store, [backend], [PERSONA])
        assert (await reply(engine, dm("alice", "after"))).text == "char-ada heard: after (#2)"
        await backend.aclose()
    assert service.created == ["chat-1"]
    assert service.chats["chat-1"] == ["before", "after"]


async def test_reset_starts_a_new_chat(service: FakeCharacterAIService, store: MemoryStore) -> None:
    engine = build_engine(store, [await started(Connector(service))], [PERSONA])
    await reply(engine, dm("alice", "one"))
    await reply(engine, dm("alice", "two"))
    assert "New conversation" in (await reply(engine, dm("alice", "/reset"))).text
    assert (await reply(engine, dm("alice", "three"))).text == "char-ada heard: three (#1)"
    assert service.created == ["chat-1", "chat-2"]
    assert service.chats == {"chat-1": ["one", "two"], "chat-2": ["three"]}


async def test_another_character_in_the_card_gets_its_own_chat(
    service: FakeCharacterAIService,
) -> None:
    backend = await started(Connector(service))
    state: dict[str, Any] = {}
    message = Turn(1, "user", "hi", "Alice", 0.0)
    for character in ("char-a", "char-a", "char-b"):
        persona = card(backend="characterai", character_id=character)
        assert "".join([d async for d in backend.reply(persona, [], message, state)])
    assert service.created == ["chat-1", "chat-2"]
    assert state[CHARACTER_ID] == "char-b"


@pytest.mark.parametrize(
    ("texts", "deltas"),
    [
        pytest.param(["Hel", "Hello, ", "Hello, world"], ["Hel", "lo, ", "world"], id="growing"),
        pytest.param(["Hi", "Hi", "Hi there", "Hi there"], ["Hi", " there"], id="repeated"),
        pytest.param(["", "Hi"], ["Hi"], id="empty-first"),
        pytest.param(["Hello wor", "Hello, world"], ["Hello wor"], id="rewrite-not-unsaid"),
        pytest.param(["Done."], ["Done."], id="one-turn"),
    ],
)
async def test_streamed_turns_become_deltas(
    service: FakeCharacterAIService, texts: list[str], deltas: list[str]
) -> None:
    service.script = lambda chat_id, text: texts
    backend = await started(Connector(service))
    message = Turn(1, "user", "hi", "Alice", 0.0)
    got = [d async for d in backend.reply(PERSONA, [], message, {})]
    assert got == deltas


async def test_engine_streams_the_deltas(
    service: FakeCharacterAIService, store: MemoryStore
) -> None:
    engine = build_engine(store, [await started(Connector(service))], [PERSONA])
    deltas, done = await send(engine, dm("alice", "hello there"))
    full = "char-ada heard: hello there (#1)"
    assert deltas == [full[i : i + 4] for i in range(0, len(full), 4)]
    assert done.text == full


# -- the client: once, closed at shutdown, a refused token stops the start ---------------


async def test_the_client_is_made_once_and_closed_on_shutdown(
    service: FakeCharacterAIService, store: MemoryStore
) -> None:
    connector = Connector(service)
    backend = await started(connector)
    engine = build_engine(store, [backend], [PERSONA])
    await asyncio.gather(*(reply(engine, dm(f"user{n}", "hi")) for n in range(5)))
    assert connector.attempts == 1
    await backend.aclose()
    assert connector.clients[0].closed
    with pytest.raises(BackendUnavailable):
        await anext(backend.reply(PERSONA, [], Turn(1, "user", "x", "A", 0.0), {}))


async def test_an_unreachable_service_at_start_is_tried_again_on_the_first_reply(
    service: FakeCharacterAIService, store: MemoryStore, caplog: pytest.LogCaptureFixture
) -> None:
    connector = Connector(service, failures=[OSError("no route to host")])
    with caplog.at_level(logging.WARNING):
        backend = await started(connector)
    assert "not reachable yet" in caplog.text
    engine = build_engine(store, [backend], [PERSONA])
    assert (await reply(engine, dm("alice", "hi"))).kind is ReplyKind.CHAT
    assert connector.attempts == 2


async def test_a_refused_token_stops_the_application_start(service: FakeCharacterAIService) -> None:
    refused = ConfigError("PERSONABRIDGE_CHARACTERAI__TOKEN: Character.AI refused the token")
    backend = CharacterAIBackend(Connector(service, failures=[refused]))
    store = MemoryStore()
    bridge = PersonaBridge(
        Settings(),
        store=store,
        backends={"offline": OfflineBackend(seed=1), "characterai": backend},
        personas=PersonaLibrary([PERSONA]),
    )
    with pytest.raises(ConfigError, match="CHARACTERAI__TOKEN"):
        async with bridge:
            pass
    with pytest.raises(Exception, match="not open"):
        await store.ping()  # what was opened before the failure is closed again


async def test_a_card_without_character_id_falls_back(
    service: FakeCharacterAIService, store: MemoryStore
) -> None:
    backend = await started(Connector(service))
    persona = card(backend="characterai", fallback=("offline",))
    engine = build_engine(store, [backend, OfflineBackend(seed=1)], [persona])
    done = await reply(engine, dm("alice", "What is Docker?"))
    assert done.kind is ReplyKind.CHAT and "sealed boxes" in done.text
    assert service.created == []
    with pytest.raises(BackendError, match=r"backend_options\.character_id"):
        await anext(backend.reply(persona, [], Turn(1, "user", "x", "A", 0.0), {}))


# -- the thin module around the real PyCharacterAI client ---------------------------------


class RawClient(FakeCharacterAI):
    """PyCharacterAI's client as the thin module sees it: with its requester (whose
    websocket can be dropped) and its login."""

    def __init__(self, service: FakeCharacterAIService, login: BaseException | None = None):
        super().__init__(service)
        self.login = login
        self.token: str | None = None
        self.socket_resets = 0
        self.active = 0
        self.most_active = 0
        self.send_error: BaseException | None = None
        self.hang = False
        real_send = self.chat.send_message

        async def send_message(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
            turns = await real_send(*args, **kwargs)
            return self._watched(turns)

        self.chat.send_message = send_message  # type: ignore[method-assign]

    async def authenticate(self, token: str) -> None:
        if self.login is not None:
            raise self.login
        self.token = token

    def _get_requester(self) -> RawClient:
        return self

    async def ws_close_async(self) -> None:
        self.socket_resets += 1

    async def _watched(self, turns: AsyncGenerator[Any, Any]) -> AsyncGenerator[Any, Any]:
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        try:
            if self.send_error is not None:
                raise self.send_error
            if self.hang:
                try:
                    await asyncio.Event().wait()
                except asyncio.CancelledError:
                    # what PyCharacterAI 2.2 does: the cancellation comes out as this
                    raise SessionClosedError from None
            async for turn in turns:
                await asyncio.sleep(0.001)
                yield turn
        finally:
            self.active -= 1


@pytest.mark.parametrize(
    "refusal",
    [
        pytest.param(AuthenticationError("Maybe your token is invalid?"), id="401"),
        pytest.param(FetchError("Cannot fetch your account."), id="not-200"),
    ],
)
async def test_connect_turns_a_refused_token_into_a_clear_config_error(
    service: FakeCharacterAIService, refusal: BaseException
) -> None:
    raw = RawClient(service, login=refusal)
    with pytest.raises(ConfigError, match=r"PERSONABRIDGE_CHARACTERAI__TOKEN: .*refused"):
        await connect("bad-token", make_client=lambda: raw)
    assert raw.closed  # the session it opened to log in is not left behind


async def test_connect_logs_in_once_and_shares_the_client(service: FakeCharacterAIService) -> None:
    raw = RawClient(service)
    client = await connect("good-token", make_client=lambda: raw)
    assert isinstance(client, SharedClient) and raw.token == "good-token"
    backend = CharacterAIBackend(lambda: _ready(client))
    await backend.start()
    message = Turn(1, "user", "hi", "Alice", 0.0)
    replies = await asyncio.gather(
        *(_text(backend.reply(PERSONA, [], message, {})) for _ in range(4))
    )
    assert replies == ["char-ada heard: hi (#1)"] * 4
    assert raw.most_active == 1  # one request at a time on its one websocket
    assert raw.socket_resets == 0
    await backend.aclose()
    assert raw.closed


@pytest.mark.parametrize(
    ("error", "ours", "transient"),
    [
        pytest.param(ActionError("Cannot send message. gone"), BackendError, False, id="action"),
        pytest.param(AuthenticationError("token?"), BackendError, False, id="auth"),
        pytest.param(RequestError(), BackendUnavailable, True, id="request"),
        pytest.param(OSError("reset by peer"), BackendUnavailable, True, id="os"),
    ],
)
async def test_pycharacterai_errors_become_ours_and_the_socket_is_reset(
    service: FakeCharacterAIService, error: BaseException, ours: type, transient: bool
) -> None:
    raw = RawClient(service)
    raw.send_error = error
    backend = CharacterAIBackend(lambda: connect("t", make_client=lambda: raw))
    with pytest.raises(ours) as caught:
        await _text(backend.reply(PERSONA, [], Turn(1, "user", "x", "A", 0.0), {}))
    assert caught.value.transient is transient
    assert raw.socket_resets == 1  # its answer must not reach the next request
    await backend.aclose()


async def test_a_stream_left_early_resets_the_socket(service: FakeCharacterAIService) -> None:
    raw = RawClient(service)
    client = await connect("t", make_client=lambda: raw)
    turns = await client.chat.send_message("char-ada", "chat-x", "hi", streaming=True)
    service.chats["chat-x"] = []
    await anext(turns)
    await turns.aclose()
    assert raw.socket_resets == 1


async def test_a_timeout_is_a_timeout_though_pycharacterai_swallows_cancellation(
    service: FakeCharacterAIService,
) -> None:
    raw = RawClient(service)
    raw.hang = True
    backend = CharacterAIBackend(lambda: connect("t", make_client=lambda: raw))
    guard = ReplyGuard({"characterai": backend}, GuardPolicy(first_delta_timeout=1.0, retries=0))
    state: dict[str, Any] = {}
    with pytest.raises(BackendTimeout):
        await _text(guard.stream(PERSONA, [], Turn(1, "user", "x", "A", 0.0), state))
    assert raw.socket_resets == 1
    raw.hang = False  # and the next request works, in the same chat
    again = await _text(guard.stream(PERSONA, [], Turn(2, "user", "y", "A", 0.0), state))
    assert again == "char-ada heard: y (#2)"
    await backend.aclose()


async def _ready(client: SharedClient) -> SharedClient:
    return client


async def _text(deltas: AsyncIterator[str]) -> str:
    return "".join([d async for d in deltas])


def test_characterai_is_registered_when_a_token_is_set() -> None:
    from bot.app import build_backends
    from bot.app_settings import load_settings

    environ = {"PERSONABRIDGE_CHARACTERAI__TOKEN": "token"}
    backends = build_backends(load_settings(environ, use_dotenv=False))
    assert isinstance(backends["characterai"], CharacterAIBackend)  # it logs in at start
    assert "characterai" not in build_backends(load_settings({}, use_dotenv=False))


async def test_transcripts_and_files_go_as_text_images_as_a_line(
    service: FakeCharacterAIService, store: MemoryStore
) -> None:
    backend = await started(Connector(service))
    engine = build_engine(store, [backend], [PERSONA])
    engine.media = MediaProcessor(MediaSettings(), FakeTranscriber("meet at nine"))
    files = (
        IncomingFile.of_bytes("v.ogg", samples.ogg_voice(), voice=True),
        IncomingFile.of_bytes("list.txt", b"milk, eggs"),
        IncomingFile.of_bytes("cat.png", samples.png(8, 4)),
    )
    await reply(engine, dataclasses.replace(dm("alice", "see"), files=files))
    assert [text for _, _, text in service.sent] == [
        "see\n\nmeet at nine\n\nlist.txt:\n```\nmilk, eggs\n```\n\n[an image cat.png, 8x4]"
    ]
