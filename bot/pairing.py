"""Replies next to the messages they answer, whatever order they were stored in.

Each reply records the ``seq`` of the user turn it answers (``Turn.reply_to``). Stored
order and conversation order differ when a message was kept while another worker was
still answering the one before (past the lease's wait, :mod:`bot.leases`), or when a
worker's lease ran out before its reply was stored: the history then reads
"question A, question B, answer to A". :func:`paired` puts every reply right after its
own user turn, so the backend (and the person reading the history) sees
"A, answer to A, B". A reply stored before replies recorded this (``reply_to`` None)
answers the nearest user turn before it, as it always did.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.messages import Turn


def paired(turns: Sequence[Turn]) -> list[Turn]:
    """``turns`` (in stored order) in conversation order: each user turn followed by
    the replies to it, in the order they were stored (``/retry`` adds a newer one).

    A reply whose user turn is not in ``turns`` (it left the window) keeps its place."""
    if _in_order(turns):  # most windows: every reply right after its own message
        return list(turns)
    return regrouped(turns)


def regrouped(turns: Sequence[Turn]) -> list[Turn]:
    """:func:`paired`, worked out group by group (whatever the order)."""
    groups: list[list[Turn]] = []
    by_seq: dict[int, list[Turn]] = {}
    last: list[Turn] | None = None
    for turn in turns:
        if turn.role == "user":
            last = [turn]
            groups.append(last)
            by_seq[turn.seq] = last
            continue
        target = last if turn.reply_to is None else by_seq.get(turn.reply_to)
        if target is None:
            groups.append([turn])
        else:
            target.append(turn)
    return [turn for group in groups for turn in group]


def _in_order(turns: Sequence[Turn]) -> bool:
    """Whether :func:`paired` would leave ``turns`` as they are: each reply follows the
    user turn it answers (or, naming none, the nearest one before it) with no other user
    turn between, and replies before the first user turn answer none in ``turns``."""
    last: int | None = None  # the seq of the newest user turn so far
    for turn in turns:
        if turn.role == "user":
            last = turn.seq
        elif last is not None and turn.reply_to is not None and turn.reply_to != last:
            return False
    return True


def answered(turns: Sequence[Turn]) -> set[int]:
    """The seqs of the user turns that have a reply in ``turns``."""
    found: set[int] = set()
    last: int | None = None
    for turn in turns:
        if turn.role == "user":
            last = turn.seq
        elif turn.reply_to is not None:
            found.add(turn.reply_to)
        elif last is not None:
            found.add(last)
    return found
