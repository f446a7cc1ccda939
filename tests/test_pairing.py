"""Windows built from reply pairs (bot.pairing), including histories stored before
replies recorded the user turn they answer."""

from __future__ import annotations

from pathlib import Path

import aiosqlite
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.engine import bounded_window
from bot.messages import ConversationKey, NewTurn, OwnerId, Turn
from bot.pairing import answered, paired, regrouped
from bot.store.sqlite import MIGRATIONS, SqliteStore


def u(seq: int) -> Turn:
    return Turn(seq, "user", f"q{seq}", "Alice", float(seq))


def a(seq: int, to: int | None) -> Turn:
    return Turn(seq, "assistant", f"a{seq}", "Ada", float(seq), to)


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        pytest.param([u(1), a(2, 1), u(3), a(4, 3)], [1, 2, 3, 4], id="in-order"),
        pytest.param([u(1), u(2), a(3, 1), a(4, 2)], [1, 3, 2, 4], id="crossed"),
        pytest.param([u(1), u(2), a(3, 2), a(4, 1)], [1, 4, 2, 3], id="crossed-reversed"),
        pytest.param([u(1), a(2, None), u(3), a(4, None)], [1, 2, 3, 4], id="legacy"),
        pytest.param([u(1), a(2, None), u(3), u(4), a(5, 3)], [1, 2, 3, 5, 4], id="mixed"),
        pytest.param([a(5, 2), u(6), a(7, 6)], [5, 6, 7], id="question-out-of-window"),
        pytest.param([u(1), a(2, 1), a(3, 1)], [1, 2, 3], id="retried"),
    ],
)
def test_paired(stored: list[Turn], expected: list[int]) -> None:
    assert [t.seq for t in paired(stored)] == expected


@given(
    st.lists(st.one_of(st.none(), st.integers(min_value=0, max_value=12)), min_size=0, max_size=12)
)
def test_paired_takes_the_same_order_with_or_without_the_in_order_shortcut(
    shape: list[int | None],
) -> None:
    """Windows in conversation order skip the regrouping: for any mix of user turns
    (None), replies to a seq in or out of the window, and legacy replies (0: no
    reply_to), the result is the regrouped order."""
    stored = [u(seq) if to is None else a(seq, to or None) for seq, to in enumerate(shape, start=1)]
    assert paired(stored) == regrouped(stored)


def test_a_retried_reply_shows_only_its_newest() -> None:
    window = bounded_window(paired([u(1), u(2), a(3, 1), a(4, 2), a(5, 1)]), 1000)
    assert [t.seq for t in window] == [1, 5, 2, 4]


def test_answered() -> None:
    assert answered([u(1), u(2), a(3, 2), u(4), a(5, None)]) == {2, 4}


async def test_a_history_from_before_reply_pairs_reads_as_it_did(tmp_path: Path) -> None:
    """A SQLite file of the schema before leases and reply pairs is migrated: its
    replies have no reply_to and still pair with the message before them."""
    path = tmp_path / "old.db"
    key = ConversationKey(OwnerId("guest:telegram:1"), "ada", "direct")
    async with SqliteStore(path, migrations=MIGRATIONS[:4]):
        pass  # the old schema; its rows written as the old code wrote them
    async with aiosqlite.connect(path) as db:
        await db.execute(
            "INSERT INTO conversations (id, owner, persona_id, scope, version, last_seq,"
            " started_at) VALUES (1, ?, 'ada', 'direct', 4, 4, 1.0)",
            (key.owner,),
        )
        for seq, role, text in [(1, "user", "q0"), (2, "assistant", "a0"),
                                (3, "user", "q1"), (4, "assistant", "a1")]:  # fmt: skip
            await db.execute(
                "INSERT INTO turns (conversation_id, seq, role, text, author, created_at)"
                " VALUES (1, ?, ?, ?, 'x', 1.0)",
                (seq, role, text),
            )
        await db.commit()
    async with SqliteStore(path) as new:
        turns = (await new.load_window(key, 10)).turns
        assert [(t.text, t.reply_to) for t in turns] == [
            ("q0", None), ("a0", None), ("q1", None), ("a1", None),
        ]  # fmt: skip
        assert [t.text for t in paired(turns)] == ["q0", "a0", "q1", "a1"]
        assert await new.claim_event("telegram", "1", 1.0, 10.0)  # the new tables exist
        _, (asked,) = await new.append_turns(key, [NewTurn("user", "q2", "Alice", 3.0)], 4, 3.0)
        assert asked.seq == 5
