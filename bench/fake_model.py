"""A lean fake OpenAI-compatible model server for the benchmarks (run in its own process).

``POST /v1/chat/completions`` with ``stream: true`` answers as OpenAI, Ollama and vLLM
do: SSE chunks (``data: {...}``), one word each, a finishing chunk, the usage chunk when
``stream_options.include_usage`` asks for it, then ``data: [DONE]``. The model name sets
the pace: ``fake-instant`` sends every word at once, ``fake-20ms`` one word every 20 ms
(any ``fake-<N>ms``). ``GET /v1/models`` answers the start-up key check.

The reply is :data:`WORDS` words, ending in ``a<N>z.`` where the last user message holds
``q<N>x``: a load generator knows a reply is complete when the platform shows that end.
Everything a request costs is this process's CPU, never the bot's.
"""

from __future__ import annotations

import asyncio
import json
import re
from multiprocessing.connection import Connection
from typing import Any

from aiohttp import web

#: Words in every reply (a paragraph, as a chat model writes; well under any platform's
#: length limit, so a reply is one message).
WORDS = 50
_TAG = re.compile(r"q(\d+)x")
_PACE = re.compile(r"fake-(\d+)ms")
_FILLER = [
    "well",
    "that",
    "is",
    "a",
    "good",
    "question",
    "and",
    "the",
    "short",
    "answer",
    "is",
    "that",
    "it",
    "depends",
    "on",
    "what",
    "you",
    "measure",
    "first",
    "so",
    "start",
    "small",
    "keep",
    "the",
    "design",
    "simple",
    "and",
    "look",
    "at",
    "the",
    "numbers",
    "before",
    "you",
    "change",
    "anything",
    "then",
    "try",
    "again",
    "with",
    "one",
    "change",
    "at",
    "a",
    "time",
    "until",
]


def reply_words(tag: str) -> list[str]:
    """The reply's words, each with the space that follows it (as models stream)."""
    words = [f"{_FILLER[n % len(_FILLER)]} " for n in range(WORDS - 1)]
    return [*words, f"a{tag}z."]


def reply_end(tag: int | str) -> str:
    """How a complete reply to a message tagged ``q<tag>x`` ends."""
    return f"a{tag}z."


def _last_user(body: dict[str, Any]) -> str:
    users = [m.get("content") for m in body.get("messages", []) if m.get("role") == "user"]
    last = users[-1] if users else ""
    return last if isinstance(last, str) else json.dumps(last)


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    data = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(data)}\n\n".encode()


async def completions(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    model = str(body.get("model", "fake-instant"))
    pace = _PACE.fullmatch(model)
    delay = int(pace.group(1)) / 1000 if pace else 0.0
    tag = _TAG.search(_last_user(body))
    words = reply_words(tag.group(1) if tag else "0")
    if not body.get("stream"):
        message = {"role": "assistant", "content": "".join(words)}
        return web.json_response(
            {
                "id": "chatcmpl-bench",
                "object": "chat.completion",
                "created": 0,
                "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 100, "completion_tokens": WORDS, "total_tokens": 150},
            }
        )
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    await response.write(_chunk(model, {"role": "assistant", "content": ""}))
    for word in words:
        if delay:
            await asyncio.sleep(delay)
        await response.write(_chunk(model, {"content": word}))
    await response.write(_chunk(model, {}, "stop"))
    if (body.get("stream_options") or {}).get("include_usage"):
        usage = {"prompt_tokens": 100, "completion_tokens": WORDS, "total_tokens": 100 + WORDS}
        data = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0}
        data |= {"model": model, "choices": [], "usage": usage}
        await response.write(f"data: {json.dumps(data)}\n\n".encode())
    await response.write(b"data: [DONE]\n\n")
    return response


async def models(request: web.Request) -> web.Response:
    listed = [{"id": "fake-instant", "object": "model", "created": 0, "owned_by": "bench"}]
    return web.json_response({"object": "list", "data": listed})


def serve(conn: Connection) -> None:
    """Entry point of the model's process: sends its base URL, serves until told."""
    asyncio.run(_serve(conn))


async def _serve(conn: Connection) -> None:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    app.router.add_get("/v1/models", models)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    conn.send(f"http://127.0.0.1:{runner.addresses[0][1]}/v1")
    await asyncio.to_thread(conn.recv)
    await runner.cleanup()
