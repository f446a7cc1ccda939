"""``CharacterAIBackend``: a persona whose brain is a Character.AI character.

Character.AI keeps the conversation itself, so this backend sends only the new message:
the window and the summary are not needed. The chat it talks in is kept in the
conversation's backend state (``characterai_chat_id``, with the character it belongs
to), so the same chat continues across messages and restarts; ``/reset`` archives the
conversation, the next one starts with empty state, and so with a new chat.

The card names the character: ``backend_options.character_id`` (the id in the
character's Character.AI address).

The backend is written against :class:`CharacterAIClient`, the small part of
PyCharacterAI's client it uses; the real one is wrapped in
:mod:`bot.backends.characterai_client` (the only module that imports PyCharacterAI),
and tests use a fake with the same surface. Character.AI streams each turn as the
text so far; the backend turns that into deltas.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from contextlib import aclosing
from typing import Protocol

from bot.backends.base import ReplyContext
from bot.errors import BackendError, BackendUnavailable, ConfigError
from bot.messages import Turn, turn_text
from bot.personas import Persona
from bot.store.base import BackendState

log = logging.getLogger(__name__)

CHAT_ID = "characterai_chat_id"
CHARACTER_ID = "characterai_character_id"


class Candidate(Protocol):
    """One candidate reply of a turn: ``text`` is the reply so far."""

    @property
    def text(self) -> str: ...

    @property
    def is_final(self) -> bool: ...


class ChatTurn(Protocol):
    """A turn of a Character.AI chat, as PyCharacterAI's ``Turn``."""

    @property
    def chat_id(self) -> str: ...

    def get_primary_candidate(self) -> Candidate | None: ...


class Chat(Protocol):
    @property
    def chat_id(self) -> str: ...


class ChatMethods(Protocol):
    """The part of PyCharacterAI's ``client.chat`` this backend uses."""

    async def create_chat(
        self, character_id: str, greeting: bool = True
    ) -> tuple[Chat, ChatTurn | None]: ...

    async def send_message(
        self, character_id: str, chat_id: str, text: str, streaming: bool = False
    ) -> AsyncGenerator[ChatTurn, None]:
        """With ``streaming=True``: the answer's turn again and again as it grows."""


class CharacterAIClient(Protocol):
    """The part of PyCharacterAI's ``AsyncClient`` this backend uses."""

    @property
    def chat(self) -> ChatMethods: ...

    async def close_session(self) -> None: ...


#: Makes the one client: raises ConfigError for a refused token, else what it raised.
Connect = Callable[[], Awaitable[CharacterAIClient]]


class CharacterAIBackend:
    """Replies through one Character.AI client, made by ``connect`` once.

    :meth:`start` connects at startup: a refused token stops the start with a clear
    :class:`~bot.errors.ConfigError`; any other failure is logged and the connection is
    tried again on the next reply (the service may just be down for a moment).
    """

    name = "characterai"

    def __init__(self, connect: Connect) -> None:
        self._connect = connect
        self._client: CharacterAIClient | None = None
        self._connecting = asyncio.Lock()
        self._closed = False

    async def start(self) -> None:
        try:
            await self._client_or_connect()
        except BackendUnavailable as exc:
            log.warning("Character.AI is not reachable yet, will retry: %s", exc)

    async def aclose(self) -> None:
        self._closed = True
        client, self._client = self._client, None
        if client is not None:
            await client.close_session()

    async def reply(
        self,
        persona: Persona,
        window: Sequence[Turn],
        message: Turn,
        state: BackendState,
        *,
        summary: str = "",
        context: ReplyContext | None = None,
    ) -> AsyncIterator[str]:
        """Send ``message`` to the conversation's chat and stream the character's answer."""
        character_id = _character_id(persona)
        try:
            client = await self._client_or_connect()
        except ConfigError as exc:  # the token was refused on a reconnect
            raise BackendError(f"characterai: {exc}") from exc
        chat_id = state.get(CHAT_ID)
        if not isinstance(chat_id, str) or state.get(CHARACTER_ID) != character_id:
            chat, _ = await client.chat.create_chat(character_id, greeting=False)
            chat_id = chat.chat_id
            # kept at once: a retry after a failure below continues in the same chat
            state[CHAT_ID], state[CHARACTER_ID] = chat_id, character_id
            log.info("started a Character.AI chat for persona %s", persona.id)
        turns = await client.chat.send_message(
            character_id, chat_id, turn_text(message), streaming=True
        )
        sent = ""
        async with aclosing(turns):  # at once, not at garbage collection: it holds the line
            async for turn in turns:
                if turn.chat_id != chat_id:
                    continue  # not ours (the client's one connection carries every chat)
                candidate = turn.get_primary_candidate()
                if candidate is None:
                    continue
                text = candidate.text
                if text.startswith(sent):
                    if len(text) > len(sent):
                        yield text[len(sent) :]
                        sent = text
                else:  # a rewrite of what was streamed already: it cannot be unsaid
                    log.debug("Character.AI rewrote a streamed reply; keeping what was sent")
                if candidate.is_final:
                    return

    async def _client_or_connect(self) -> CharacterAIClient:
        if self._client is not None:
            return self._client
        async with self._connecting:
            if self._closed:
                raise BackendUnavailable("characterai: shutting down")
            if self._client is None:
                try:
                    self._client = await self._connect()
                except (ConfigError, BackendError):
                    raise
                except Exception as exc:
                    raise BackendUnavailable(f"characterai: cannot connect: {exc!r}") from exc
            return self._client


def _character_id(persona: Persona) -> str:
    character_id = persona.backend_options.get("character_id")
    if not isinstance(character_id, str) or not character_id.strip():
        raise BackendError(
            f"characterai: persona {persona.id!r} ({persona.source or 'card'}) needs "
            "backend_options.character_id, the character's id on Character.AI"
        )
    return character_id.strip()
