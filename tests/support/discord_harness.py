"""Helpers the Discord tests share: an engine over fakes, gateway payloads, and the
adapter running against :class:`tests.support.discord_server.FakeDiscord`."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from adapters.discord import DiscordAdapter, DiscordSettings, build_discord_adapter
from bot.backends.base import Backend
from bot.backends.guard import GuardPolicy
from bot.engine import Engine
from bot.errors import BackendUnavailable
from bot.messages import Turn
from bot.personas import Persona
from bot.store.base import BackendState, EventStore, Store
from tests.support import engine as engine_support
from tests.support.discord_server import BOT, TIMESTAMP, FakeDiscord, user
from tests.support.fakes import TextBackend, WindowEcho

FAST = GuardPolicy(first_delta_timeout=2.0, total_timeout=10.0, retries=0, retry_backoff=0)
GUILD_ID, CHANNEL_ID, DM_CHANNEL_ID = 500, 600, 700
ALICE = user(42, "alice")
BOB = user(43, "bob")
_ids = itertools.count(100_000)


class BreakingBackend(TextBackend):
    """Streams its text, then fails (after the preview showed it)."""

    async def reply(
        self, persona: Persona, window: Sequence[Turn], message: Turn, state: BackendState
    ) -> AsyncIterator[str]:
        async for delta in super().reply(persona, window, message, state):
            yield delta
        await asyncio.sleep(0.2)
        raise BackendUnavailable("the model went away")


def build_engine(store: Store, backend: Backend | None = None) -> Engine:
    """The engine of the Discord tests: a slow echo unless told."""
    return engine_support.build_engine(store, backend or WindowEcho(pause=0.005), policy=FAST)


#: Short waits keep the tests fast.
FAST_SETTINGS: dict[str, Any] = {
    "edit_interval": 0.05,
    "first_message_delay": 0.0,  # every reply streams: the tests see its drafts
    "guild_ready_timeout": 0.05,
    "shutdown_timeout": 2.0,
    "shard_identify_interval": 0.0,
}


def fast(settings: DiscordSettings, **overrides: Any) -> DiscordSettings:
    """``settings`` with short waits, and ``overrides``, validated as the loader would."""
    return DiscordSettings(**(dict(settings) | FAST_SETTINGS | overrides))


def fast_adapter(
    engine: Engine,
    settings: DiscordSettings,
    *,
    events: EventStore | None = None,
    **overrides: Any,
) -> DiscordAdapter:
    """The adapter on ``fast(settings, **overrides)``, not reconnecting (a test's fake
    gateway that closes means the end). ``events``: the interactions endpoint's store."""
    return build_discord_adapter(
        engine, fast(settings, **overrides), events=events, reconnect=False
    )


@asynccontextmanager
async def running(
    fake: FakeDiscord,
    engine: Engine,
    settings: DiscordSettings | None = None,
    **overrides: Any,
) -> AsyncIterator[DiscordAdapter]:
    """The adapter, entered and ready on the fake gateway (``overrides``: settings)."""
    adapter = fast_adapter(engine, settings or fake.settings(), **overrides)
    async with adapter:
        assert adapter.client is not None
        await asyncio.wait_for(adapter.client.wait_until_ready(), 5)
        yield adapter


# -- long replies -----------------------------------------------------------------

FENCE = "```"
CODE = (
    FENCE
    + "python\n"
    + "\n".join(f"    total += {i}  # step {i}" for i in range(20))
    + "\n"
    + FENCE
)


def long_reply() -> str:
    """About 5,000 characters of prose and code blocks."""
    parts = []
    for n in range(4):
        parts.append(" ".join(f"Sentence {n}.{i} has **some** words in it." for i in range(17)))
        parts.append(CODE.replace("total", f"total{n}"))
    text = "\n\n".join(parts)
    assert 4800 <= len(text) <= 5600
    return text


def assert_pieces_of(pieces: list[str], text: str) -> None:
    assert len(pieces) >= 3
    assert all(len(piece) <= 2000 for piece in pieces)
    for piece in pieces:
        assert piece.count(FENCE) % 2 == 0, "every piece closes what it opens"
    for n in range(4):
        block = CODE.replace("total", f"total{n}")
        assert sum(block in piece for piece in pieces) == 1, "each code block whole, once"
    assert "\n".join(pieces).split() == text.split(), "in order, nothing lost"


# -- payloads -------------------------------------------------------------------------


def snowflake() -> str:
    return str(next(_ids))


def guild_create() -> dict[str, Any]:
    member = {"roles": [], "joined_at": TIMESTAMP, "deaf": False, "mute": False, "flags": 0}
    return {
        "id": str(GUILD_ID),
        "name": "Test guild",
        "owner_id": ALICE["id"],
        "unavailable": False,
        "member_count": 3,
        "large": False,
        "features": [],
        "emojis": [],
        "stickers": [],
        "roles": [
            {
                "id": str(GUILD_ID),
                "name": "@everyone",
                "permissions": "0",
                "position": 0,
                "color": 0,
                "hoist": False,
                "managed": False,
                "mentionable": False,
                "flags": 0,
            },
        ],
        "channels": [
            {
                "id": str(CHANNEL_ID),
                "type": 0,
                "name": "general",
                "position": 0,
                "permission_overwrites": [],
                "guild_id": str(GUILD_ID),
            },
        ],
        "threads": [],
        "members": [{"user": person, **member} for person in (BOT, ALICE, BOB)],
        "voice_states": [],
        "presences": [],
    }


def _member(person: dict[str, Any]) -> dict[str, Any]:
    return {
        "user": person,
        "roles": [],
        "joined_at": TIMESTAMP,
        "deaf": False,
        "mute": False,
        "permissions": "2147483647",
        "flags": 0,
    }


def _where(guild: bool, person: dict[str, Any]) -> dict[str, Any]:
    if guild:
        return {
            "guild_id": str(GUILD_ID),
            "channel_id": str(CHANNEL_ID),
            "channel": {
                "id": str(CHANNEL_ID),
                "type": 0,
                "guild_id": str(GUILD_ID),
                "name": "general",
                "position": 0,
                "permission_overwrites": [],
            },
            "member": _member(person),
        }
    return {
        "channel_id": str(DM_CHANNEL_ID),
        "channel": {"id": str(DM_CHANNEL_ID), "type": 1, "recipients": [person]},
        "user": person,
    }


def interaction(
    kind: int,
    name: str,
    options: Sequence[dict[str, Any]] = (),
    *,
    guild: bool = True,
    person: dict[str, Any] = ALICE,
) -> dict[str, Any]:
    return {
        "id": snowflake(),
        "application_id": BOT["id"],
        "type": kind,
        "token": f"itoken-{snowflake()}",
        "version": 1,
        "attachment_size_limit": 8_000_000,
        "locale": "en-US",
        "data": {"id": snowflake(), "name": name, "type": 1, "options": list(options)},
        **_where(guild, person),
    }


def slash(
    name: str, *, guild: bool = True, person: dict[str, Any] = ALICE, **options: str | bool
) -> dict[str, Any]:
    """An APPLICATION_COMMAND interaction; option values are strings or booleans."""
    listed = [
        {"name": key, "type": 5 if isinstance(value, bool) else 3, "value": value}
        for key, value in options.items()
    ]
    return interaction(2, name, listed, guild=guild, person=person)


def autocomplete(name: str, option: str, current: str, *, guild: bool = True) -> dict[str, Any]:
    focused = [{"name": option, "type": 3, "value": current, "focused": True}]
    return interaction(4, name, focused, guild=guild)


def message(
    content: str,
    *,
    guild: bool = True,
    person: dict[str, Any] = ALICE,
    mentions: Sequence[dict[str, Any]] = (),
    replying_to: dict[str, Any] | None = None,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": snowflake(),
        "channel_id": str(CHANNEL_ID if guild else DM_CHANNEL_ID),
        "author": person,
        "content": content,
        "timestamp": TIMESTAMP,
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": list(mentions),
        "mention_roles": [],
        "attachments": [],
        "embeds": [],
        "pinned": False,
        "type": 0,
        "flags": 0,
    }
    if guild:
        data["guild_id"] = str(GUILD_ID)
        data["member"] = {k: v for k, v in _member(person).items() if k != "user"}
    if replying_to is not None:
        data["type"] = 19
        data["message_reference"] = {
            "message_id": replying_to["id"],
            "channel_id": data["channel_id"],
        }
        data["referenced_message"] = replying_to
    return data
