"""``BurstStream``: the SDK's stream of a chat completion, read a burst at a time.

Every word a model streams is an SSE event. The SDK's own stream decodes them line by
line and hands each through several generators; this one (the SDK's ``stream_cls``,
so the request, its headers, status errors and timeouts stay the SDK's) hands on, per
read of the socket, the JSON of every complete event that read brought
(:class:`~bot.backends.sse.EventSplitter`), in one list.

:meth:`BurstStream.rest` is the pause :func:`bot.coalesce.coalesced` takes between two
pieces, with the connection left unread meanwhile: aiohttp reads a socket as data
arrives, so each word sent during a pause would still wake the process, go through
aiohttp's parser and re-arm its read timeout. Paused (aiohttp's own flow control,
``pause_reading``), the words wait in the kernel and come in one read when the pause
ends. The connection is reached under the SDK's aiohttp client
(``response.stream._stream._aiohttp_response.connection.protocol``); where a link is
missing (the SDK's httpx for a URL with a login, another SDK version) or the response
has ended (its connection may already serve another request), the pause is a plain
sleep.

What the SDK's stream does, this does the same way: ``data: [DONE]`` ends the reply
(the rest of the body is drained, so the connection is used again); an event whose
JSON has an ``error`` raises :class:`openai.APIError`; events of the Assistants API
(``event: thread.*``) carry no chat text; timeouts and connection failures become
:class:`openai.APITimeoutError` and :class:`openai.APIConnectionError`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx2
from openai import APIConnectionError, APIError, APITimeoutError, AsyncStream

# The SDK's own mapping of transport errors and its drain after [DONE], so that both
# behave exactly as in its stream.
from openai._httpx2 import request_exceptions, timeout_exceptions
from openai._streaming_cleanup import drain_response_async

from bot.backends.sse import Event, EventSplitter

log = logging.getLogger(__name__)

_decode = json.JSONDecoder().raw_decode


class BurstStream(AsyncStream[list[Any]]):
    """A streamed completion: per read, the JSON of its complete events (see the
    module docstring)."""

    async def __stream__(self) -> AsyncIterator[list[Any]]:
        response = self.response
        events = EventSplitter()
        try:
            try:
                async for chunk in response.aiter_bytes():
                    values, done = _values(events.feed(chunk), response)
                    if values:
                        yield values
                    if done:
                        break
                else:
                    return
            except timeout_exceptions() as err:
                raise APITimeoutError(request=response.request) from err
            except request_exceptions() as err:
                raise APIConnectionError(request=response.request) from err
            if response.http_version == "HTTP/1.1":  # the rest read: the connection is kept
                await drain_response_async(response)
        finally:
            await response.aclose()

    async def rest(self, seconds: float) -> None:
        """Sleep, the connection left unread meanwhile (see the module docstring)."""
        protocol = _reader(self.response)
        if protocol is None:
            await asyncio.sleep(seconds)
            return
        try:
            protocol.pause_reading()
        except Exception as exc:  # a state aiohttp's flow control refuses: just sleep
            log.debug("openai: could not pause a stream's connection: %r", exc)
        try:
            await asyncio.sleep(seconds)
        finally:
            protocol.resume_reading()  # safe in any state: what pause_reading held, resumed


def _values(events: list[Event], response: httpx2.Response) -> tuple[list[Any], bool]:
    """The JSON of ``events`` up to ``[DONE]``, and whether it came."""
    values: list[Any] = []
    for kind, data in events:
        if data.startswith("[DONE]"):
            return values, True
        value = _json(data)
        if kind is not None and kind.startswith("thread."):
            continue  # the SDK hands these on wrapped, where no chat text is read
        if isinstance(value, dict) and value.get("error"):
            error = value["error"]
            message = error.get("message") if isinstance(error, dict) else None
            if not message or not isinstance(message, str):
                message = "An error occurred during streaming"
            raise APIError(message=message, request=response.request, body=error)
        values.append(value)
    return values, False


def _json(data: str) -> Any:
    """``json.loads(data)``, without its per-call overhead for the usual object."""
    try:
        value, end = _decode(data)
    except ValueError:
        end = -1
    if end != len(data):  # spaces around it, or not JSON: json.loads says which
        return json.loads(data)
    return value


def _reader(response: httpx2.Response) -> Any:
    """The aiohttp protocol reading ``response``'s body, while it has one to read."""
    inner = getattr(response.stream, "_stream", None)
    raw = getattr(inner, "_aiohttp_response", None)
    protocol = getattr(getattr(raw, "connection", None), "protocol", None)
    # ``connected``: a connection the server closed meanwhile has nothing to pause
    if not getattr(protocol, "connected", False) or not hasattr(protocol, "pause_reading"):
        return None
    return protocol
