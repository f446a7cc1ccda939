"""Platform fault injection for the Telegram and Discord reliability tests.

:class:`FaultPlan` is what the fake platform servers (``tests/support/telegram_server.py``
and ``tests/support/discord_server.py``) ask, for each request, whether it fails: a 429
with a small ``retry_after``, or a 5xx. It is seeded, with one random stream per
*subject* (by default the request's key, a method and its target: ``sendMessage:42``;
``subject`` may coarsen it, so that ids a server hands out in whatever order the
requests came do not change the draw), so what a chat meets does not depend on how the
event loop interleaved the others. At most ``max_in_a_row`` requests with one key fail
in a row: a transient fault the clients' retry budgets can outlast (a longer outage
loses writes by design, and is not what these tests are about).

An *applied* fault answers 5xx after the write took effect (the reply to the request was
lost, as behind a proxy that timed out): the client cannot tell it from one that did
nothing. Only 500 and 502 are applied; a 503 means the server did not take the request.

:class:`Tally` holds the counts every run prints: messages sent, replies delivered,
turns stored, lost, leaked (and duplicated, and the faults injected).
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

from bot.messages import OwnerId
from bot.store.base import Store

#: 5xx statuses that may be answered after the write took effect.
APPLIED_STATUSES = frozenset({500, 502})


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected failure: the status, the wait a 429 asks for, and whether the
    request took effect anyway."""

    status: int
    retry_after: float = 0.0
    applied: bool = False


@dataclass
class FaultPlan:
    """Decides, request by request, which fail. ``only`` (a regex on the key) limits
    the faults to some requests; ``applied_to`` (a regex) says where a 500/502 may be
    answered after the write took effect (``applied`` of those)."""

    seed: str
    rate_limited: float = 0.15
    server_errors: float = 0.10
    statuses: tuple[int, ...] = (500, 502, 503)
    retry_after: tuple[float, ...] = (0.0, 1.0)
    only: str = r"."
    applied: float = 0.0
    applied_to: str = r"(?!)"
    applied_statuses: frozenset[int] = APPLIED_STATUSES
    max_in_a_row: int = 2
    subject: Callable[[str], str] = field(default=lambda key: key)
    #: Faults injected, by kind: "429", "500", "502 applied", …
    injected: Counter[str] = field(default_factory=Counter)
    armed: bool = True

    def __post_init__(self) -> None:
        self._streams: dict[str, random.Random] = {}
        self._in_a_row: Counter[str] = Counter()
        self._only = re.compile(self.only)
        self._applied_to = re.compile(self.applied_to)

    def decide(self, key: str) -> Fault | None:
        """The fault for this request, or None: it is answered normally."""
        if not self.armed or not self._only.search(key):
            return None
        subject = self.subject(key)
        stream = self._streams.get(subject)
        if stream is None:
            stream = self._streams[subject] = random.Random(f"{self.seed}|{subject}")
        roll = stream.random()
        if self._in_a_row[key] >= self.max_in_a_row or roll >= (
            self.rate_limited + self.server_errors
        ):
            self._in_a_row[key] = 0
            return None
        self._in_a_row[key] += 1
        if roll < self.rate_limited:
            fault = Fault(429, retry_after=stream.choice(self.retry_after))
            self.injected["429"] += 1
            return fault
        status = stream.choice(self.statuses)
        applied = (
            status in self.applied_statuses
            and self._applied_to.search(key) is not None
            and stream.random() < self.applied
        )
        self.injected[f"{status} applied" if applied else str(status)] += 1
        return Fault(status, applied=applied)

    @property
    def total(self) -> int:
        return sum(self.injected.values())

    def count(self, prefix: str) -> int:
        """Faults injected whose kind starts with ``prefix`` ("429", "5", "502 applied")."""
        return sum(n for kind, n in self.injected.items() if kind.startswith(prefix))


@dataclass
class Tally:
    """What one run did, as the issue asks every run to print it."""

    platform: str
    sent: int = 0
    delivered: int = 0
    stored: int = 0
    lost: int = 0
    leaked: int = 0
    duplicated: int = 0
    #: Why each loss was counted (the first few are shown by ``line``).
    problems: list[str] = field(default_factory=list)

    def lose(self, why: str) -> None:
        self.lost += 1
        self.problems.append("lost: " + why)

    def leak(self, why: str) -> None:
        self.leaked += 1
        self.problems.append("leaked: " + why)

    def line(self, plan: FaultPlan) -> str:
        faults = " ".join(f"{kind}={n}" for kind, n in sorted(plan.injected.items()))
        return (
            f"{self.platform}: messages sent={self.sent} replies delivered={self.delivered} "
            f"turns stored={self.stored} lost={self.lost} leaked={self.leaked} "
            f"duplicated={self.duplicated} | faults injected: {faults or 'none'}"
        )


# -- tokens: every message carries one, so a reply shows whom it answers ---------------

_TOKEN = re.compile(r"\bq(\d{2})x(\d{2})\b")


def token(user: int, index: int) -> str:
    """The unique mark of message ``index`` of user ``user`` (no Markdown in it)."""
    return f"q{user:02d}x{index:02d}"


def tokens_in(text: str) -> list[tuple[int, int]]:
    """``(user, index)`` of every token in ``text``."""
    return [(int(u), int(i)) for u, i in _TOKEN.findall(text)]


def private_text_in(log_text: str, secrets: Iterable[str] = ()) -> list[str]:
    """Message tokens and ``secrets`` found in ``log_text``: neither may be logged."""
    found = [f"q{u}x{i}" for u, i in _TOKEN.findall(log_text)]
    return found + [secret for secret in secrets if secret in log_text]


def answered(text: str) -> tuple[int, int] | None:
    """The message a WindowEcho reply answers (``re:<its text> saw:[…]``)."""
    if not text.startswith("re:"):
        return None
    found = tokens_in(text.split(" saw:", 1)[0])
    return found[0] if found else None


# -- counting --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sent:
    """A message a test sent: who (``user``, ``index``: its token), the text the
    engine keeps of it, the conversation, and where its reply must show (``place``: a
    chat, an interaction) quoting which message (``message_id``, in group chats)."""

    user: int
    index: int
    text: str
    owner: OwnerId
    scope: str
    place: str
    message_id: str | None = None

    @property
    def key(self) -> tuple[int, int]:
        return self.user, self.index


@dataclass(frozen=True, slots=True)
class Visible:
    """A message of the bot as the platform shows it now: where, its text, the
    message it quotes (if any), and which sent message it answers (None: unknown)."""

    place: str
    text: str
    answers: tuple[int, int] | None
    quotes: str | None = None


def words(text: str) -> str:
    """``text`` with its whitespace normalised: a reply split into messages loses the
    separator at each cut."""
    return " ".join(text.split())


async def count(
    platform: str,
    store: Store,
    sent: Sequence[Sent],
    visible: Iterable[Visible],
    *,
    persona: str = "ada",
    same: Callable[[str], str] = lambda text: text,
) -> Tally:
    """Read the store and the platform's view, and count.

    lost: a sent message with no stored user turn; a stored reply not shown in full
    where it belongs; a shown reply whose text is not the stored one (a draft left
    behind, a garbled or stray message). leaked: a shown message carrying one user's
    token in a place, or as an answer, meant for another. ``same`` normalises texts
    before they are compared (``words`` for replies split into several messages).
    """
    tally = Tally(platform, sent=len(sent))
    by_key = {s.key: s for s in sent}
    replies: dict[tuple[int, int], str] = {}
    for owner in sorted({s.owner for s in sent}):
        for record in await store.export_owner(owner):
            if record.persona_id != persona:
                continue
            tally.stored += len(record.turns)
            turns = list(record.turns)
            for before, after in zip(turns, [*turns[1:], None], strict=True):
                if before.role != "user":
                    continue
                mine = [
                    s
                    for s in sent
                    if s.owner == owner and s.scope == record.scope and s.text == before.text
                ]
                for s in mine:
                    replies[s.key] = (
                        after.text if after is not None and after.role == "assistant" else ""
                    )
    for s in sent:
        if s.key not in replies:
            tally.lose(f"no stored user turn for {token(*s.key)}")
    shown: dict[tuple[int, int], list[Visible]] = defaultdict(list)
    for v in visible:
        if v.answers is None or v.answers not in by_key:
            tally.lose(f"a message that answers nothing sent, in {v.place}: {v.text[:60]!r}")
            continue
        s = by_key[v.answers]
        strangers = {user for user, _ in tokens_in(v.text)} - {s.user}
        if v.place != s.place or strangers or (v.quotes is not None and v.quotes != s.message_id):
            tally.leak(f"the answer to {token(*s.key)} shown in {v.place}: {v.text[:60]!r}")
            continue
        shown[s.key].append(v)
    for key, reply in replies.items():
        if not reply:
            tally.lose(f"no stored reply to {token(*key)}")
            continue
        mine = shown.get(key, [])
        matching = [v for v in mine if same(v.text) == same(reply)]
        if matching:
            tally.delivered += 1
            tally.duplicated += len(matching) - 1
        else:
            tally.lose(f"the reply to {token(*key)} was never shown in full")
        for v in mine:
            if same(v.text) != same(reply):
                tally.lose(f"the reply to {token(*key)} shows other text: {v.text[:60]!r}")
    return tally


async def settle(
    measure: Callable[[], Awaitable[Tally]], *, timeout: float, still: float = 0.3
) -> Tally:
    """Measure until nothing is lost (and stays so for ``still`` seconds: late
    duplicates show), or until ``timeout``; the last measurement either way."""
    deadline = time.monotonic() + timeout
    clean_since: float | None = None
    while True:
        tally = await measure()
        now = time.monotonic()
        if tally.lost == 0:
            clean_since = clean_since if clean_since is not None else now
            if now - clean_since >= still:
                return tally
        else:
            clean_since = None
        if now >= deadline:
            return tally
        await asyncio.sleep(0.1)
