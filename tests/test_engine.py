"""The engine end to end over MemoryStore (and SqliteStore where files matter)."""

from __future__ import annotations

import asyncio
import gc
import random
from pathlib import Path

import pytest

from bot import engine_parts
from bot.backends.guard import GuardPolicy, ReplyGuard
from bot.config import AccessSettings, EngineSettings, RateLimitSettings
from bot.engine import bounded_window
from bot.errors import BackendError, BackendTimeout, StoreUnavailable
from bot.linking import create_link_code
from bot.messages import (
    ConversationKey,
    Incoming,
    ReplyDone,
    ReplyKind,
    Turn,
    account_owner,
    guest_owner,
)
from bot.personas import PersonaLibrary
from bot.retrying import StoreRetry
from bot.store.memory import MemoryStore
from bot.store.sqlite import SqliteStore
from tests.support.engine import FAST, build_engine, dm, group, key, reply, send
from tests.support.fakes import ScriptedBackend, StatefulBackend, WindowEcho, make_persona
from tests.support.faults import FlakyStore

# -- chat ----------------------------------------------------------------------------


async def test_chat_streams_and_stores_both_turns(store: MemoryStore) -> None:
    engine = build_engine(store, WindowEcho())
    deltas, done = await send(engine, dm("alice", "hello"))
    assert done is not None and done.kind is ReplyKind.CHAT
    assert len(deltas) > 1 and "".join(deltas).strip() == done.text == "re:hello saw:[]"
    window = await store.load_window(key("alice"), 10)
    assert [(t.role, t.text) for t in window.turns] == [("user", "hello"), ("assistant", done.text)]
    assert window.turns[0].author == "Alice"


async def test_history_feeds_the_next_reply(store: MemoryStore) -> None:
    engine = build_engine(store, WindowEcho())
    await reply(engine, dm("alice", "one"))
    done = await reply(engine, dm("alice", "two"))
    assert done.text == "re:two saw:[one]"


async def test_not_addressed_group_message_yields_nothing(store: MemoryStore) -> None:
    engine = build_engine(store, WindowEcho())
    events = [e async for e in engine.handle(group("bob", "chatter", addressed=False))]
    assert events == []
    assert (
        await store.load_window(
            ConversationKey(guest_owner(dm("bob", "").identity), "ada", "telegram:g1"), 5
        )
    ).turns == ()


async def test_group_members_have_separate_histories(store: MemoryStore) -> None:
    engine = build_engine(store, WindowEcho())
    await reply(engine, group("alice", "alice-secret"))
    done = await reply(engine, group("bob", "bob asks"))
    assert done.text == "re:bob asks saw:[]"
    # and the group history is not the private one
    assert (await reply(engine, dm("alice", "private"))).text == "re:private saw:[]"


async def test_concurrent_messages_from_many_users_keep_their_own_turns(tmp_path) -> None:
    """100 concurrent messages from 20 users: each conversation holds exactly its own
    turns, in order, none lost or duplicated; no reply carries another user's text."""
    async with SqliteStore(tmp_path / "pb.db") as sqlite:
        engine = build_engine(sqlite, WindowEcho(pause=0.001))
        users = [f"user{n}" for n in range(20)]
        rng = random.Random(7)

        async def user_session(user: str) -> list[ReplyDone]:
            replies = []
            for n in range(5):
                await asyncio.sleep(rng.random() / 200)
                replies.append(await reply(engine, dm(user, f"{user}-msg{n}")))
            return replies

        results = await asyncio.gather(*(user_session(u) for u in users))
        for user, replies in zip(users, results, strict=True):
            assert [r.kind for r in replies] == [ReplyKind.CHAT] * 5
            for n, done in enumerate(replies):
                assert done.text.startswith(f"re:{user}-msg{n} ")
                others = [u for u in users if u != user]
                assert not any(f"{o}-msg" in done.text for o in others), done.text
            window = await sqlite.load_window(key(user), 100)
            texts = [t.text for t in window.turns]
            assert texts[0::2] == [f"{user}-msg{n}" for n in range(5)]
            assert [t.role for t in window.turns] == ["user", "assistant"] * 5
            assert [t.seq for t in window.turns] == list(range(1, 11))


async def test_one_conversation_is_serialised(store: MemoryStore) -> None:
    engine = build_engine(
        store, WindowEcho(pause=0.002), rate_limit=RateLimitSettings(per_minute=600, burst=100)
    )
    results = await asyncio.gather(*(reply(engine, dm("alice", f"m{n}")) for n in range(10)))
    assert all(r.kind is ReplyKind.CHAT for r in results)
    window = await store.load_window(key("alice"), 100)
    assert [t.role for t in window.turns] == ["user", "assistant"] * 10
    for user_turn, bot_turn in zip(window.turns[0::2], window.turns[1::2], strict=True):
        assert bot_turn.text.startswith(f"re:{user_turn.text} ")


# -- failures: the user's turn survives, one clear message, /retry works ----------


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(BackendError("boom"), id="raises"),
        pytest.param(("stall", 5), id="times-out"),
        pytest.param(("partial words", BackendError("cut")), id="fails-mid-stream"),
        pytest.param(RuntimeError("bug"), id="unexpected-exception"),
    ],
)
async def test_backend_failure_keeps_the_turn_and_retry_answers(
    store: MemoryStore, failure: object
) -> None:
    backend = ScriptedBackend("scripted", [failure], default="the real answer")
    no_retries = GuardPolicy(first_delta_timeout=1.0, total_timeout=3, retries=0)
    engine = build_engine(store, backend, policy=no_retries)
    _, done = await send(engine, dm("alice", "question"))
    assert done is not None and done.kind is ReplyKind.ERROR
    assert "/retry" in done.text and "Traceback" not in done.text
    window = await store.load_window(key("alice"), 10)
    assert [(t.role, t.text) for t in window.turns] == [("user", "question")]

    retried = await reply(engine, dm("alice", "/retry"))
    assert retried.kind is ReplyKind.CHAT and retried.text == "the real answer"
    window = await store.load_window(key("alice"), 10)
    assert [(t.role, t.text) for t in window.turns] == [
        ("user", "question"),
        ("assistant", "the real answer"),
    ]


async def test_retry_replaces_the_last_reply(store: MemoryStore) -> None:
    backend = ScriptedBackend("scripted", ["first take", "second take"], default="next")
    engine = build_engine(store, backend)
    await reply(engine, dm("alice", "q"))
    assert (await reply(engine, dm("alice", "/retry"))).text == "second take"
    window = await store.load_window(key("alice"), 10)
    visible = bounded_window(window.turns, 10_000)
    assert [t.text for t in visible] == ["q", "second take"]


async def test_retry_with_nothing_to_retry(store: MemoryStore) -> None:
    engine = build_engine(store, WindowEcho())
    done = await reply(engine, dm("alice", "/retry"))
    assert done.kind is ReplyKind.COMMAND and "nothing to retry" in done.text


async def test_store_outage_is_one_clear_message(store: MemoryStore) -> None:
    failing = MemoryStore(
        fail=lambda op: StoreUnavailable("down") if op == "append_turns" else None
    )
    async with failing:
        engine = build_engine(failing, WindowEcho())
        done = await reply(engine, dm("alice", "hello"))
    assert done.kind is ReplyKind.ERROR and "memory" in done.text


async def test_backend_state_is_kept_with_the_conversation(store: MemoryStore) -> None:
    engine = build_engine(store, StatefulBackend())
    assert (await reply(engine, dm("alice", "a"))).text == "call 1"
    assert (await reply(engine, dm("alice", "b"))).text == "call 2"
    assert (await reply(engine, dm("bob", "c"))).text == "call 1"
    await reply(engine, dm("alice", "/reset"))
    assert (await reply(engine, dm("alice", "d"))).text == "call 1"


# -- windowing -----------------------------------------------------------------------


def _turns(*texts: tuple[str, str]) -> list[Turn]:
    return [Turn(n + 1, role, text, "x", 0.0) for n, (role, text) in enumerate(texts)]  # type: ignore[arg-type]


def test_bounded_window_keeps_the_newest_turns_within_budget() -> None:
    turns = _turns(("user", "a" * 50), ("assistant", "b" * 50), ("user", "c" * 30))
    assert [t.seq for t in bounded_window(turns, 85)] == [2, 3]
    assert [t.seq for t in bounded_window(turns, 200)] == [1, 2, 3]
    assert bounded_window(turns, 10) == []


def test_bounded_window_shows_only_the_newest_of_retried_replies() -> None:
    turns = _turns(("user", "q"), ("assistant", "old"), ("assistant", "new"), ("user", "q2"))
    assert [t.text for t in bounded_window(turns, 1000)] == ["q", "new", "q2"]


def test_bounded_window_with_a_turn_limit_is_the_newest_of_the_unlimited_one() -> None:
    turns = _turns(
        ("user", "q"), ("assistant", "old"), ("assistant", "new"), ("user", "q2"), ("user", "q3")
    )
    for max_turns in range(1, 6):
        for budget in (4, 7, 1000):
            expected = bounded_window(turns, budget)[-max_turns:]
            assert bounded_window(turns, budget, max_turns) == expected


def test_building_an_engine_makes_young_garbage_collections_rarer_never_more_frequent(
    store: MemoryStore,
) -> None:
    saved = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        build_engine(store, WindowEcho())
        assert gc.get_threshold() == (engine_parts.GC_YOUNG_THRESHOLD, 10, 10)
        assert gc.isenabled()
        gc.set_threshold(50_000, 5, 5)  # a process tuned already keeps its setting
        build_engine(store, WindowEcho())
        assert gc.get_threshold() == (50_000, 5, 5)
    finally:
        gc.set_threshold(*saved)


async def test_window_is_bounded_by_characters(store: MemoryStore) -> None:
    engine = build_engine(
        store,
        WindowEcho(),
        settings=EngineSettings(window_max_chars=200, window_max_turns=50),
        rate_limit=RateLimitSettings(burst=100),
    )
    for n in range(10):
        await reply(engine, dm("alice", f"{n}" * 20))
    done = await reply(engine, dm("alice", "last"))
    seen = done.text.split("saw:[", 1)[1].rstrip("]").split("|")
    assert seen and seen[-1] == "9" * 20 and "0" * 20 not in seen


# -- commands -------------------------------------------------------------------------


async def test_start_greets_with_the_persona_and_user_name(store: MemoryStore) -> None:
    engine = build_engine(store, WindowEcho())
    done = await reply(engine, dm("alice", "/start"))
    assert done.kind is ReplyKind.COMMAND
    assert done.text.startswith("Hello Alice, I am Professor Ada.")


async def test_help_lists_every_command(store: MemoryStore) -> None:
    engine = build_engine(store, WindowEcho())
    done = await reply(engine, dm("alice", "/help"))
    for name in (
        "start",
        "help",
        "reset",
        "persona",
        "personas",
        "link",
        "retry",
        "whoami",
        "forget",
    ):
        assert f"/{name}" in done.text


async def test_command_addressed_with_bot_name(store: MemoryStore) -> None:
    engine = build_engine(store, WindowEcho())
    done = await reply(engine, group("alice", "/help@persona_bot"))
    assert "/reset" in done.text


async def test_unknown_command(store: MemoryStore) -> None:
    engine = build_engine(store, WindowEcho())
    done = await reply(engine, dm("alice", "/dance"))
    assert "/help" in done.text


async def test_reset_starts_a_new_conversation_and_keeps_the_old(store: MemoryStore) -> None:
    engine = build_engine(store, WindowEcho())
    await reply(engine, dm("alice", "before"))
    done = await reply(engine, dm("alice", "/reset"))
    assert "New conversation" in done.text
    assert (await reply(engine, dm("alice", "after"))).text == "re:after saw:[]"
    exported = await store.export_owner(key("alice").owner)
    assert sorted(c.archived for c in exported) == [False, True]


async def test_persona_show_switch_and_list(store: MemoryStore) -> None:
    engine = build_engine(store, WindowEcho())
    assert "Professor Ada" in (await reply(engine, dm("alice", "/persona"))).text
    switched = await reply(engine, dm("alice", "/persona morrow"))
    assert "Captain Morrow" in switched.text and "Hello Alice" in switched.text
    await reply(engine, dm("alice", "to the captain"))
    # the greeting the switch showed opens the new conversation
    turns = (await store.load_window(key("alice", "morrow"), 5)).turns
    assert [t.text for t in turns[:2]] == ["Hello Alice, I am Captain Morrow.", "to the captain"]
    assert (await store.load_window(key("alice", "ada"), 5)).turns == ()
    listing = await reply(engine, dm("alice", "/personas"))
    assert "ada" in listing.text and "morrow — Captain Morrow (current)" in listing.text
    unknown = await reply(engine, dm("alice", "/persona nobody"))
    assert "don't know" in unknown.text


async def test_link_binds_identity_and_moves_guest_history_on_request(
    store: MemoryStore,
) -> None:
    engine = build_engine(store, WindowEcho())
    account = await store.create_account("Carol", "hash", 0.0)
    await reply(engine, dm("carol_tg", "guest words"))
    code = await create_link_code(store, account.id, now=engine_now())
    asked = await reply(engine, dm("carol_tg", f"/link {code.lower()}"))
    assert '"Carol"' in asked.text and await store.get_identity(dm("carol_tg", "").identity) is None
    done = await reply(engine, dm("carol_tg", "/link confirm move"))
    assert "Linked" in done.text and "Carol" in done.text
    # the same history now follows the account, on another platform too
    await store.link_identity(dm("carol_dc", "", "discord").identity, "Carol", account.id, 0.0)
    follow = await reply(engine, dm("carol_dc", "from discord", platform="discord"))
    assert follow.text == "re:from discord saw:[guest words]"
    whoami = await reply(engine, dm("carol_dc", "/whoami", platform="discord"))
    assert "Linked to the account Carol" in whoami.text
    # the code is single use
    again = await reply(engine, dm("mallory", f"/link {code}"))
    assert "unknown, used or expired" in again.text


async def test_start_with_link_payload_asks_then_links(store: MemoryStore) -> None:
    engine = build_engine(store, WindowEcho())
    account = await store.create_account("dave", "hash", 0.0)
    code = await create_link_code(store, account.id, now=engine_now())
    asked = await reply(engine, dm("dave_tg", f"/start link-{code.replace('-', '')}"))
    assert '"dave"' in asked.text and asked.actions
    assert await store.get_identity(dm("dave_tg", "").identity) is None
    done = await reply(engine, dm("dave_tg", "/link confirm"))
    assert "Linked" in done.text
    link = await store.get_identity(dm("dave_tg", "").identity)
    assert link is not None and link.account_id == account.id


async def test_link_attempts_are_limited_per_identity(store: MemoryStore) -> None:
    engine = build_engine(store, WindowEcho())
    answers = [(await reply(engine, dm("eve", "/link AAAA-BBBB"))).text for _ in range(6)]
    assert all("unknown" in a for a in answers[:5])
    assert "Too many link attempts" in answers[5]


async def test_link_rejects_malformed_codes(store: MemoryStore) -> None:
    engine = build_engine(store, WindowEcho())
    assert "doesn't look like" in (await reply(engine, dm("eve", "/link hello"))).text
    assert "code from your account page" in (await reply(engine, dm("eve", "/link"))).text


async def test_whoami_for_a_guest(store: MemoryStore) -> None:
    engine = build_engine(store, WindowEcho())
    done = await reply(engine, dm("alice", "/whoami"))
    assert "Alice on telegram (id alice)" in done.text and "guest" in done.text


async def test_forget_needs_confirmation(store: MemoryStore) -> None:
    engine = build_engine(store, WindowEcho())
    await reply(engine, dm("alice", "remember me"))
    await reply(engine, dm("bob", "bob stays"))
    ask = await reply(engine, dm("alice", "/forget"))
    assert "/forget confirm" in ask.text
    assert (await store.load_window(key("alice"), 5)).turns != ()
    done = await reply(engine, dm("alice", "/forget confirm"))
    assert "deleted" in done.text
    assert await store.export_owner(key("alice").owner) == []
    assert (await store.load_window(key("bob"), 5)).turns != ()
    again = await reply(engine, dm("alice", "/forget confirm"))
    assert "no pending" in again.text


# -- limits and access -----------------------------------------------------------------


async def test_rate_limit_gives_a_friendly_reply(store: MemoryStore) -> None:
    engine = build_engine(store, WindowEcho(), rate_limit=RateLimitSettings(per_minute=1, burst=3))
    kinds = [(await reply(engine, dm("alice", f"m{n}"))).kind for n in range(5)]
    assert kinds == [ReplyKind.CHAT] * 3 + [ReplyKind.RATE_LIMITED] * 2
    assert (await reply(engine, dm("bob", "hi"))).kind is ReplyKind.CHAT
    window = await store.load_window(key("alice"), 20)
    assert len(window.turns) == 6  # limited messages are not stored


@pytest.mark.parametrize("platform", ["telegram", "discord", "web"])
async def test_read_only_commands_do_not_spend_the_chat_budget(
    store: MemoryStore, platform: str
) -> None:
    engine = build_engine(store, WindowEcho(), rate_limit=RateLimitSettings(per_minute=1, burst=2))
    for text in ("/help", "/whoami", "/personas", "/persona", "/greeting", "/me", "/help"):
        assert (await reply(engine, dm("alice", text, platform))).kind is ReplyKind.COMMAND
    kinds = [(await reply(engine, dm("alice", f"m{n}", platform))).kind for n in range(3)]
    assert kinds == [ReplyKind.CHAT, ReplyKind.CHAT, ReplyKind.RATE_LIMITED]
    # switching persona writes: it spends the chat budget like a message
    assert (await reply(engine, dm("alice", "/persona morrow", platform))).kind is (
        ReplyKind.RATE_LIMITED
    )


async def test_read_only_commands_have_a_budget_of_their_own(store: MemoryStore) -> None:
    engine = build_engine(store, WindowEcho(), rate_limit=RateLimitSettings(per_minute=1, burst=1))
    kinds = [(await reply(engine, dm("alice", "/help"))).kind for _ in range(5)]
    assert kinds == [ReplyKind.COMMAND] * 4 + [ReplyKind.RATE_LIMITED]


async def test_the_wait_is_rounded_up_never_zero_seconds(store: MemoryStore) -> None:
    now = [100.0]
    engine = build_engine(
        store,
        WindowEcho(),
        rate_limit=RateLimitSettings(per_minute=60, burst=1),
        monotonic=lambda: now[0],
    )
    assert (await reply(engine, dm("alice", "one"))).kind is ReplyKind.CHAT
    now[0] += 0.9  # 0.1 s to go: "in 0 s" before, "in 1 s" now
    limited = await reply(engine, dm("alice", "two"))
    assert limited.kind is ReplyKind.RATE_LIMITED and limited.retry_after == 1
    assert "in 1 s" in limited.text and "0 s" not in limited.text


@pytest.mark.parametrize(
    ("access", "incoming", "allowed"),
    [
        pytest.param(
            AccessSettings(block_users=("telegram:alice",)),
            dm("alice", "x"),
            False,
            id="blocked-user",
        ),
        pytest.param(
            AccessSettings(block_users=("telegram:alice",)), dm("bob", "x"), True, id="other-user"
        ),
        pytest.param(
            AccessSettings(allow_users=("telegram:bob",)), dm("alice", "x"), False, id="not-allowed"
        ),
        pytest.param(
            AccessSettings(allow_chats=("telegram:g1",)),
            group("alice", "x", "g2"),
            False,
            id="chat-not-allowed",
        ),
        pytest.param(
            AccessSettings(allow_chats=("telegram:g1",)),
            group("alice", "x", "g1"),
            True,
            id="chat-allowed",
        ),
        pytest.param(
            AccessSettings(block_chats=("telegram:g1",)),
            group("alice", "x", "g1"),
            False,
            id="chat-blocked",
        ),
        pytest.param(
            AccessSettings(linked_only=True), dm("alice", "x"), False, id="guest-when-linked-only"
        ),
        pytest.param(
            AccessSettings(linked_only=True), dm("alice", "/help"), True, id="help-when-linked-only"
        ),
    ],
)
async def test_access_control(
    store: MemoryStore, access: AccessSettings, incoming: Incoming, allowed: bool
) -> None:
    engine = build_engine(store, WindowEcho(), access=access)
    done = await reply(engine, incoming)
    assert (done.kind is not ReplyKind.DENIED) == allowed


async def test_linked_account_may_chat_when_linked_only(store: MemoryStore) -> None:
    engine = build_engine(store, WindowEcho(), access=AccessSettings(linked_only=True))
    account = await store.create_account("frank", "hash", 0.0)
    await store.link_identity(dm("frank", "").identity, "Frank", account.id, 0.0)
    assert (await reply(engine, dm("frank", "hi"))).kind is ReplyKind.CHAT
    window = await store.load_window(ConversationKey(account_owner(account.id), "ada", "direct"), 5)
    assert len(window.turns) == 2


# -- guard: fallback and retries ------------------------------------------------------


async def test_transient_failure_is_retried(store: MemoryStore) -> None:
    from tests.support.fakes import failing

    backend = failing(1)
    engine = build_engine(store, backend)
    assert (await reply(engine, dm("alice", "hi"))).text == "recovered"
    assert backend.calls == 2


async def test_fallback_backend_answers_when_the_first_is_down(store: MemoryStore) -> None:
    down = ScriptedBackend("primary", [BackendError("down")] * 5)
    spare = ScriptedBackend("spare", [], default="spare answer")
    personas = PersonaLibrary([make_persona(backend="primary", fallback=("spare",))])
    guard = ReplyGuard({"primary": down, "spare": spare}, FAST)
    engine = engine_parts.build_engine(store, personas, guard)
    assert (await reply(engine, dm("alice", "hi"))).text == "spare answer"


async def test_stalled_stream_times_out() -> None:
    stall = ScriptedBackend("slow", [("stall", 5)] * 2)
    guard = ReplyGuard({"slow": stall}, GuardPolicy(first_delta_timeout=0.05, retries=0))
    persona = make_persona(backend="slow")
    message = Turn(1, "user", "hi", "A", 0.0)
    with pytest.raises(BackendTimeout):
        async for _ in guard.stream(persona, [], message, {}):
            pass


def engine_now() -> float:
    import time

    return time.time()


async def test_a_new_message_reads_and_stores_its_turn_in_one_store_call() -> None:
    async with MemoryStore() as inner:
        store = FlakyStore(inner, rate=0.0)
        engine = build_engine(store, WindowEcho())
        assert (await reply(engine, dm("alice", "hello"))).kind is ReplyKind.CHAT
        # the read of the epoch and window and the user's turn: one call; the reply: one
        assert store.calls["read_and_append"] == 1
        assert store.calls["append_turns"] == 2
        assert store.calls["load_window"] == 1, "no read of its own before the append"
        window = await inner.load_window(key("alice"), 5)
        assert [t.role for t in window.turns] == ["user", "assistant"]


async def test_a_lost_answer_of_the_first_try_keeps_the_turn_once_and_frees_the_lease() -> None:
    async with MemoryStore() as inner:
        # only the first append (the user's turn, with the lease) is applied and its
        # answer lost
        appends = 0

        def first_append(op: str, _: object) -> bool:
            nonlocal appends
            appends += op == "append_turns"
            return op == "append_turns" and appends == 1

        store = FlakyStore(inner, rate=1.0, after_share=1.0, select=first_append)
        # (a lease left behind would make "again" wait this long, then refuse it)
        engine = build_engine(store, WindowEcho(), settings=EngineSettings(lease_wait_seconds=0.2))
        replies = [await reply(engine, dm("alice", text)) for text in ("hello", "again")]
        assert [d.kind for d in replies] == [ReplyKind.CHAT, ReplyKind.CHAT]
        assert store.injected["append_turns", "after"] == 1
        assert store.calls["append_turns"] == 4, "each turn appended once, none refused"
        window = await inner.load_window(key("alice"), 10)
        assert [t.text for t in window.turns if t.role == "user"] == ["hello", "again"]
        assert len(window.turns) == 4


async def test_store_failing_on_the_reply_keeps_the_user_turn() -> None:
    appends = 0

    def second_append_fails(op: str) -> BaseException | None:
        nonlocal appends
        if op == "append_turns":
            appends += 1
            if appends == 2:
                return StoreUnavailable("disk full")
        return None

    async with MemoryStore(fail=second_append_fails) as flaky:
        # one attempt: the engine's own retry (tests/reliability) would absorb the failure
        engine = build_engine(flaky, WindowEcho(), store_retry=StoreRetry(attempts=1))
        done = await reply(engine, dm("alice", "hello"))
        assert done.kind is ReplyKind.ERROR and "/retry" in done.text
        window = await flaky.load_window(key("alice"), 5)
        assert [t.text for t in window.turns] == ["hello"]
        assert (await reply(engine, dm("alice", "/retry"))).kind is ReplyKind.CHAT


# -- hostile text --------------------------------------------------------------------


@pytest.mark.parametrize("platform", ["telegram", "discord", "web", "console"])
async def test_a_message_over_the_limit_is_refused_and_not_kept(
    store: MemoryStore, platform: str
) -> None:
    backend = WindowEcho()
    engine = build_engine(store, backend, settings=EngineSettings(max_message_chars=100))
    done = await reply(engine, dm("alice", "x" * 101, platform))
    assert done.kind is ReplyKind.ERROR and "at most 100 characters" in done.text
    done = await reply(engine, dm("alice", "/persona " + "m" * 200, platform))
    assert done.kind is ReplyKind.ERROR, "commands are held to the limit too"
    assert backend.calls == 0
    assert not (await store.load_window(key("alice", platform=platform), 5)).turns
    assert (await reply(engine, dm("alice", "x" * 100, platform))).kind is ReplyKind.CHAT


async def test_lone_surrogates_are_replaced_so_a_real_store_keeps_the_message(
    tmp_path: Path,
) -> None:
    async with SqliteStore(tmp_path / "pb.sqlite3") as sqlite:
        engine = build_engine(sqlite, WindowEcho())
        incoming = Incoming("telegram", "alice", "Al\udcffice", "alice", True, "hi \ud83d there")
        done = await reply(engine, incoming)
        assert done.kind is ReplyKind.CHAT
        [turn, _] = (await sqlite.load_window(key("alice"), 5)).turns
        assert (turn.text, turn.author) == ("hi \ufffd there", "Al\ufffdice")
