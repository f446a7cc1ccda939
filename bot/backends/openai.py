"""``OpenAIBackend``: any OpenAI-compatible chat API (OpenAI, Ollama, vLLM, LM Studio,
llama.cpp's server) through the official ``openai`` SDK.

One ``AsyncOpenAI`` client per backend (over aiohttp), made at startup and closed at
shutdown, never one per message. Replies stream (``stream=True``) and, unless switched
off, ask for the token usage in the last chunk (``stream_options.include_usage``);
:class:`~bot.backends.base.MeteredStream` hands it to the guard. The words that arrive
while the stream is left unread for a moment (its connection paused) are read and
passed on as one piece (:func:`bot.coalesce.coalesced`); the events one read brought
are decoded in one step (:mod:`bot.backends.openai_stream`). The prompt is
:func:`bot.backends.prompt.chat_messages`.

Who retries: the guard, not the SDK. The client is built with ``max_retries=0``, so a
failure reaches the guard at once, which retries once with backoff, counts it for the
backend's circuit breaker, and falls back: one retry policy, in one place.

A persona chooses its model and sampling in its card's ``backend_options`` (``model``,
``temperature``, ``top_p``, ``max_tokens`` or ``max_completion_tokens``,
``presence_penalty``, ``frequency_penalty``, ``seed``, ``stop``; ``vision = true`` when
the model takes images, see :mod:`bot.backends.vision`), over the
``OPENAI__*`` defaults; ``extra_body`` (a table) goes to the server as it is, for
options only some servers know (Ollama's ``options.num_ctx``, vLLM's ``top_k``). Other
keys are ignored, since a card may carry options for its other backends.

SDK errors become ours at this edge: timeouts :class:`BackendTimeout`; no connection,
408, 409, 429 and 5xx :class:`BackendUnavailable` (transient); any other status (a
wrong key, an unknown model, a bad option) a plain :class:`BackendError`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import replace
from typing import Any, cast
from urllib.parse import urlsplit

import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam

from bot.backends.base import MeteredStream, ReplyContext, Summarised, TokenUsage
from bot.backends.openai_stream import BurstStream
from bot.backends.prompt import ChatMessage, PromptOptions, chat_messages, summary_messages
from bot.backends.vision import with_images
from bot.coalesce import coalesced
from bot.config import shown_url
from bot.errors import BackendError, BackendTimeout, BackendUnavailable, ConfigError
from bot.messages import Turn
from bot.outbound_proxy import OutboundProxy
from bot.personas import Persona
from bot.store.base import BackendState

log = logging.getLogger(__name__)

#: Sent as the key to servers that need none (Ollama, llama.cpp): the SDK insists on one.
NO_KEY = "no-key-needed"

_NUMBER = (int, float)
#: The sampling options a card may set, and the types they take.
SAMPLING: dict[str, tuple[type, ...]] = {
    "temperature": _NUMBER,
    "top_p": _NUMBER,
    "max_tokens": (int,),
    "max_completion_tokens": (int,),
    "presence_penalty": _NUMBER,
    "frequency_penalty": _NUMBER,
    "seed": (int,),
    "stop": (str, list),
}
_TRANSIENT_STATUS = frozenset({408, 409, 429})


#: Seconds the start-up check of the key may take before it is left to the first reply.
START_CHECK_TIMEOUT = 10.0


class OpenAIBackend:
    """A persona brain on an OpenAI-compatible server (see the module docstring).

    ``defaults`` are sampling options for personas that do not set them (from the
    ``OPENAI__*`` settings); ``model`` is the model for personas that name none.
    """

    name = "openai"

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None = None,
        model: str | None = None,
        defaults: Mapping[str, Any] | None = None,
        include_usage: bool = True,
        timeout: float = 120.0,
        vision: bool = False,
        prompt: PromptOptions | None = None,
    ) -> None:
        self._vision = vision
        self._base_url = base_url
        self._prompt = prompt or PromptOptions()
        self._model = model
        self._defaults = dict(defaults or {})
        self._include_usage = include_usage
        self._client = AsyncOpenAI(
            base_url=base_url,
            api_key=api_key or NO_KEY,
            max_retries=0,
            timeout=timeout,
            http_client=http_client(base_url),
        )

    async def start(self) -> None:
        """Check the key once at startup (``GET /models``): a key the server refuses
        (401/403) stops the start, naming the setting; a server that cannot be reached
        yet, or has no such route, is logged and left to the first reply."""
        try:
            await self._client.models.list(timeout=START_CHECK_TIMEOUT)
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise ConfigError(
                f"PERSONABRIDGE_OPENAI__API_KEY: {shown_url(self._base_url)} refused the key "
                f"(HTTP {exc.status_code})"
            ) from exc
        except openai.NotFoundError:
            log.debug("openai: %s has no /models to check the key with", shown_url(self._base_url))
        except (openai.APIConnectionError, openai.APIStatusError) as exc:
            log.warning("openai: %s is not reachable yet: %s", shown_url(self._base_url), exc)

    def reply(
        self,
        persona: Persona,
        window: Sequence[Turn],
        message: Turn,
        state: BackendState,
        *,
        summary: str = "",
        context: ReplyContext | None = None,
    ) -> MeteredStream:
        """Stream the completion's text; the stream's ``usage`` is set at its end."""
        return MeteredStream(
            lambda meter: self._stream(meter, persona, window, message, summary, context)
        )

    async def _stream(
        self,
        meter: MeteredStream,
        persona: Persona,
        window: Sequence[Turn],
        message: Turn,
        summary: str,
        context: ReplyContext | None,
    ) -> AsyncGenerator[str, None]:
        model, sampling, extra = self._options(persona)
        # In a thread: the lorebook's regular expressions may take up to their time bound.
        prompt = await asyncio.to_thread(
            chat_messages,
            persona,
            window,
            message,
            summary,
            context=context,
            options=self._prompt_options(sampling),
        )
        messages = with_images(prompt, message) if self._sees(persona) else prompt
        body: dict[str, Any] = {"model": model, "messages": messages, "stream": True, **sampling}
        if self._include_usage:
            body["stream_options"] = {"include_usage": True}
        body.update(extra or {})  # as the SDK's extra_body: over everything else
        try:
            # The SDK's own request method, without ``chat.completions.create``'s typed
            # layers: its transform walks every message of the prompt against the
            # params' TypedDicts (over half the CPU of a message, for a body that is
            # plain JSON already), and each chunk becomes a model. Auth, status errors
            # and timeouts are still the SDK's; the events are read a burst at a time.
            stream = await self._client.post(
                "/chat/completions",
                body=body,
                cast_to=object,
                stream=True,
                stream_cls=BurstStream,
            )
            # a piece per burst (see bot.coalesce), the socket left unread between two
            texts = coalesced(_texts(stream, meter), sleep=stream.rest)
            async with stream, aclosing(texts):
                # leaving early closes the response, and its connection
                async for text in texts:
                    yield text
        except openai.OpenAIError as exc:
            raise translate(exc, f"openai ({self._base_url}, {model})") from exc

    async def summarise(
        self, persona: Persona, summary: str, turns: Sequence[Turn], *, max_chars: int
    ) -> Summarised:
        """One non-streamed completion folding ``turns`` into ``summary``."""
        model, _, extra = self._options(persona)
        messages = _sdk(summary_messages(persona, summary, turns, max_chars=max_chars))
        try:
            response = await self._client.chat.completions.create(
                model=model, messages=messages, extra_body=extra
            )
        except openai.OpenAIError as exc:
            raise translate(exc, f"openai ({self._base_url}, {model})") from exc
        text = (response.choices[0].message.content or "") if response.choices else ""
        usage = response.usage
        cost = TokenUsage(usage.prompt_tokens, usage.completion_tokens) if usage else None
        return Summarised(text.strip(), cost)

    async def aclose(self) -> None:
        await self._client.close()

    def sees_images(self, persona: Persona) -> bool:
        """Whether the persona's model takes images (``backend_options.vision``)."""
        return self._sees(persona)

    def _sees(self, persona: Persona) -> bool:
        """Whether the persona's model takes images (``backend_options.vision``)."""
        vision = persona.backend_options.get("vision", self._vision)
        return vision is True

    def _prompt_options(self, sampling: Mapping[str, Any]) -> PromptOptions:
        """The prompt options, keeping room for the reply the card asks for."""
        reply = sampling.get("max_completion_tokens") or sampling.get("max_tokens")
        if isinstance(reply, int) and reply > 0:
            return replace(self._prompt, reply_tokens=reply)
        return self._prompt

    def _options(self, persona: Persona) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
        """The model, sampling options and extra body for a persona; BackendError (not
        transient: the card is wrong) when an option has the wrong type."""
        options = persona.backend_options
        model = options.get("model", self._model)
        if not isinstance(model, str) or not model.strip():
            raise BackendError(
                f"openai: persona {persona.id!r} names no model: set backend_options.model "
                "in its card or PERSONABRIDGE_OPENAI__MODEL"
            )
        sampling = dict(self._defaults)
        if "max_completion_tokens" in options:
            sampling.pop("max_tokens", None)  # newer OpenAI models refuse both at once
        for key, kinds in SAMPLING.items():
            if key not in options:
                continue
            value = options[key]
            bad = isinstance(value, bool) or not isinstance(value, kinds)
            if key == "stop" and isinstance(value, list):
                bad = not all(isinstance(item, str) for item in value)
            if bad:
                raise BackendError(
                    f"openai: persona {persona.id!r} ({persona.source or 'card'}): "
                    f"backend_options.{key} has the wrong type ({type(value).__name__})"
                )
            sampling[key] = value
        extra = options.get("extra_body")
        if extra is not None and not isinstance(extra, Mapping):
            raise BackendError(
                f"openai: persona {persona.id!r}: backend_options.extra_body must be a table"
            )
        return model, sampling, dict(extra) if extra else None


async def _texts(stream: BurstStream, meter: MeteredStream) -> AsyncGenerator[str, None]:
    """The text of the chunks each read brought, as one piece; the usage, when a chunk
    carries it, to ``meter``."""
    async for chunks in stream:
        texts: list[str] = []
        for chunk in chunks:
            text, usage = read_chunk(chunk)
            if usage is not None:
                meter.usage = usage
            if text:
                texts.append(text)
        if texts:
            yield "".join(texts)


def read_chunk(chunk: object) -> tuple[str, TokenUsage | None]:
    """The text and the token usage in one streamed chunk, read as the JSON it is
    (``choices[0].delta.content``, ``usage``); what is missing or of another shape
    counts as nothing, as the SDK's models would have read it."""
    if not isinstance(chunk, dict):
        return "", None
    usage = chunk.get("usage")
    used = None
    if isinstance(usage, dict):
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if isinstance(prompt, int) and isinstance(completion, int):
            used = TokenUsage(prompt, completion)
    choices = chunk.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return "", used
    delta = choices[0].get("delta")
    text = delta.get("content") if isinstance(delta, dict) else None
    return (text if isinstance(text, str) else ""), used


def http_client(base_url: str) -> openai.DefaultAioHttpClient | None:
    """The SDK's client over aiohttp (``openai[aiohttp]``) rather than httpx: one HTTP
    stack in the process, and a streamed reply costs about a quarter less CPU (aiohttp
    reads what has arrived in one go, where httpx passes every HTTP chunk up on its own).

    aiohttp's own reading of the environment is off (see :mod:`bot.outbound_proxy`);
    the proxy the environment names for the server (``HTTPS_PROXY``, ``HTTP_PROXY``,
    ``NO_PROXY``, as httpx honoured them) is looked up here, once.

    None (the SDK's httpx) for a URL with a login in it (``https://me:pw@host/v1``):
    httpx sends that login, where aiohttp refuses it next to the API key's header."""
    url = urlsplit(base_url)
    if url.username is not None or url.password is not None:
        return None
    proxy = OutboundProxy().for_url(base_url)
    return openai.DefaultAioHttpClient(trust_env=False, proxy=proxy or None)


def translate(exc: openai.OpenAIError, where: str) -> BackendError:
    """Our error for an SDK error: transient when trying again may help."""
    if isinstance(exc, openai.APITimeoutError):
        return BackendTimeout(f"{where}: the request timed out")
    if isinstance(exc, openai.APIConnectionError):
        return BackendUnavailable(f"{where}: cannot connect ({exc.__cause__ or exc})")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        text = f"{where}: HTTP {status}: {exc.message}"
        if status in _TRANSIENT_STATUS or status >= 500:
            return BackendUnavailable(text)
        return BackendError(text)
    if isinstance(exc, openai.APIError):  # an error event inside the stream
        return BackendUnavailable(f"{where}: {exc.message}")
    return BackendError(f"{where}: {type(exc).__name__}: {exc}")


def _sdk(messages: Sequence[ChatMessage | dict[str, Any]]) -> list[ChatCompletionMessageParam]:
    # Our messages are exactly the SDK's system/user/assistant params; the prompt module
    # keeps its own type so that it does not depend on the SDK.
    return cast("list[ChatCompletionMessageParam]", messages)
