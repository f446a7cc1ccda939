"""A fake with PyCharacterAI's surface, for the Character.AI backend.

Character.AI's hosts are hard-coded in PyCharacterAI, so no fake server can stand in.
:class:`FakeCharacterAIService` plays the service (its chats outlive any client, as
Character.AI's do across our restarts); :class:`FakeCharacterAI` is a client of it with
the surface of PyCharacterAI's ``AsyncClient``: ``client.chat.create_chat``,
``client.chat.send_message(..., streaming=True)`` (an async generator of the answer's
turn, its primary candidate's text growing, the last one ``is_final``) and
``close_session``. The objects it returns are PyCharacterAI's own ``Chat`` and ``Turn``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncGenerator, Callable
from typing import Any

from PyCharacterAI.types import Chat, Turn


class FakeCharacterAIService:
    """Character.AI: characters answer ``"<name> heard: <text> (#n)"`` per chat."""

    def __init__(self, *, step: int = 4) -> None:
        self.step = step
        self.chats: dict[str, list[str]] = {}  # chat id -> what the user sent, in order
        self.created: list[str] = []
        self.sent: list[tuple[str, str, str]] = []  # (character id, chat id, text)
        self._ids = itertools.count(1)
        #: Override the answer: gets (chat id, text), returns the successive texts so far.
        self.script: Callable[[str, str], list[str]] | None = None

    def answer(self, character_id: str, chat_id: str, text: str) -> list[str]:
        self.chats[chat_id].append(text)
        if self.script is not None:
            return self.script(chat_id, text)
        full = f"{character_id} heard: {text} (#{len(self.chats[chat_id])})"
        return [full[:end] for end in range(self.step, len(full), self.step)] + [full]

    def client(self) -> FakeCharacterAI:
        return FakeCharacterAI(self)


class FakeCharacterAI:
    """A logged-in client of the fake service (PyCharacterAI's ``AsyncClient`` surface)."""

    def __init__(self, service: FakeCharacterAIService) -> None:
        self.service = service
        self.chat = _FakeChatMethods(self)
        self.closed = False

    async def close_session(self) -> None:
        self.closed = True


class _FakeChatMethods:
    def __init__(self, client: FakeCharacterAI) -> None:
        self._client = client

    async def create_chat(
        self, character_id: str, greeting: bool = True, **kwargs: Any
    ) -> tuple[Chat, Turn | None]:
        assert not self._client.closed
        service = self._client.service
        chat_id = f"chat-{next(service._ids)}"
        service.chats[chat_id] = []
        service.created.append(chat_id)
        chat = Chat({"chat_id": chat_id, "character_id": character_id, "type": "TYPE_ONE_ON_ONE"})
        first = _turn(chat_id, "greeting", "Hello!", final=True) if greeting else None
        return chat, first

    async def send_message(
        self, character_id: str, chat_id: str, text: str, streaming: bool = False, **kwargs: Any
    ) -> AsyncGenerator[Turn, Any]:
        assert streaming and not self._client.closed
        service = self._client.service
        service.sent.append((character_id, chat_id, text))
        texts = service.answer(character_id, chat_id, text)

        async def responses() -> AsyncGenerator[Turn, Any]:
            for n, so_far in enumerate(texts):
                await asyncio.sleep(0)
                yield _turn(chat_id, f"turn-{len(service.sent)}", so_far, n == len(texts) - 1)

        return responses()


def _turn(chat_id: str, turn_id: str, text: str, final: bool) -> Turn:
    return Turn(
        {
            "turn_key": {"chat_id": chat_id, "turn_id": turn_id},
            "author": {"author_id": "char", "name": "Character", "is_human": False},
            "candidates": [{"candidate_id": "c1", "raw_content": text, "is_final": final}],
            "primary_candidate_id": "c1",
        }
    )
