"""How long a worker holds a conversation, and how long a message waits for one.

Several workers (processes, machines) may get messages of one conversation at once. The
in-process lock (:class:`~bot.limits.KeyedLocks`) orders them within one process; across
processes the store's *lease* does (see :class:`~bot.store.base.Lease`): the append of
the user's turn takes it and the append of the reply frees it, in the same writes, so an
uncontended message costs no extra call (``/retry``, which stores no turn, takes it with
an append of no turns). A message that finds the lease taken waits,
trying again after pauses that grow (full jitter, capped) until ``wait`` seconds have
passed; then its turn is stored without the lease, the user is told the persona is still
answering the previous message, and ``/retry`` answers it later. A lease expires after
``seconds`` (30 by default); a reply streaming longer renews it every third of that (an
append of no turns, made between two deltas), so the lease of a worker that died frees
itself within ``seconds``, and a reply stalled longer than that may lose it (the reply is
then stored after what came meanwhile, and still read next to its message: ``reply_to``).
The pattern is that of Rasa's lock store and of leases on DynamoDB with a conditional
write: wait on a ticket rather than fail.
"""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass, field

from bot.backoff import EQUAL_JITTER, Backoff
from bot.messages import ReplyDone, ReplyKind

STILL_ANSWERING = (
    "I'm still answering your previous message. Yours is kept: "
    "send /retry once that answer is in, and I'll answer it."
)


@dataclass(slots=True)
class LeasePolicy:
    """A lease's length, the longest wait for one, and the pauses between tries."""

    #: Seconds a lease holds (a killed worker's conversation is free after this); a
    #: reply streaming longer renews it every third of it.
    seconds: float = 30.0
    #: Seconds a message waits for a busy conversation before giving up.
    wait: float = 60.0
    backoff: float = 0.05
    max_backoff: float = 0.5
    _prefix: str = field(default_factory=lambda: secrets.token_hex(6))
    _count: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def renew_every(self) -> float:
        return self.seconds / 3

    def holder(self) -> str:
        """A holder id unique to one message of this process."""
        return f"{self._prefix}-{next(self._count)}"

    def pause(self, tries: int, remaining: float) -> float:
        """Seconds to wait after the ``tries``-th refusal, never past the deadline."""
        cap = min(self.max_backoff, max(remaining, 0.0))
        return Backoff(self.backoff, cap, EQUAL_JITTER).delay(tries)


def still_answering() -> ReplyDone:
    return ReplyDone(STILL_ANSWERING, ReplyKind.ERROR)
