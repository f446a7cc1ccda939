"""The openai backend's stream, read a burst at a time (``bot.backends.openai_stream``):
what crosses each layer per reply is counted, for a 50-word reply sent at once and
one sent a word every 20 ms; the SDK's behaviour ([DONE], error events, the
connection kept for the next reply) stays."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import client_proto
from openai import AsyncOpenAI

from bot.backends.openai import OpenAIBackend
from bot.backends.openai_stream import BurstStream
from bot.errors import BackendUnavailable
from bot.messages import Turn
from bot.personas import Persona
from tests.support.openai_server import FakeOpenAI, Raw, Reply

WORDS = tuple(f"w{n} " for n in range(50))
PERSONA = Persona(id="ada", name="Ada", backend="openai")


@pytest.fixture
async def server() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
async def backend(server: FakeOpenAI) -> AsyncIterator[OpenAIBackend]:
    openai = OpenAIBackend(base_url=server.url, model="m", timeout=5)
    yield openai
    await openai.aclose()


@pytest.fixture
def socket_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every read of a model's response from its socket (aiohttp's
    ``data_received``, counted and passed on unchanged)."""
    reads: list[int] = []
    received = client_proto.ResponseHandler.data_received

    def counted(self: client_proto.ResponseHandler, data: bytes) -> None:
        if data:
            reads.append(len(data))
        received(self, data)

    monkeypatch.setattr(client_proto.ResponseHandler, "data_received", counted)
    return reads


async def pieces(backend: OpenAIBackend, text: str = "hi") -> list[str]:
    message = Turn(1, "user", text, "Alice", 0.0)
    return [piece async for piece in backend.reply(PERSONA, [], message, {})]


async def test_a_word_every_20ms_is_read_from_the_socket_a_burst_at_a_time(
    server: FakeOpenAI, backend: OpenAIBackend, socket_reads: list[int]
) -> None:
    server.script = [Reply(WORDS, pace=0.02)]  # a second of text

    got = await pieces(backend)

    assert "".join(got) == "".join(WORDS)
    assert len(got) <= 8, got  # the first words, then a piece per pause
    # Left unread while the backend pauses between pieces, the socket is read about
    # twice a pause; read as the words arrive, it would be read once a word (50+).
    assert len(socket_reads) <= 25, socket_reads


async def test_fifty_words_read_at_once_cross_the_stream_as_one_batch(
    server: FakeOpenAI,
) -> None:
    events = [sse({"choices": [{"delta": {"content": word}}]}) for word in WORDS]
    server.script = [Raw((b"".join(events) + b"data: [DONE]\n\n",))]  # in one write
    client = AsyncOpenAI(base_url=server.url, api_key="k", max_retries=0)
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    try:
        stream = await client.post(
            "/chat/completions", body=body, cast_to=object, stream=True, stream_cls=BurstStream
        )
        batches = [batch async for batch in stream]
    finally:
        await client.close()

    chunks = [chunk for batch in batches for chunk in batch]
    assert [c["choices"][0]["delta"]["content"] for c in chunks] == list(WORDS)
    assert len(batches) <= 2, [len(batch) for batch in batches]  # the SDK's stream: 50


async def test_after_done_the_connection_serves_the_next_reply(
    server: FakeOpenAI, backend: OpenAIBackend
) -> None:
    server.script = [Reply(WORDS, pace=0.005), Reply(WORDS)]

    first, second = await pieces(backend, "one"), await pieces(backend, "two")

    assert "".join(first) == "".join(second) == "".join(WORDS)
    assert server.peers[0] == server.peers[1], "the body was read to its end, not dropped"


async def test_an_error_event_in_the_stream_is_a_transient_backend_error(
    server: FakeOpenAI, backend: OpenAIBackend
) -> None:
    error = {"error": {"message": "overloaded", "type": "server_error"}}
    server.script = [Raw((sse({"choices": [{"delta": {"content": "Hel"}}]}), sse(error)))]

    with pytest.raises(BackendUnavailable, match="overloaded"):
        await pieces(backend)


async def test_text_after_done_is_not_read_as_the_reply(
    server: FakeOpenAI, backend: OpenAIBackend
) -> None:
    server.script = [
        Raw(
            (
                sse({"choices": [{"delta": {"content": "all"}}]}) + b"data: [DONE]\n\n",
                sse({"choices": [{"delta": {"content": " and more"}}]}),
            ),
            pace=0.01,
        )
    ]

    assert "".join(await pieces(backend)) == "all"


async def test_odd_line_ends_and_comments_across_paced_writes_lose_nothing(
    server: FakeOpenAI, backend: OpenAIBackend
) -> None:
    words = [sse({"choices": [{"delta": {"content": w}}]}) for w in WORDS[:10]]
    stream = b": hello\r\n\r\n" + b"".join(words).replace(b"\n", b"\r\n") + b"data: [DONE]\r\n\r\n"
    server.script = [Raw(tuple(stream[n : n + 7] for n in range(0, len(stream), 7)), pace=0.001)]

    assert "".join(await pieces(backend)) == "".join(WORDS[:10])


async def test_a_broken_event_is_an_error_not_a_silent_gap(
    server: FakeOpenAI, backend: OpenAIBackend
) -> None:
    server.script = [Raw((b'data: {"choices": [\n\n',))]

    with pytest.raises(json.JSONDecodeError):
        await pieces(backend)


async def test_over_the_sdks_httpx_the_stream_is_paced_all_the_same(server: FakeOpenAI) -> None:
    # A URL with a login goes through httpx (see http_client): nothing to pause there.
    url = server.url.replace("http://", "http://me:pw@")
    backend = OpenAIBackend(base_url=url, model="m", timeout=5)
    server.script = [Reply(WORDS, pace=0.01)]
    try:
        got = await pieces(backend)
    finally:
        await backend.aclose()

    assert "".join(got) == "".join(WORDS) and len(got) <= 6, got


def sse(data: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(data)}\n\n".encode()


async def test_a_reply_cancelled_while_its_connection_rests_leaves_the_next_one_whole(
    server: FakeOpenAI, backend: OpenAIBackend
) -> None:
    server.script = [Reply(WORDS, pace=0.02)]
    first = asyncio.Event()
    got: list[str] = []

    async def consume() -> None:
        message = Turn(1, "user", "one", "Alice", 0.0)
        async for piece in backend.reply(PERSONA, [], message, {}):
            got.append(piece)
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    await asyncio.sleep(0.05)  # within the pause after the first piece
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert got and "".join(got) != "".join(WORDS)
    assert "".join(await pieces(backend, "two")) == "You said: two"
