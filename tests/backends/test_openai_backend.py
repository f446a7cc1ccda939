"""OpenAIBackend with the real openai SDK against a fake OpenAI-compatible server."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.app import PersonaBridge, build_backends
from bot.app_settings import Settings, load_settings
from bot.backends.guard import GuardPolicy, ReplyGuard
from bot.backends.offline import OfflineBackend
from bot.backends.openai import OpenAIBackend
from bot.config import EngineSettings
from bot.errors import BackendError, BackendTimeout, BackendUnavailable, ConfigError
from bot.messages import ReplyKind, Turn
from bot.store.base import Usage
from bot.store.memory import MemoryStore
from tests.support.backend_harness import FAST, build_engine, card
from tests.support.engine import dm, key, reply, send
from tests.support.openai_server import FakeOpenAI, Reply, Stall, Status
from tests.support.platform_start import settings_for


@pytest.fixture
async def server() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
async def backend(server: FakeOpenAI) -> AsyncIterator[OpenAIBackend]:
    openai = OpenAIBackend(base_url=server.url, model="default-model", timeout=5)
    yield openai
    await openai.aclose()


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def collect(backend: OpenAIBackend, text: str = "hi", **options: object) -> str:
    message = Turn(1, "user", text, "Alice", 0.0)
    return "".join([d async for d in backend.reply(card(**options), [], message, {})])


# -- the request ----------------------------------------------------------------------


async def test_request_has_the_persona_and_the_window_in_order(
    server: FakeOpenAI, backend: OpenAIBackend, store: MemoryStore
) -> None:
    persona = card(model="persona-model", temperature=0.3, top_p=0.9, max_tokens=200)
    engine = build_engine(store, [backend], [persona])
    deltas, first = await send(engine, dm("alice", "one"))
    assert first.kind is ReplyKind.CHAT and first.text == "You said: one"
    # the first read's words at once, the rest as it came (joined: see bot.coalesce)
    assert deltas[0].startswith("You ") and "".join(deltas) == "You said: one"
    await reply(engine, dm("alice", "two"))

    body = server.chat_requests[-1]
    assert (body["model"], body["temperature"], body["top_p"], body["max_tokens"]) == (
        "persona-model",
        0.3,
        0.9,
        200,
    )
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    system, *rest = body["messages"]
    assert system["role"] == "system"
    for part in (
        "You are Professor Ada. Speak to Alice warmly.",
        "Professor Ada teaches cloud computing.",
        "Professor Ada's personality: patient, dry humour",
        "Scenario: Alice visits Professor Ada's office hours.",
        "- Lambda functions scale to zero.",
    ):
        assert part in system["content"]
    assert "{{" not in system["content"]
    assert [(m["role"], m.get("name"), m["content"]) for m in rest[:4]] == [
        ("system", None, "[Example Chat]"),
        ("system", "example_user", "What is Docker?"),
        ("system", "example_assistant", "Containers, Alice: sealed boxes."),
        ("system", None, "[Start a new Chat]"),
    ]
    assert [(m["role"], m["content"]) for m in rest[4:]] == [
        ("user", "one"),
        ("assistant", "You said: one"),
        ("user", "two"),
        ("system", "Stay in character as Professor Ada; keep it short for Alice."),
    ]


async def test_settings_give_the_model_and_sampling_a_card_leaves_out(server: FakeOpenAI) -> None:
    openai = OpenAIBackend(
        base_url=server.url,
        model="fallback-model",
        defaults={"temperature": 0.7, "max_tokens": 50},
        include_usage=False,
    )
    try:
        assert await collect(openai, "x", max_completion_tokens=9, extra_body={"top_k": 40})
    finally:
        await openai.aclose()
    body = server.requests[-1]
    assert (body["model"], body["temperature"], body["max_completion_tokens"]) == (
        "fallback-model",
        0.7,
        9,
    )
    assert "max_tokens" not in body and "stream_options" not in body
    assert body["top_k"] == 40  # extra_body goes to the server as it is


async def test_a_failed_reply_leaves_consecutive_user_turns_joined(
    server: FakeOpenAI, backend: OpenAIBackend, store: MemoryStore
) -> None:
    engine = build_engine(store, [backend], [card()], policy=FAST)
    server.script = [Status(400), Status(400)]
    assert (await reply(engine, dm("alice", "first"))).kind is ReplyKind.ERROR
    assert (await reply(engine, dm("alice", "second"))).kind is ReplyKind.ERROR
    await reply(engine, dm("alice", "third"))
    roles = [(m["role"], m["content"]) for m in server.requests[-1]["messages"][5:-1]]
    assert roles == [("user", "first\n\nsecond\n\nthird")]


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        pytest.param({"model": ""}, "OPENAI__MODEL", id="no-model"),
        pytest.param({"temperature": "hot"}, "backend_options.temperature", id="bad-temperature"),
        pytest.param({"max_tokens": True}, "backend_options.max_tokens", id="bool-is-not-int"),
        pytest.param({"stop": ["ok", 3]}, "backend_options.stop", id="bad-stop"),
        pytest.param({"extra_body": "x"}, "extra_body must be a table", id="bad-extra-body"),
    ],
)
async def test_a_wrong_card_is_a_clear_non_transient_error(
    server: FakeOpenAI, backend: OpenAIBackend, options: dict[str, object], complaint: str
) -> None:
    with pytest.raises(BackendError, match=complaint) as caught:
        await collect(backend, **options)
    assert not caught.value.transient
    assert server.requests == []


# -- failures -------------------------------------------------------------------------


async def test_429_then_success_is_retried_once_by_the_guard(
    server: FakeOpenAI, backend: OpenAIBackend, store: MemoryStore
) -> None:
    server.script = [Status(429, "slow down", {"retry-after": "0"})]
    engine = build_engine(store, [backend], [card()])
    done = await reply(engine, dm("alice", "hello"))
    assert done.kind is ReplyKind.CHAT and done.text == "You said: hello"
    assert len(server.requests) == 2  # the guard's one retry; the SDK retried nothing


@pytest.mark.parametrize(
    ("status", "error", "transient"),
    [
        pytest.param(429, BackendUnavailable, True, id="429"),
        pytest.param(500, BackendUnavailable, True, id="500"),
        pytest.param(503, BackendUnavailable, True, id="503"),
        pytest.param(408, BackendUnavailable, True, id="408"),
        pytest.param(400, BackendError, False, id="400"),
        pytest.param(401, BackendError, False, id="401"),
        pytest.param(404, BackendError, False, id="404-unknown-model"),
    ],
)
async def test_http_errors_are_translated_at_the_edge(
    server: FakeOpenAI, backend: OpenAIBackend, status: int, error: type, transient: bool
) -> None:
    server.script = [Status(status, "nope")]
    with pytest.raises(error, match=f"HTTP {status}: .*nope") as caught:
        await collect(backend)
    assert caught.value.transient is transient
    assert len(server.requests) == 1  # max_retries=0: the SDK never retries


@pytest.mark.parametrize(
    ("status", "requests"),
    [
        pytest.param(500, 2, id="500-retried-then-given-up"),
        pytest.param(401, 1, id="401-not-retried"),
    ],
)
async def test_a_failing_server_keeps_the_turn_and_retry_answers(
    server: FakeOpenAI, backend: OpenAIBackend, store: MemoryStore, status: int, requests: int
) -> None:
    server.script = [Status(status)] * requests
    engine = build_engine(store, [backend], [card()])
    done = await reply(engine, dm("alice", "question"))
    assert done.kind is ReplyKind.ERROR and "/retry" in done.text
    assert len(server.requests) == requests
    assert [t.text for t in (await store.load_window(key("alice"), 10)).turns] == ["question"]
    retried = await reply(engine, dm("alice", "/retry"))
    assert retried.kind is ReplyKind.CHAT and retried.text == "You said: question"


@pytest.mark.parametrize(
    "stall",
    [
        pytest.param(Stall(()), id="before-any-text"),
        pytest.param(Stall(("You ", "said")), id="after-some-text"),
    ],
)
async def test_a_stalled_stream_is_cut_by_the_guards_idle_timeout(
    server: FakeOpenAI, backend: OpenAIBackend, store: MemoryStore, stall: Stall
) -> None:
    policy = GuardPolicy(first_delta_timeout=1.0, total_timeout=5, retries=0)
    engine = build_engine(store, [backend], [card()], policy=policy)
    server.script = [stall]
    deltas, done = await send(engine, dm("alice", "hello"))
    # what was shown came first (the first read's words at once); what was read since
    # the last pause goes with the stall
    shown = "".join(deltas)
    assert shown == "".join(stall.before)[: len(shown)]
    assert len(deltas) <= 1 and (not stall.before or shown.startswith(stall.before[0]))
    assert done.kind is ReplyKind.ERROR and "/retry" in done.text
    assert [t.text for t in (await store.load_window(key("alice"), 10)).turns] == ["hello"]


async def test_a_stall_raises_backend_timeout(server: FakeOpenAI, backend: OpenAIBackend) -> None:
    server.script = [Stall(("Hel",))]
    guard = ReplyGuard({"openai": backend}, GuardPolicy(first_delta_timeout=1.0, retries=0))
    got: list[str] = []
    with pytest.raises(BackendTimeout):
        await drain(guard.stream(card(), [], Turn(1, "user", "hi", "A", 0.0), {}), got)
    assert got == ["Hel"]


async def drain(deltas: AsyncIterator[str], into: list[str]) -> None:
    async for delta in deltas:
        into.append(delta)


@pytest.mark.parametrize(
    "note", [pytest.param(True, id="with-note"), pytest.param(False, id="quiet")]
)
async def test_with_the_server_down_the_personas_fallback_answers(
    store: MemoryStore, note: bool
) -> None:
    down = OpenAIBackend(base_url=f"http://127.0.0.1:{unused_port()}/v1", model="m")
    offline = OfflineBackend(seed=1)
    engine = build_engine(
        store,
        [down, offline],
        [card(fallback=("offline",))],
        settings=EngineSettings(fallback_note=note),
    )
    try:
        deltas, done = await send(engine, dm("alice", "What is Docker?"))
    finally:
        await down.aclose()
    assert done.kind is ReplyKind.CHAT and "sealed boxes" in done.text
    stored = (await store.load_window(key("alice"), 10)).turns
    assert [t.text for t in stored] == ["What is Docker?", done.text]  # the note is not kept
    if note:
        assert deltas[-1].startswith("\n\n(") and "backup answered" in deltas[-1]
        assert "".join(deltas[:-1]).strip() == done.text
    else:
        assert "".join(deltas).strip() == done.text


# -- usage ----------------------------------------------------------------------------


async def test_token_usage_is_recorded_per_owner_and_shown_in_whoami(
    server: FakeOpenAI, backend: OpenAIBackend, store: MemoryStore
) -> None:
    engine = build_engine(store, [backend], [card()])
    server.script = [Reply(("Hi",), 100, 7), Reply(("Hey",), 50, 3)]
    await reply(engine, dm("alice", "a"))
    await reply(engine, dm("bob", "b"))
    await reply(engine, dm("alice", "c"))  # the default: 11 + 3
    assert await store.get_usage(key("alice").owner) == Usage(111, 10, 2)
    assert await store.get_usage(key("bob").owner) == Usage(50, 3, 1)
    whoami = await reply(engine, dm("alice", "/whoami"))
    assert "Tokens used: 121 (111 prompt + 10 completion) in 2 model requests." in whoami.text
    fresh = await reply(engine, dm("carol", "/whoami"))
    assert "Tokens used: none recorded yet." in fresh.text


async def test_summarise_is_one_plain_completion(
    server: FakeOpenAI, backend: OpenAIBackend
) -> None:
    turns = [Turn(1, "user", "my cat is Tom", "Alice", 0.0), Turn(2, "assistant", "Nice", "Ada", 0)]
    made = await backend.summarise(card(), "", turns, max_chars=700)
    assert made.text == "Gist: my cat is Tom; Nice"
    assert made.usage is not None and (made.usage.prompt_tokens, made.usage.completion_tokens) == (
        20,
        5,
    )
    (body,) = server.summary_requests
    assert body["model"] == "default-model" and "stream" not in body
    assert "Professor Ada" in body["messages"][0]["content"]
    assert "at most 100 words" in body["messages"][0]["content"]


# -- wiring -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "registered"),
    [
        pytest.param({}, False, id="nothing-set"),
        pytest.param({"PERSONABRIDGE_OPENAI__API_KEY": "sk-test"}, True, id="key"),
        pytest.param(
            {"PERSONABRIDGE_OPENAI__BASE_URL": "http://127.0.0.1:11434/v1"}, True, id="local-no-key"
        ),
        pytest.param(
            {"PERSONABRIDGE_OPENAI__BASE_URL": "https://api.openai.com/v1/"},
            False,
            id="openai-no-key",
        ),
    ],
)
async def test_openai_is_registered_when_it_can_work(
    environ: dict[str, str], registered: bool
) -> None:
    backends = build_backends(load_settings(environ, use_dotenv=False))
    try:
        assert ("openai" in backends) is registered
        assert "offline" in backends and "characterai" not in backends
    finally:
        for backend in backends.values():
            await backend.aclose()


async def test_openai_settings_reach_the_request(server: FakeOpenAI) -> None:
    settings = load_settings(
        {
            "PERSONABRIDGE_OPENAI__BASE_URL": server.url,
            "PERSONABRIDGE_OPENAI__MODEL": "llama3",
            "PERSONABRIDGE_OPENAI__TEMPERATURE": "0.5",
            "PERSONABRIDGE_OPENAI__MAX_TOKENS": "64",
        },
        use_dotenv=False,
    )
    backends = build_backends(settings)
    openai = backends["openai"]
    assert isinstance(openai, OpenAIBackend)
    try:
        await collect(openai)
    finally:
        await openai.aclose()
    body = server.requests[-1]
    assert (body["model"], body["temperature"], body["max_tokens"]) == ("llama3", 0.5, 64)
    assert "top_p" not in body


# -- the key is checked at start ------------------------------------------------------


def app_settings(tmp_path: Path, base_url: str) -> Settings:
    return settings_for(tmp_path, OPENAI__BASE_URL=base_url, OPENAI__API_KEY="sk-wrong")


async def test_a_refused_key_stops_the_start_naming_the_setting(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    server.models_status = 401
    with_credentials = server.url.replace("http://", "http://me:s3cret@")
    with pytest.raises(ConfigError) as caught:
        async with PersonaBridge(app_settings(tmp_path, with_credentials)):
            pass
    assert str(caught.value) == (
        f"PERSONABRIDGE_OPENAI__API_KEY: {server.url} refused the key (HTTP 401)"
    ), "named without the URL's credentials"


async def test_an_unreachable_server_at_start_is_logged_and_the_start_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"http://127.0.0.1:{unused_port()}/v1"
    async with PersonaBridge(app_settings(tmp_path, url)) as bridge:
        assert "openai" in bridge.backends
    assert any("not reachable yet" in r.getMessage() for r in caplog.records)
