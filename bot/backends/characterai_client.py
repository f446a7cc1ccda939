"""The real Character.AI client: PyCharacterAI, made safe for one process to share.

The only module that imports PyCharacterAI. :func:`connect` logs in once (a refused
token is a :class:`~bot.errors.ConfigError` naming the setting) and wraps the client in
:class:`SharedClient`, which has the surface
:class:`~bot.backends.characterai.CharacterAIClient` describes and fixes what sharing
PyCharacterAI 2.2 would otherwise get wrong:

* it has one websocket and files every incoming message under whichever request is
  reading, so two requests at once would read each other's answers: requests take
  turns (one reply at a time per process; the guard's timeouts bound the wait);
* a request that ends early (a timeout, an error) leaves its answer on the socket for
  the next request to read: the socket is closed then, and reopened by the next one;
* cancelling a request while it reads comes out as ``SessionClosedError``: it is turned
  back into the cancellation it was, so the guard sees its own timeout;
* its errors become ours: a refused token or a refused action (a chat that is gone, a
  filtered message) a :class:`BackendError`, connection trouble a transient
  :class:`BackendUnavailable`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from typing import Any

import curl_cffi
from PyCharacterAI import Client  # type: ignore[import-untyped]
from PyCharacterAI.exceptions import (  # type: ignore[import-untyped]
    ActionError,
    AuthenticationError,
    FetchError,
    PyCAIError,
)

from bot.backends.characterai import Chat, ChatTurn
from bot.errors import BackendError, BackendUnavailable, ConfigError

log = logging.getLogger(__name__)

SETTING_NAME = "PERSONABRIDGE_CHARACTERAI__TOKEN"


async def connect(token: str, *, make_client: Callable[[], Any] = Client) -> SharedClient:
    """Log in to Character.AI with ``token``; ConfigError when it is refused."""
    raw = make_client()
    try:
        await raw.authenticate(token)
    except (AuthenticationError, FetchError) as exc:
        await _quietly(raw.close_session())
        raise ConfigError(
            f"{SETTING_NAME}: Character.AI refused the token ({exc or type(exc).__name__}). "
            "Copy it again from your browser's character.ai session, or unset it to run "
            "without Character.AI personas."
        ) from exc
    except BaseException:
        await _quietly(raw.close_session())
        raise
    return SharedClient(raw)


class SharedClient:
    """A logged-in PyCharacterAI client, one request at a time (see the module doc)."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self._turn = asyncio.Lock()
        self.chat = _Chat(self)

    async def close_session(self) -> None:
        async with self._turn:
            await _quietly(self._raw.close_session())

    async def _reset_socket(self) -> None:
        # PyCharacterAI has no public way to drop just the websocket; this is its own
        # method that close_session() calls first.
        await _quietly(self._raw._get_requester().ws_close_async())


class _Chat:
    def __init__(self, client: SharedClient) -> None:
        self._client = client

    async def create_chat(
        self, character_id: str, greeting: bool = True
    ) -> tuple[Chat, ChatTurn | None]:
        client = self._client
        async with client._turn:
            try:
                chat, first = await client._raw.chat.create_chat(character_id, greeting=greeting)
            except BaseException as exc:
                await client._reset_socket()
                mapped = _translate(exc)
                if mapped is exc:
                    raise
                raise mapped from exc
        return chat, first

    async def send_message(
        self, character_id: str, chat_id: str, text: str, streaming: bool = False
    ) -> AsyncGenerator[ChatTurn, None]:
        return self._turns(character_id, chat_id, text)

    async def _turns(
        self, character_id: str, chat_id: str, text: str
    ) -> AsyncGenerator[ChatTurn, None]:
        client = self._client
        async with client._turn:
            finished = False
            try:
                turns = await client._raw.chat.send_message(
                    character_id, chat_id, text, streaming=True
                )
                async with aclosing(turns):
                    async for turn in turns:
                        candidate = turn.get_primary_candidate()
                        finished = candidate is not None and candidate.is_final
                        yield turn
                finished = True
            except BaseException as exc:
                mapped = _translate(exc)
                if mapped is exc:
                    raise
                raise mapped from exc
            finally:
                if not finished:
                    await client._reset_socket()


def _translate(exc: BaseException) -> BaseException:
    """Ours for PyCharacterAI's and curl's errors; anything else as it was."""
    task = asyncio.current_task()
    if isinstance(exc, PyCAIError) and task is not None and task.cancelling():
        return asyncio.CancelledError()  # it swallowed our cancellation: give it back
    if isinstance(exc, AuthenticationError):
        return BackendError(f"characterai: the token was refused ({exc})")
    if isinstance(exc, ActionError):
        return BackendError(f"characterai: {exc or type(exc).__name__}")
    if isinstance(exc, (PyCAIError, curl_cffi.CurlError, OSError)):
        return BackendUnavailable(f"characterai: {type(exc).__name__}: {exc}")
    return exc


async def _quietly(closing: Any) -> None:
    try:
        await closing
    except (PyCAIError, curl_cffi.CurlError, OSError) as exc:
        log.debug("closing the Character.AI session: %r", exc)
