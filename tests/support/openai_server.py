"""A fake OpenAI-compatible server on 127.0.0.1, owned by the tests.

``POST /v1/chat/completions`` answers the way OpenAI, Ollama and vLLM do: with
``stream: true``, SSE chunks (``data: {...}``), the usage chunk when
``stream_options.include_usage`` is set, then ``data: [DONE]``; without it, one JSON
completion (the summariser's request). Every request body is kept in ``requests``.

``script`` holds what the next requests get, in order; when it is empty a request
gets the default answer: ``"You said: <last user message>"`` streamed word by word,
or, for a summary request, ``"Gist: <the new lines>"``.

``POST /v1/audio/transcriptions`` (multipart, as the SDK sends it) answers
``{"text": transcript}``, or ``transcription_status`` when that is set; each upload is
kept in ``transcriptions`` (model, file name, content type, bytes).

``POST /v1/audio/speech`` (JSON: model, voice, input, response_format) answers
:data:`SPOKEN` followed by the input's bytes (a stand-in for Ogg Opus audio), or
``speech_status`` when that is set; with ``speech_stall`` it never answers (until
shutdown). Each request body is kept in ``speeches``. Asked for ``wav``, it answers a
real (silent) WAV file instead, which a browser can play.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import wave
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, web


@dataclass(frozen=True)
class Reply:
    """Stream these chunks (then the usage, when asked for), ``pace`` seconds before
    each (as a model that writes a word at a time)."""

    chunks: tuple[str, ...]
    prompt_tokens: int = 11
    completion_tokens: int = 3
    pace: float = 0.0


@dataclass(frozen=True)
class Raw:
    """Stream these bytes as they are, each in a write of its own, ``pace`` seconds
    before each (the server's own SSE: errors, odd line ends)."""

    writes: tuple[bytes, ...]
    pace: float = 0.0


@dataclass(frozen=True)
class Status:
    """Answer with an HTTP error, OpenAI's error body and these headers."""

    status: int
    message: str = "scripted failure"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Stall:
    """Stream ``before`` (nothing: not even the headers), then hang until shutdown."""

    before: tuple[str, ...] = ()


Step = Reply | Status | Stall | Raw

#: The first bytes of every "audio" the fake speech endpoint answers (an Ogg page).
SPOKEN = b"OggS\x00\x02fake-opus:"


class FakeOpenAI:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        #: The client's address of each completion request: one per connection.
        self.peers: list[Any] = []
        self.script: list[Step] = []
        #: The status ``GET /v1/models`` answers (401: a refused key).
        self.models_status = 200
        self.transcriptions: list[dict[str, Any]] = []
        self.transcript = "see you at nine"
        self.transcription_status: int | None = None
        self.speeches: list[dict[str, Any]] = []
        self.speech_status: int | None = None
        self.speech_stall = False
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        """The streamed (reply) requests, without the summaries."""
        return [r for r in self.requests if r.get("stream")]

    @property
    def summary_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if not r.get("stream")]

    async def __aenter__(self) -> FakeOpenAI:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._completions)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/audio/transcriptions", self._transcriptions)
        app.router.add_post("/v1/audio/speech", self._speech)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._release.set()
        assert self._runner is not None
        await self._runner.cleanup()

    async def _models(self, request: web.Request) -> web.Response:
        if self.models_status != 200:
            error = {"error": {"message": "Incorrect API key", "type": "invalid_request_error"}}
            return web.json_response(error, status=self.models_status)
        model = {"id": "fake-model", "object": "model", "created": 0, "owned_by": "tests"}
        return web.json_response({"object": "list", "data": [model]})

    async def _transcriptions(self, request: web.Request) -> web.Response:
        upload: dict[str, Any] = {}
        async for part in await request.multipart():
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "file":
                upload.update(
                    filename=part.filename,
                    content_type=part.headers.get("Content-Type"),
                    data=bytes(await part.read()),
                )
            else:
                upload[part.name or ""] = await part.text()
        self.transcriptions.append(upload)
        if self.transcription_status is not None:
            error = {"error": {"message": "scripted failure", "type": "scripted", "code": None}}
            return web.json_response(error, status=self.transcription_status)
        return web.json_response({"text": self.transcript})

    async def _speech(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.speeches.append(body)
        if self.speech_stall:
            await self._release.wait()
            return web.Response(status=503)
        if self.speech_status is not None:
            error = {"error": {"message": "scripted failure", "type": "scripted", "code": None}}
            return web.json_response(error, status=self.speech_status)
        if body.get("response_format") == "wav":  # real audio, for a browser to play
            return web.Response(body=silent_wav(), content_type="audio/wav")
        audio = SPOKEN + str(body.get("input", "")).encode()
        return web.Response(body=audio, content_type="audio/ogg")

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        transport = request.transport
        self.peers.append(transport.get_extra_info("peername") if transport else None)
        step = self.script.pop(0) if self.script else None
        if isinstance(step, Status):
            error = {"error": {"message": step.message, "type": "scripted", "code": None}}
            return web.json_response(error, status=step.status, headers=step.headers)
        if not body.get("stream"):
            return web.json_response(_completion(body, _gist(body)))
        if isinstance(step, Stall) and not step.before:
            await self._release.wait()
            return web.Response(status=503)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if isinstance(step, Stall):
            for text in step.before:
                await _send(response, _chunk(body, {"content": text}))
            await self._release.wait()
            return response
        if isinstance(step, Raw):
            for data in step.writes:
                await asyncio.sleep(step.pace)
                await response.write(data)
            return response
        reply = step or Reply(tuple(re.findall(r"\S+\s*", f"You said: {_last_user(body)}")))
        await _send(response, _chunk(body, {"role": "assistant", "content": ""}))
        for text in reply.chunks:
            if reply.pace:
                await asyncio.sleep(reply.pace)
            await _send(response, _chunk(body, {"content": text}))
        await _send(response, _chunk(body, {}, finish="stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = _usage(reply.prompt_tokens, reply.completion_tokens)
            await _send(response, {**_chunk(body, {}), "choices": [], "usage": usage})
        await response.write(b"data: [DONE]\n\n")
        return response


def silent_wav(seconds: float = 0.3, rate: int = 8000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(rate)
        audio.writeframes(b"\x00\x00" * int(seconds * rate))
    return out.getvalue()


async def _send(response: web.StreamResponse, data: dict[str, Any]) -> None:
    await response.write(f"data: {json.dumps(data)}\n\n".encode())


def _chunk(
    body: dict[str, Any], delta: dict[str, Any], finish: str | None = None
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": body["model"],
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _completion(body: dict[str, Any], text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": body["model"],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": _usage(20, 5),
    }


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _last_user(body: dict[str, Any]) -> str:
    users = [m["content"] for m in body["messages"] if m["role"] == "user"]
    last = users[-1] if users else ""
    if isinstance(last, list):  # content parts: the text ones (images are in requests)
        return " ".join(part["text"] for part in last if part.get("type") == "text")
    return str(last)


def _gist(body: dict[str, Any]) -> str:
    """The summary request's earlier summary and new lines, condensed: enough for a
    test to see exactly what went into it."""
    request = _last_user(body)
    earlier = request.split("Summary so far:\n", 1)[1].split("\n\nNew lines:", 1)[0]
    lines = request.split("New lines:\n", 1)[1].split("\n\nWrite the updated", 1)[0]
    said = [line.split(": ", 1)[1] for line in lines.splitlines() if ": " in line]
    kept = "" if earlier == "(none yet)" else earlier.removeprefix("Gist: ") + "; "
    return "Gist: " + kept + "; ".join(said)
