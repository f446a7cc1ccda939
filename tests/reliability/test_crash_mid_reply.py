"""A process killed in the middle of a streamed reply, or of a burst of writes.

``crash_child.py`` runs an engine on a SQLite file in a process of its own; the test
kills it with SIGKILL at the moment it reports (replies half streamed, or replies being
delivered by many users at once). Then the file is opened again by a new store and
engine, as the next start of the bot would: it must be intact (``PRAGMA
integrity_check``, schema at the current migration), every conversation well-formed,
every turn the dead process acknowledged present, no half-written reply stored as if
complete, and ``/retry`` must answer what was left unanswered.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import sys
from collections import Counter
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from bot.backends.guard import GuardPolicy, ReplyGuard
from bot.config import RateLimitSettings
from bot.engine import Engine
from bot.engine_parts import build_engine
from bot.messages import ConversationKey, Identity, Incoming, ReplyDone, ReplyKind, guest_owner
from bot.personas import PersonaLibrary
from bot.store.sqlite import MIGRATIONS, SqliteStore
from tests.reliability.crash_child import PARTIAL
from tests.support.fakes import WindowEcho, make_persona

CHILD = Path(__file__).with_name("crash_child.py")
ROOT = Path(__file__).resolve().parents[2]
#: Generous bound on how long the child may take to report (a busy machine).
REPORT_WITHIN = 60.0
TOKEN = re.compile(r"tok:(u\d+):(\S+)")


@dataclass
class Child:
    """A running ``crash_child.py`` and every line it printed."""

    process: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)

    async def read_until(self, done: str | int) -> None:
        """Read lines until one equals ``done`` (a str) or ``done`` ACK lines (an int)."""
        assert self.process.stdout is not None
        while True:
            raw = await asyncio.wait_for(self.process.stdout.readline(), REPORT_WITHIN)
            if not raw:
                stderr = await self.process.stderr.read() if self.process.stderr else b""
                raise AssertionError(f"the child ended early: {stderr.decode()[-2000:]}")
            line = raw.decode().strip()
            self.lines.append(line)
            if line == done or (
                isinstance(done, int) and sum(x.startswith("ACK ") for x in self.lines) >= done
            ):
                return

    async def kill(self) -> None:
        """SIGKILL, then collect what it printed before it died."""
        self.process.send_signal(signal.SIGKILL)
        assert self.process.stdout is not None
        rest = await asyncio.wait_for(self.process.stdout.read(), REPORT_WITHIN)
        self.lines.extend(line.strip() for line in rest.decode().splitlines())
        assert await self.process.wait() == -signal.SIGKILL

    def tokens(self, kind: str) -> list[str]:
        return [line.split(" ", 1)[1] for line in self.lines if line.startswith(f"{kind} ")]


async def start_child(*args: object) -> Child:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(CHILD),
        *map(str, args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env=env,
    )
    return Child(process)


async def run_and_kill(done: str | int, *args: object, delay: float = 0.0) -> Child:
    """Start a child, wait for ``done`` (see :meth:`Child.read_until`) and ``delay``
    seconds more, and kill it."""
    child = await start_child(*args)
    try:
        await child.read_until(done)
        await asyncio.sleep(delay)
        await child.kill()
    finally:
        if child.process.returncode is None:
            child.process.kill()
            await child.process.wait()
    return child


# -- what the file holds after the crash ----------------------------------------------


@dataclass
class Stored:
    """Every conversation in the file, read with plain sqlite3."""

    conversations: dict[str, list[tuple[int, str, str]]]  #: owner -> (seq, role, text)
    problems: list[str]


def read_back(path: Path) -> Stored:
    """Check the file is intact and every conversation well-formed, as SqliteStore
    defines it: seqs 1..last_seq with no gap, and (here, where nothing but one-turn
    appends ever happened) a version bumped at least once per turn (a lease taken alone,
    by /retry or to renew it during a long reply, bumps it too)."""
    problems: list[str] = []
    # opening recovers the WAL the dead process left
    with closing(sqlite3.connect(path)) as db:
        (check,) = db.execute("PRAGMA integrity_check").fetchone()
        if check != "ok":
            problems.append(f"integrity_check: {check}")
        (schema,) = db.execute("PRAGMA user_version").fetchone()
        if schema != len(MIGRATIONS):
            problems.append(f"schema version {schema}, expected {len(MIGRATIONS)}")
        conversations: dict[str, list[tuple[int, str, str]]] = {}
        rows = db.execute("SELECT id, owner, version, last_seq, archived FROM conversations")
        for conversation_id, owner, version, last_seq, archived in rows.fetchall():
            turns = db.execute(
                "SELECT seq, role, text FROM turns WHERE conversation_id = ? ORDER BY seq",
                (conversation_id,),
            ).fetchall()
            seqs = [seq for seq, _, _ in turns]
            if seqs != list(range(1, last_seq + 1)):
                problems.append(f"{owner}: seqs {seqs} for last_seq {last_seq}")
            if version < last_seq or archived:
                problems.append(f"{owner}: version {version}, last_seq {last_seq}")
            conversations[owner] = turns
    return Stored(conversations, problems)


def owner_of(tag: str) -> str:
    return guest_owner(Identity("telegram", tag))


def key_of(tag: str) -> ConversationKey:
    return ConversationKey(guest_owner(Identity("telegram", tag)), "ada", "direct")


def fresh_engine(store: SqliteStore) -> Engine:
    """The next start of the bot: a new engine (an echoing backend) on the same file."""
    backend = WindowEcho("echo")
    return build_engine(
        store,
        PersonaLibrary([make_persona("ada", "Professor Ada", backend=backend.name)]),
        ReplyGuard({backend.name: backend}, GuardPolicy(first_delta_timeout=30.0, retries=0)),
        rate_limit=RateLimitSettings(per_minute=1e9, burst=10**9),
    )


async def retry(engine: Engine, tag: str) -> ReplyDone:
    incoming = Incoming("telegram", tag, tag.upper(), tag, True, "/retry")
    events = [event async for event in engine.handle(incoming)]
    assert isinstance(events[-1], ReplyDone)
    return events[-1]


def leaks(stored: Stored) -> list[str]:
    """Turns holding a token of another owner than the conversation's."""
    found = []
    for owner, turns in stored.conversations.items():
        for _, _, text in turns:
            strangers = {owner_of(m.group(1)) for m in TOKEN.finditer(text)} - {owner}
            if strangers:
                found.append(f"{owner} stores {text!r}")
    return found


# -- killed with replies half streamed ------------------------------------------------


async def test_replies_killed_mid_stream_leave_the_users_turns_and_retry_answers(
    tmp_path: Path,
) -> None:
    """One user, then five at once, killed while their replies stream: each finds their
    turn stored, no partial reply, and /retry answers and stores a complete reply."""
    for users in (1, 5):
        path = tmp_path / f"mid-{users}.db"
        child = await run_and_kill("ALL MID", "reply", path, users)
        tags = [f"u{n}" for n in range(users)]
        assert sorted(child.tokens("MID")) == tags

        stored = read_back(path)
        turns_of = {t: stored.conversations.get(owner_of(t), []) for t in tags}
        lost = [t for t, turns in turns_of.items() if [r for _, r, _ in turns] != ["user"]]
        # no reply was complete when the process died: none may be stored
        torn = [
            text
            for turns in stored.conversations.values()
            for _, role, text in turns
            if role == "assistant" or PARTIAL in text
        ]
        leaked = leaks(stored)
        async with SqliteStore(path) as store:
            engine = fresh_engine(store)
            windows = [await store.load_window(key_of(t), 10) for t in tags]
            answers = await asyncio.gather(*(retry(engine, t) for t in tags))
            after = [await store.load_window(key_of(t), 10) for t in tags]
        turns_stored = sum(len(w.turns) for w in after)
        print(
            f"crash mid-reply [{users} users]: messages sent={users} replies delivered "
            f"(by /retry)={sum(a.kind is ReplyKind.CHAT for a in answers)} "
            f"turns stored={turns_stored} "
            f"lost={len(lost)} leaked={len(leaked)} torn replies={len(torn)}"
        )
        assert stored.problems == []
        assert (lost, leaked, torn) == ([], [], [])
        for tag, window, answer, later in zip(tags, windows, answers, after, strict=True):
            message = f"tok:{tag}:0 are you there?"
            assert window.version >= 1  # the turn, and the lease renewed while streaming
            assert [(t.role, t.text) for t in window.turns] == [("user", message)]
            assert answer.kind is ReplyKind.CHAT and answer.text == f"re:{message} saw:[]"
            assert [(t.role, t.text) for t in later.turns] == [
                ("user", message),
                ("assistant", answer.text),
            ]
            assert later.version == window.version + 2  # /retry's lease, then its reply


# -- killed in a burst of writes --------------------------------------------------------


async def test_a_burst_of_writes_killed_three_times_keeps_the_file_whole(tmp_path: Path) -> None:
    """Twenty users chatting as fast as they can, killed three times at different
    moments, each time restarted on the same file: the file stays intact, every
    conversation alternates message and complete reply (the last message may wait for
    its reply), and every reply the dead process delivered is stored."""
    path = tmp_path / "burst.db"
    users = 20
    sent: list[str] = []
    acked: list[str] = []
    # a different moment each time: right after replies went out, or a little later
    for round_, (kill_after, delay) in enumerate([(25, 0.0), (80, 0.011), (160, 0.027)]):
        child = await run_and_kill(kill_after, "burst", path, users, round_, delay=delay)
        sent += child.tokens("SEND")
        acked += child.tokens("ACK")

        stored = read_back(path)
        problems = list(stored.problems)
        user_tokens: Counter[str] = Counter()
        answered: set[str] = set()
        for owner, turns in stored.conversations.items():
            roles = [role for _, role, _ in turns]
            expected = ["user", "assistant"] * (len(turns) // 2) + ["user"] * (len(turns) % 2)
            if roles != expected:
                problems.append(f"{owner}: turns go {roles}")
            for (_, role, text), nxt in zip(turns, [*turns[1:], None], strict=True):
                if role != "user":
                    continue
                token = text.split(" ", 1)[0]
                user_tokens[token] += 1
                if nxt is not None:
                    reply = nxt[2]
                    if not (reply.startswith(f"re:{text} saw:[") and reply.endswith("]")):
                        problems.append(f"{owner}: {reply!r} does not answer {text!r} whole")
                    answered.add(token)
        lost = [t for t in acked if t not in answered]
        lost += [f"{t} x{n}" for t, n in user_tokens.items() if n > 1]
        lost += [t for t in user_tokens if t not in sent]  # stored, yet never sent
        leaked = leaks(stored)
        turns_stored = sum(len(turns) for turns in stored.conversations.values())
        print(
            f"crash in a burst [round {round_ + 1}]: messages sent={len(sent)} replies "
            f"delivered={len(acked)} turns stored={turns_stored} lost={len(lost)} "
            f"leaked={len(leaked)}"
        )
        assert problems == []
        assert (lost, leaked) == ([], [])
        assert len(acked) >= kill_after

        # the next start reads every conversation and answers the one left waiting
        async with SqliteStore(path) as store:
            engine = fresh_engine(store)
            for n in range(users):
                window = await store.load_window(key_of(f"u{n}"), 1000)
                turns = stored.conversations.get(owner_of(f"u{n}"), [])
                assert [(t.seq, t.role, t.text) for t in window.turns] == turns
                # a write per turn, and one per renewal of a lease (a reply streaming long)
                assert window.version >= len(turns)
                if turns and turns[-1][1] == "user":
                    answer = await retry(engine, f"u{n}")
                    assert answer.kind is ReplyKind.CHAT
                    assert answer.text.startswith(f"re:{turns[-1][2]} saw:[")
