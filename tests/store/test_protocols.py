"""The ``Store`` protocol is the union of small area protocols, and each user's protocol
(the engine's, auth's, linking's, the commands') leaves out the areas it does not call."""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import Callable
from typing import Any, cast, get_args

import pytest

from adapters.discord.adapter import DiscordAdapter
from adapters.discord.interactions import InteractionEndpoint
from adapters.telegram.adapter import TelegramAdapter
from adapters.web.app import create_app
from bot.engine import Engine
from bot.messages import ReplyKind
from bot.store.base import (
    AccountStore,
    AuthStore,
    CommandStore,
    ConversationStore,
    EventStore,
    IdentityStore,
    LinkCodeStore,
    LinkingStore,
    NoticeStore,
    OwnerDataStore,
    PreferenceStore,
    Store,
    StoreUpkeep,
    WebSessionStore,
)
from bot.store.dynamo import DynamoStore
from bot.store.memory import MemoryStore
from bot.store.sqlite import SqliteStore
from tests.support.engine import build_engine, dm, key, reply

AREAS = (
    StoreUpkeep,
    AccountStore,
    IdentityStore,
    LinkCodeStore,
    NoticeStore,
    WebSessionStore,
    PreferenceStore,
    ConversationStore,
    OwnerDataStore,
    EventStore,
)


#: The dunder methods a store has as a store (Protocol gives each class a few of its own).
CONTEXT_MANAGER = {"__aenter__", "__aexit__"}


def declared(protocol: type) -> set[str]:
    """The methods a protocol declares itself (not those it inherits)."""
    return {
        name
        for name, value in vars(protocol).items()
        if inspect.isfunction(value) and (not name.startswith("__") or name in CONTEXT_MANAGER)
    }


def members(protocol: type) -> set[str]:
    """Every method of a protocol, inherited ones too."""
    return set().union(*(declared(cls) for cls in protocol.__mro__))


def test_every_store_method_is_declared_in_exactly_one_area() -> None:
    counts = Counter(name for area in AREAS for name in declared(area))
    assert [name for name, count in counts.items() if count > 1] == []
    assert set(counts) == members(Store)
    assert declared(Store) == set()  # a new method goes into its area, not into Store


@pytest.mark.parametrize(
    ("role", "left_out"),
    [
        pytest.param(
            ConversationStore,
            (AccountStore, IdentityStore, LinkCodeStore, WebSessionStore, EventStore),
            id="engine",
        ),
        pytest.param(CommandStore, (LinkCodeStore, WebSessionStore, EventStore), id="commands"),
        pytest.param(
            LinkingStore, (WebSessionStore, EventStore, OwnerDataStore, StoreUpkeep), id="linking"
        ),
        pytest.param(AuthStore, (EventStore, StoreUpkeep), id="auth"),
    ],
)
def test_a_user_protocol_leaves_out_what_its_user_does_not_call(
    role: type, left_out: tuple[type, ...]
) -> None:
    assert members(role) < members(Store)
    for area in left_out:
        assert members(role).isdisjoint(declared(area)), area.__name__
    assert "append_turns" not in members(AuthStore) | members(LinkingStore)


@pytest.mark.parametrize("store", [MemoryStore, SqliteStore, DynamoStore])
def test_every_store_has_every_method_of_every_protocol(store: type) -> None:
    for protocol in (*AREAS, CommandStore, LinkingStore, AuthStore, Store):
        missing = {name for name in members(protocol) if not callable(getattr(store, name, None))}
        assert missing == set(), (store.__name__, protocol.__name__)


class SeenThrough:
    """A :class:`MemoryStore` seen through one protocol: whatever else is asked of it is
    recorded in ``refused`` and raises AttributeError."""

    def __init__(self, store: MemoryStore, protocol: type) -> None:
        self._store = store
        self._allowed = members(protocol)
        self.refused: list[str] = []

    def __getattr__(self, name: str) -> Any:
        if name in self._allowed:
            return getattr(self._store, name)
        self.refused.append(name)
        raise AttributeError(f"{name} is not part of the protocol")


async def test_a_chat_message_and_retry_need_only_the_conversation_store() -> None:
    """What the engine itself calls to answer a message (and ``/retry`` it) is all in
    :class:`ConversationStore`; commands, linking and auth get their own protocols."""
    async with MemoryStore() as memory:
        seen = SeenThrough(memory, ConversationStore)
        engine = build_engine(cast(Store, seen))
        first = await reply(engine, dm("alice", "hello"))
        again = await reply(engine, dm("alice", "/retry"))
        window = await memory.load_window(key("alice"), 10)
    assert (first.kind, again.kind) == (ReplyKind.CHAT, ReplyKind.CHAT)
    assert seen.refused == []
    # the retried reply answers the same user turn as the first one
    assert [(t.role, t.reply_to) for t in window.turns] == [
        ("user", None),
        ("assistant", 1),
        ("assistant", 1),
    ]


def annotation(function: Callable[..., object], parameter: str) -> Any:
    """The type ``parameter`` of ``function`` is annotated with, evaluated where the
    function is defined (``get_type_hints`` would need the names imported only for
    type checking as well)."""
    hint = inspect.signature(function).parameters[parameter].annotation
    # the string is an annotation in our own source, not input
    return eval(hint, function.__globals__) if isinstance(hint, str) else hint  # noqa: S307


def test_the_engine_takes_only_the_conversation_store() -> None:
    """The engine is typed on :class:`ConversationStore`: what else a front end needs
    of the store (the inbox's events, health checks) is handed to it by the wiring,
    not read from ``engine.store``."""
    assert annotation(Engine.__init__, "store") is ConversationStore
    adapters: list[tuple[Callable[..., object], str, type]] = [
        (TelegramAdapter.__init__, "events", EventStore),
        (DiscordAdapter.__init__, "events", EventStore),
        (InteractionEndpoint.__init__, "events", EventStore),
        (create_app, "upkeep", StoreUpkeep),
    ]
    for function, name, protocol in adapters:
        hint = annotation(function, name)
        assert protocol in (hint, *get_args(hint)), (function.__qualname__, hint)
