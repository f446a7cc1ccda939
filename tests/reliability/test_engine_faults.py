"""The engine under injected faults: nothing lost, nothing duplicated, nothing leaked.

Many users on three platforms (accounts linked from two platforms and the web, guests in
private chats and in one shared group) chat at once with a real store wrapped in
:class:`~faults.FlakyStore` (10 % of calls fail, half of them after the call was
applied) and an echoing backend wrapped in :class:`~faults.FlakyBackend` (20 % of
replies fail before any text, mid-stream, or stall past the guard's timeout) behind the
real :class:`~bot.backends.guard.ReplyGuard`, with the offline backend as last resort.

Users behave as people do: told their message was not kept, they send it again; told to
send /retry, they do (a few times at most). Every message carries a token naming its
owner. Then the store is read directly, without faults, and the run is counted: a
message the user was told was kept (or never gave up on) missing from the store, a
reply shown as complete but not stored, or any turn stored twice is *lost*; a token of
one owner in a reply to, or a stored turn of, another is *leaked*.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bot import engine_parts
from bot.backends.base import Backend
from bot.backends.guard import GuardPolicy, ReplyGuard
from bot.backends.offline import OfflineBackend
from bot.config import EngineSettings, RateLimitSettings
from bot.engine import FALLBACK_NOTE, REPLY_NOT_KEPT, STORE_TROUBLE, Engine
from bot.messages import (
    ConversationKey,
    Identity,
    Incoming,
    OwnerId,
    ReplyDone,
    ReplyKind,
    TextDelta,
    Turn,
    account_owner,
    guest_owner,
)
from bot.personas import PersonaLibrary
from bot.retrying import StoreRetry
from bot.store.base import Store
from bot.store.sqlite import SqliteStore
from tests.support import engine as engine_support
from tests.support.fakes import StatefulBackend, WindowEcho, make_persona
from tests.support.faults import INJECTED, FlakyBackend, FlakyStore

PERSONA = make_persona("ada", "Professor Ada", backend="echo")
UNLIMITED = RateLimitSettings(per_minute=1e9, burst=10**9)
#: A stall costs the guard's first-delta timeout; the whole reply may take much longer
#: on a busy machine without being cut.
GUARD = GuardPolicy(
    first_delta_timeout=0.5, total_timeout=10.0, retries=1, retry_backoff=0, breaker_failures=0
)
#: How often a user sends one message (or /retry) before giving up on it.
MAX_TRIES = 8
TOKEN = re.compile(r"tok:(o\d+):(\d+)")


def build_engine(store: Store, backend: Backend) -> Engine:
    return engine_support.build_engine(
        store,
        backend,
        extra=[OfflineBackend(seed=7)],
        personas=[PERSONA],
        policy=GUARD,
        settings=EngineSettings(window_max_turns=12, fallback_note=True),
        rate_limit=UNLIMITED,
    )


# -- the population -------------------------------------------------------------------


@dataclass(frozen=True)
class Device:
    """Where a person writes from: one platform identity (or the web, as an account)."""

    platform: str
    user_id: str
    name: str
    chat_id: str
    private: bool = True
    account_id: str | None = None

    def says(self, text: str) -> Incoming:
        return Incoming(
            self.platform,
            self.user_id,
            self.name,
            self.chat_id,
            self.private,
            text,
            account_id=self.account_id,
        )


@dataclass(frozen=True)
class Person:
    """One owner of one conversation, and the devices they write from."""

    tag: str
    owner: OwnerId
    scope: str
    devices: tuple[Device, ...]

    @property
    def key(self) -> ConversationKey:
        return ConversationKey(self.owner, PERSONA.id, self.scope)

    def token(self, n: int) -> str:
        return f"tok:{self.tag}:{n}"


async def populate(store: Store, *, linked: int, guests: int) -> list[Person]:
    """Accounts linked from Telegram and Discord (and on the web), made directly in
    ``store``; guests in private chats on either platform or in one Telegram group."""
    people: list[Person] = []
    for n in range(linked):
        tag = f"o{n:02d}"
        account = await store.create_account(f"user{tag}", "not-a-hash", 1.0)
        telegram, discord = Identity("telegram", f"t{tag}"), Identity("discord", f"d{tag}")
        await store.link_identity(telegram, f"T{tag}", account.id, 2.0)
        await store.link_identity(discord, f"D{tag}", account.id, 3.0)
        web = Device("web", account.id, f"W{tag}", account.id, account_id=account.id)
        devices = (
            Device("telegram", telegram.user_id, f"T{tag}", telegram.user_id),
            Device("discord", discord.user_id, f"D{tag}", discord.user_id),
        )
        # every other account also writes from the web, at the same time
        devices += (web,) if n % 2 else ()
        people.append(Person(tag, account_owner(account.id), "direct", devices))
    for n in range(linked, linked + guests):
        tag = f"o{n:02d}"
        kind = n % 3
        platform = "discord" if kind == 1 else "telegram"
        user = f"g{tag}"
        if kind == 2:  # one group, each member with their own history there
            device = Device(platform, user, f"G{tag}", "lounge", private=False)
            scope = "telegram:lounge"
        else:
            device = Device(platform, user, f"G{tag}", user)
            scope = "direct"
        people.append(Person(tag, guest_owner(Identity(platform, user)), scope, (device,)))
    return people


# -- what the users saw ---------------------------------------------------------------


@dataclass
class Tally:
    """What the users sent and were told."""

    sent: int = 0  #: messages and /retry commands handed to the engine
    intended: dict[str, list[str]] = field(default_factory=dict)  #: tag -> tokens
    confirmed: set[str] = field(default_factory=set)  #: told kept, or answered
    gave_up: set[str] = field(default_factory=set)
    delivered: dict[str, list[str]] = field(default_factory=dict)  #: tag -> CHAT replies
    fallbacks: int = 0
    defects: list[str] = field(default_factory=list)  #: lost: seen while chatting
    leaks: list[str] = field(default_factory=list)


def _tags(text: str) -> set[str]:
    return {match.group(1) for match in TOKEN.finditer(text)}


async def converse(engine: Engine, person: Person, device: Device, n: int, tally: Tally) -> None:
    """Send message ``n`` the way a person would, until it is answered or they give up."""
    token = person.token(n)
    tally.intended.setdefault(person.tag, []).append(token)
    pending = f"{token} tell me about clouds"
    for _ in range(MAX_TRIES):
        tally.sent += 1
        deltas: list[str] = []
        done: ReplyDone | None = None
        async for event in engine.handle(device.says(pending)):
            if isinstance(event, TextDelta):
                deltas.append(event.text)
            else:
                done = event
        assert done is not None
        shown = "".join(deltas) + "\n" + done.text
        if _tags(shown) - {person.tag}:
            tally.leaks.append(f"reply to {person.tag} shows {sorted(_tags(shown))}")
        if INJECTED in shown or "Traceback" in shown or "StoreUnavailable" in shown:
            tally.defects.append(f"{person.tag} was shown an internal error: {done.text!r}")
        if done.kind is ReplyKind.CHAT:
            tally.confirmed.add(token)
            tally.delivered.setdefault(person.tag, []).append(done.text)
            streamed = "".join(deltas)
            note = FALLBACK_NOTE.format(name=PERSONA.name)
            if streamed.endswith(note):
                tally.fallbacks += 1
                streamed = streamed.removesuffix(note)
            elif not done.text.startswith(f"re:tok:{person.tag}:"):
                tally.defects.append(f"{person.tag} got another's answer: {done.text!r}")
            if streamed.strip() != done.text:
                tally.defects.append(f"{person.tag}: streamed {streamed!r} != done {done.text!r}")
            return
        if done.kind is ReplyKind.ERROR and "/retry" in done.text:
            tally.confirmed.add(token)  # "your message is kept"
            pending = "/retry"
        elif done.kind is ReplyKind.ERROR and done.text == STORE_TROUBLE:
            pass  # "I didn't keep that": send the same again
        else:
            tally.defects.append(f"{person.tag} sent {pending!r}, got {done}")
            return
    tally.gave_up.add(token)


async def chat(engine: Engine, person: Person, messages: int, tally: Tally) -> None:
    """The person's messages, each device writing its share at the same time."""

    async def device_writes(index: int, device: Device) -> None:
        for n in range(index, messages, len(person.devices)):
            await converse(engine, person, device, n, tally)

    await asyncio.gather(*(device_writes(i, d) for i, d in enumerate(person.devices)))


# -- what the store kept ----------------------------------------------------------------


@dataclass
class Audit:
    label: str
    messages: int = 0
    turns_stored: int = 0
    lost: list[str] = field(default_factory=list)
    leaked: list[str] = field(default_factory=list)

    def line(self, tally: Tally, store: FlakyStore, backend: FlakyBackend) -> str:
        return (
            f"engine under faults [{self.label}]: messages={self.messages} "
            f"sent={tally.sent} replies delivered="
            f"{sum(len(r) for r in tally.delivered.values())} "
            f"turns stored={self.turns_stored} lost={len(self.lost)} "
            f"leaked={len(self.leaked)} gave up={len(tally.gave_up)} "
            f"fallback replies={tally.fallbacks} | injected: store before="
            f"{store.injected_when('before')} after={store.injected_when('after')} "
            f"backend before={backend.injected['before']} mid={backend.injected['mid']} "
            f"stall={backend.injected['stall']}"
        )


def well_formed(turns: Sequence[Turn]) -> str | None:
    """What is wrong with one stored conversation's turns, if anything."""
    seqs = [t.seq for t in turns]
    if seqs != list(range(1, len(turns) + 1)):
        return f"seqs are not 1..{len(turns)}: {seqs}"
    return None


async def audit(store: Store, people: Sequence[Person], tally: Tally, label: str) -> Audit:
    """Read everything back from ``store`` (no faults) and count against ``tally``."""
    result = Audit(label, messages=sum(len(t) for t in tally.intended.values()))
    result.lost.extend(tally.defects)
    result.leaked.extend(tally.leaks)
    for person in people:
        records = await store.export_owner(person.owner)
        turns = [turn for record in records for turn in record.turns]
        result.turns_stored += len(turns)
        for record in records:
            problem = well_formed(record.turns)
            if problem:
                result.lost.append(f"{person.tag} {record.scope}: {problem}")
        keys = {(r.persona_id, r.scope) for r in records}
        if keys - {(PERSONA.id, person.scope)}:
            result.leaked.append(f"{person.tag} has conversations {sorted(keys)}")
        for turn in turns:
            strangers = _tags(turn.text) - {person.tag}
            if strangers:
                result.leaked.append(f"{person.tag} stores {turn.text!r}")
        stored_tokens = Counter(
            match.group(0)
            for turn in turns
            if turn.role == "user"
            for match in [TOKEN.match(turn.text)]
            if match
        )
        strays = [t.text for t in turns if t.role == "user" and not TOKEN.match(t.text)]
        result.lost.extend(f"{person.tag} stores a stray user turn {s!r}" for s in strays)
        for token in tally.intended.get(person.tag, []):
            must_be_kept = token in tally.confirmed or token not in tally.gave_up
            if must_be_kept and stored_tokens[token] == 0:
                result.lost.append(f"{token} is not stored")
            if stored_tokens[token] > 1:
                result.lost.append(f"{token} is stored {stored_tokens[token]} times")
        # each reply shown as complete is stored, once; nothing else is stored as one
        # (two devices of one account may both /retry: two equal replies, both shown)
        stored_replies = Counter(t.text for t in turns if t.role == "assistant")
        shown_replies = Counter(tally.delivered.get(person.tag, []))
        for text, times in (shown_replies - stored_replies).items():
            result.lost.append(f"{person.tag} was shown {text!r} {times}x more than stored")
        for text, times in (stored_replies - shown_replies).items():
            result.lost.append(f"{person.tag} stores {text!r} {times}x more than shown")
        # a linked identity's guest self must own nothing: its turns went to the account
        for device in person.devices:
            if device.account_id is None and person.owner.startswith("account:"):
                stray = await store.export_owner(
                    guest_owner(Identity(device.platform, device.user_id))
                )
                if any(record.turns for record in stray):
                    result.leaked.append(f"{device.user_id} kept turns as a guest")
    return result


async def run_under_faults(
    inner: Store, *, label: str, linked: int, guests: int, messages: int, seed: int
) -> None:
    people = await populate(inner, linked=linked, guests=guests)
    store = FlakyStore(inner, rate=0.10, after_share=0.5, seed=seed)
    backend = FlakyBackend(WindowEcho("echo"), stall_seconds=3.0, seed=seed)
    engine = build_engine(store, backend)
    tally = Tally()
    await asyncio.gather(*(chat(engine, person, messages, tally) for person in people))
    await engine.aclose()
    result = await audit(inner, people, tally, label)
    line = result.line(tally, store, backend)
    print(line)
    details = "\n".join([*result.lost[:10], *result.leaked[:10]])
    assert (len(result.lost), len(result.leaked)) == (0, 0), f"{line}\n{details}"
    assert store.injected_when("before") > 0 and store.injected_when("after") > 0, line
    assert store.injected["append_turns", "after"] > 0, line  # the ambiguous commit
    assert all(backend.injected[kind] > 0 for kind in ("before", "mid", "stall")), line
    # every message got through in the end: the faults are transient
    assert not tally.gave_up, f"{line}\ngave up on {sorted(tally.gave_up)[:10]}"
    assert result.turns_stored >= 2 * result.messages, line


async def test_sqlite_engine_loses_and_leaks_nothing_under_faults(tmp_path: Path) -> None:
    """40 users (10 accounts on two or three platforms at once, 30 guests), 10
    messages each, all at once, on a SQLite file."""
    async with SqliteStore(tmp_path / "faults.db") as inner:
        await run_under_faults(inner, label="sqlite", linked=10, guests=30, messages=10, seed=1)


async def test_dynamodb_engine_loses_and_leaks_nothing_under_faults(dynamo_stores: Any) -> None:
    """The same on DynamoDB (moto on loopback), smaller: moto is slow."""
    async with dynamo_stores() as inner:
        await run_under_faults(inner, label="dynamodb", linked=3, guests=6, messages=5, seed=2)


# -- the engine's own answers to store failures -------------------------------------------


def key_of(user: str) -> ConversationKey:
    return ConversationKey(guest_owner(Identity("telegram", user)), PERSONA.id, "direct")


async def ask(engine: Engine, user: str, text: str) -> ReplyDone:
    events = [e async for e in engine.handle(Device("telegram", user, "Ann", user).says(text))]
    done = events[-1]
    assert isinstance(done, ReplyDone)
    return done


async def test_appends_whose_answer_is_lost_are_kept_once(tmp_path: Path) -> None:
    """Every append is applied but reported failed: the engine finds its turns on
    re-reading and neither appends them again nor tells the user they were lost."""
    async with SqliteStore(tmp_path / "ambiguous.db") as inner:
        store = FlakyStore(inner, rate=1.0, after_share=1.0, ops=frozenset({"append_turns"}))
        engine = build_engine(store, WindowEcho("echo"))
        first = await ask(engine, "ann", "hello")
        second = await ask(engine, "ann", "again")
        window = await inner.load_window(key_of("ann"), 10)
    assert (first.kind, second.kind) == (ReplyKind.CHAT, ReplyKind.CHAT)
    assert [(t.role, t.text) for t in window.turns] == [
        ("user", "hello"),
        ("assistant", first.text),
        ("user", "again"),
        ("assistant", second.text),
    ]
    assert store.injected["append_turns", "after"] == 4


async def test_appends_that_keep_failing_are_one_clear_message_and_store_nothing(
    tmp_path: Path,
) -> None:
    async with SqliteStore(tmp_path / "down.db") as inner:
        store = FlakyStore(inner, rate=1.0, after_share=0.0, ops=frozenset({"append_turns"}))
        engine = build_engine(store, WindowEcho("echo"))
        done = await ask(engine, "ann", "hello")
        window = await inner.load_window(key_of("ann"), 10)
    assert (done.kind, done.text) == (ReplyKind.ERROR, STORE_TROUBLE)
    assert window.turns == ()
    assert store.injected["append_turns", "before"] == StoreRetry().attempts


async def test_transient_read_failures_are_tried_again(tmp_path: Path) -> None:
    """The first try of each read fails: the message is answered all the same."""
    reads = frozenset({"resolve_identity", "load_window"})
    async with SqliteStore(tmp_path / "reads.db") as inner:
        store = FlakyStore(inner, rate=1.0, after_share=0.0, ops=reads)
        store.select = lambda op, args: store.calls[op] == 1
        engine = build_engine(store, WindowEcho("echo"))
        done = await ask(engine, "ann", "hello")
    assert done.kind is ReplyKind.CHAT
    assert store.injected == {("resolve_identity", "before"): 1, ("load_window", "before"): 1}


async def test_a_backend_state_that_cannot_be_saved_does_not_disown_a_stored_reply(
    tmp_path: Path,
) -> None:
    """The reply is stored before the backend's state: when only the state cannot be
    saved, the user gets the reply (it is kept), not "I couldn't save my reply"."""
    async with SqliteStore(tmp_path / "state.db") as inner:
        store = FlakyStore(
            inner, rate=1.0, after_share=0.0, ops=frozenset({"save_conversation_state"})
        )
        backend = StatefulBackend()
        guard = ReplyGuard({backend.name: backend}, GUARD)
        persona = make_persona("ada", "Professor Ada", backend=backend.name)
        engine = engine_parts.build_engine(
            store, PersonaLibrary([persona]), guard, rate_limit=UNLIMITED
        )
        done = await ask(engine, "ann", "hello")
        window = await inner.load_window(key_of("ann"), 10)
    assert done.kind is ReplyKind.CHAT
    assert [(t.role, t.text) for t in window.turns] == [("user", "hello"), ("assistant", done.text)]


@pytest.mark.parametrize("after_share", [0.0, 1.0], ids=["before", "after"])
async def test_a_failed_reply_append_leaves_the_users_turn_for_retry(
    tmp_path: Path, after_share: float
) -> None:
    """Only the reply's appends fail: before they ran, the user is told to /retry and
    /retry answers; after they ran (the answer lost), the reply is found and shown."""

    def replies(op: str, args: tuple[Any, ...]) -> bool:
        return bool(args[1][0].role == "assistant")

    async with SqliteStore(tmp_path / "reply.db") as inner:
        store = FlakyStore(
            inner,
            rate=1.0,
            after_share=after_share,
            ops=frozenset({"append_turns"}),
            select=replies,
        )
        engine = build_engine(store, WindowEcho("echo"))
        done = await ask(engine, "ann", "hello")
        if after_share == 0.0:
            assert done.kind is ReplyKind.ERROR and "/retry" in done.text
            store.armed = False
            done = await ask(engine, "ann", "/retry")
        window = await inner.load_window(key_of("ann"), 10)
    assert done.kind is ReplyKind.CHAT and done.text.startswith("re:hello")
    assert [(t.role, t.text) for t in window.turns] == [("user", "hello"), ("assistant", done.text)]


def lose_append_then_reads(store: FlakyStore, append_call: int) -> None:
    """Script ``store``: its ``append_call``-th append is applied but reported failed,
    and the three reads after it (all the tries of the read that would have shown the
    append stored) fail too: the engine cannot learn whether the append was applied."""
    reads_to_fail = 0

    def select(op: str, args: tuple[Any, ...]) -> bool:
        nonlocal reads_to_fail
        if op == "append_turns":
            if store.calls[op] == append_call:
                reads_to_fail = StoreRetry().attempts
                return True
            return False
        if op == "load_window" and reads_to_fail > 0:
            reads_to_fail -= 1
            return True
        return False

    store.ops = frozenset({"append_turns", "load_window"})
    store.select = select


async def test_a_message_sent_again_after_an_append_of_unknown_outcome_is_kept_once(
    tmp_path: Path,
) -> None:
    """The user's turn was applied, but its answer and every read after it were lost:
    the user is told to send it again, and that message is matched to the stored turn."""
    async with SqliteStore(tmp_path / "unknown.db") as inner:
        store = FlakyStore(inner, rate=1.0, after_share=1.0)
        lose_append_then_reads(store, append_call=1)
        engine = build_engine(store, WindowEcho("echo"))
        first = await ask(engine, "ann", "hello")
        again = await ask(engine, "ann", "hello")
        window = await inner.load_window(key_of("ann"), 10)
    assert (first.kind, first.text) == (ReplyKind.ERROR, STORE_TROUBLE)
    assert again.kind is ReplyKind.CHAT
    assert [(t.role, t.text) for t in window.turns] == [
        ("user", "hello"),
        ("assistant", again.text),
    ]
    assert store.injected["load_window", "after"] == StoreRetry().attempts


async def test_a_retry_after_a_reply_append_of_unknown_outcome_shows_the_stored_reply(
    tmp_path: Path,
) -> None:
    """The reply was applied, but its answer and every read after it were lost: the
    user is told to send /retry, which shows the stored reply rather than a second one."""
    async with SqliteStore(tmp_path / "unknown-reply.db") as inner:
        store = FlakyStore(inner, rate=1.0, after_share=1.0)
        lose_append_then_reads(store, append_call=2)
        engine = build_engine(store, WindowEcho("echo"))
        first = await ask(engine, "ann", "hello")
        events = [
            e async for e in engine.handle(Device("telegram", "ann", "Ann", "ann").says("/retry"))
        ]
        window = await inner.load_window(key_of("ann"), 10)
    assert (first.kind, first.text) == (ReplyKind.ERROR, REPLY_NOT_KEPT)
    retried = events[-1]
    assert isinstance(retried, ReplyDone) and retried.kind is ReplyKind.CHAT
    assert [e.text for e in events[:-1] if isinstance(e, TextDelta)] == [retried.text]
    assert [(t.role, t.text) for t in window.turns] == [
        ("user", "hello"),
        ("assistant", retried.text),
    ]
