"""The openai backend's transport: the SDK over aiohttp, the proxy the environment
names, and streamed chunks read as the JSON they are (the SDK's chunk models are
skipped for their cost): text and usage where a server puts them, nothing where it
puts nothing."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.backends.base import TokenUsage
from bot.backends.openai import OpenAIBackend, http_client, read_chunk
from bot.messages import Turn
from bot.personas import Persona
from tests.support.openai_server import FakeOpenAI


@pytest.fixture
async def server() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake


async def reply_text(backend: OpenAIBackend, text: str) -> str:
    persona = Persona(id="ada", name="Ada", backend="openai")
    message = Turn(1, "user", text, "Alice", 0.0)
    try:
        return "".join([d async for d in backend.reply(persona, [], message, {})])
    finally:
        await backend.aclose()


async def test_the_proxy_the_environment_names_carries_the_requests(
    server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A host that does not exist: only through the proxy (the fake, which answers
    # a proxied request as its own) can the reply come.
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    backend = OpenAIBackend(base_url="http://model.invalid/v1", model="m", timeout=5)

    assert await reply_text(backend, "through the proxy") == "You said: through the proxy"
    assert len(server.chat_requests) == 1


async def test_a_host_in_no_proxy_is_reached_directly(
    server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:  # a proxy nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    backend = OpenAIBackend(base_url=server.url, model="m", timeout=5)

    assert await reply_text(backend, "direct") == "You said: direct"


def test_a_login_in_the_url_is_left_to_the_sdks_httpx() -> None:
    # httpx sends it (as it always did); aiohttp refuses it beside the key's header
    assert http_client("https://me:pw@llm.internal/v1") is None


def chunk(delta: Any = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"id": "c", "object": "chat.completion.chunk", "model": "m"}
    if delta is not None:
        body["choices"] = [{"index": 0, "delta": delta, "finish_reason": None}]
    return body | extra


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(chunk({"content": "Hello"}), ("Hello", None), id="text"),
        pytest.param(chunk({"role": "assistant", "content": ""}), ("", None), id="role-only"),
        pytest.param(chunk({"content": None}), ("", None), id="null-content"),
        pytest.param(chunk({}), ("", None), id="finish"),
        pytest.param(
            chunk(choices=[], usage={"prompt_tokens": 11, "completion_tokens": 3}),
            ("", TokenUsage(11, 3)),
            id="usage-chunk",
        ),
        pytest.param(
            chunk({"content": "x"}, usage={"prompt_tokens": 2, "completion_tokens": 1}),
            ("x", TokenUsage(2, 1)),
            id="text-and-usage",
        ),
        pytest.param(chunk(usage=None), ("", None), id="usage-null"),
        pytest.param(chunk(usage={"prompt_tokens": "11"}), ("", None), id="usage-odd"),
        pytest.param(chunk(choices="nope"), ("", None), id="choices-not-a-list"),
        pytest.param(chunk(choices=["nope"]), ("", None), id="choice-not-an-object"),
        pytest.param(chunk("nope"), ("", None), id="delta-not-an-object"),
        pytest.param(chunk({"content": ["a"]}), ("", None), id="content-not-text"),
        pytest.param(["not", "a", "chunk"], ("", None), id="not-an-object"),
    ],
)
def test_a_chunk_gives_its_text_and_usage(raw: Any, expected: tuple[str, Any]) -> None:
    assert read_chunk(raw) == expected
