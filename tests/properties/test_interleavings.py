"""Random interleavings of messages and commands by several people across platforms.

A Hypothesis state machine drives the real :class:`~bot.engine.Engine` over a real store
(MemoryStore, and SqliteStore on a temporary file) with ``WindowEcho`` as the persona's
brain: it echoes every user turn of the window it was shown, so a foreign turn in a
window shows up in the reply. After every step the store is compared with
:mod:`interleaving_model`: no owner holds (or is shown) another owner's token, no stored
turn is lost or duplicated except by ``/forget``, and a linked identity's history
follows its account.

The cast is fixed; platform user ids collide on purpose across platforms (Ann is
telegram 101, Bob is discord 101) and group chat ids too (telegram -500 / discord 500).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from adapters.web.routes_chat import incoming_for
from bot.engine import OWNER_FORGOTTEN
from bot.link_consent import platform_name
from bot.linking import (
    LINK_CODE_TTL,
    create_link_code,
    normalise_link_code,
)
from bot.messages import (
    ConversationKey,
    Identity,
    Incoming,
    OwnerId,
    ReplyKind,
    account_owner,
    guest_owner,
)
from bot.store.base import Account, ConversationRecord, Store
from bot.store.memory import MemoryStore
from bot.store.sqlite import SqliteStore
from tests.support.interleaving_engine import (
    CONFIRM_SECONDS,
    FORGET_CONFIRM_SECONDS,
    PERSONAS,
    Sent,
    build_engine,
    collect,
    collect_all,
)
from tests.support.interleaving_model import (
    FORGET_PREFERENCE,
    PERSONA_PREFERENCE,
    Expected,
    Model,
    ModelTurn,
    Slot,
    echo,
    tokens_in,
    user_texts,
)

GROUPS = {"telegram": ("-500", "-501"), "discord": ("500",)}
WRONG_CODES = ("WXYZ-2345", "abcd-efgh")
MALFORMED_CODES = ("hello", "ABCD-EFG1", "tok")


@dataclass(frozen=True)
class Person:
    name: str
    handles: tuple[tuple[str, str], ...]  # (platform, user id)
    has_account: bool


CAST = (
    Person("Ann", (("telegram", "101"), ("discord", "201")), has_account=True),
    Person("Bob", (("telegram", "102"), ("discord", "101"), ("console", "bob")), False),
    Person("Cyd", (("discord", "202"), ("console", "cyd")), has_account=True),
    Person("Dee", (("telegram", "201"),), has_account=True),
)


@dataclass(frozen=True)
class Sender:
    """One of a person's ways in: a platform handle, or the web when they have an account."""

    person: Person
    platform: str
    user_id: str  # the account's id on the web, filled in when the account exists

    @property
    def web(self) -> bool:
        return self.platform == "web"


def _senders() -> list[tuple[int, int]]:
    """(person index, handle index); handle index len(handles) is the web."""
    found = []
    for p, person in enumerate(CAST):
        found += [(p, h) for h in range(len(person.handles) + person.has_account)]
    return found


SENDERS = st.sampled_from(_senders())
#: Senders on a platform with group chats.
IN_GROUPS = st.sampled_from(
    [(p, h) for p, h in _senders() if h < len(CAST[p].handles) and CAST[p].handles[h][0] in GROUPS]
)
PLACES = st.integers(min_value=0, max_value=2)  # 0: private; else a group, if the platform has


def greeting(incoming: Incoming, persona_id: str) -> str:
    """The greeting of ``tests.fakes.make_persona``, as ``incoming``'s sender gets it."""
    return f"Hello {incoming.display_name}, I am {PERSONAS[persona_id]}."


def export_by_slot(records: Sequence[ConversationRecord]) -> dict[Slot, Expected]:
    found: dict[Slot, tuple[list[list[ModelTurn]], list[list[ModelTurn]]]] = {}
    for record in records:
        turns = [(t.role, t.text, t.author) for t in record.turns]
        current, archived = found.setdefault((record.persona_id, record.scope), ([], []))
        (archived if record.archived else current).append(turns)
    exported: dict[Slot, Expected] = {}
    for slot, (current, archived) in found.items():
        assert len(current) <= 1, f"{slot}: {len(current)} current conversations"
        exported[slot] = (current[0] if current else [], sorted(archived))
    return exported


class Interleavings(RuleBasedStateMachine):
    """People chat and command across platforms; the store must always match the model."""

    #: Set by each store's subclass.
    store_kind: ClassVar[str] = ""

    def __init__(self) -> None:
        super().__init__()
        self.runner = asyncio.Runner()
        self.tmp = Path(tempfile.mkdtemp(prefix="pb-interleavings-"))
        self.now = 1_000_000.0
        self.tokens = 0
        self.store = self.make_store()
        try:
            self.run(self.store.__aenter__())
        except BaseException:
            self.runner.close()  # teardown is not called when __init__ fails
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise
        self.engine = build_engine(self.store, lambda: self.now)
        self.model = Model(default_persona="ada")
        self.accounts: dict[str, Account] = {}
        for person in CAST:
            if person.has_account:
                account = self.run(self.store.create_account(person.name, "unused", self.now))
                self.accounts[person.name] = account
        self.usernames = {a.id: a.username for a in self.accounts.values()}
        self.issued: list[str] = []

    def make_store(self) -> Store:
        if self.store_kind == "memory":
            return MemoryStore()
        if self.store_kind == "sqlite":
            return SqliteStore(self.tmp / "personabridge.db")
        raise AssertionError(f"unknown store kind {self.store_kind!r}")

    def teardown(self) -> None:
        try:
            self.run(self.engine.aclose())
            self.run(self.store.__aexit__(None, None, None))
        finally:
            self.runner.close()
            shutil.rmtree(self.tmp, ignore_errors=True)

    def run(self, coro: Any) -> Any:
        return self.runner.run(coro)

    # -- building messages -------------------------------------------------------------

    def sender(self, choice: tuple[int, int]) -> Sender:
        person_index, handle_index = choice
        person = CAST[person_index]
        if handle_index == len(person.handles):
            return Sender(person, "web", self.accounts[person.name].id)
        platform, user_id = person.handles[handle_index]
        return Sender(person, platform, user_id)

    def incoming(self, sender: Sender, place: int, text: str, addressed: bool = True) -> Incoming:
        if sender.web:
            return incoming_for(self.accounts[sender.person.name], text)
        name = sender.person.name
        if sender.platform == "console":
            return Incoming("console", sender.user_id, name, "terminal", True, text)
        groups = GROUPS[sender.platform]
        if place == 0:
            return Incoming(sender.platform, sender.user_id, name, sender.user_id, True, text)
        chat = groups[(place - 1) % len(groups)]
        return Incoming(sender.platform, sender.user_id, name, chat, False, text, addressed)

    def new_text(self, sender: Sender) -> str:
        self.tokens += 1
        return f"{sender.person.name} on {sender.platform} says tok-{self.tokens}"

    def key_of(self, incoming: Incoming) -> ConversationKey:
        owner = self.model.owner_of(incoming.identity, incoming.account_id)
        return ConversationKey(owner, self.model.persona_of(owner), incoming.scope)

    def send(self, incoming: Incoming) -> Sent:
        self.now += 1.0
        return self.run(collect(self.engine, incoming))

    def answer(self, sent: Sent, kind: ReplyKind) -> str:
        """The reply's text, after checking it is one reply of ``kind`` naming no token
        of another owner."""
        done = sent.done
        assert done is not None, f"no reply to {sent.incoming.text!r}"
        assert done.kind is kind, f"{sent.incoming.text!r} got {done.kind}: {done.text!r}"
        if kind is ReplyKind.CHAT:
            assert "".join(sent.deltas).strip() == done.text
        else:
            assert sent.deltas == []
        self.assert_only_own_tokens(self.key_of(sent.incoming).owner, done.text, "a reply")
        return done.text

    def assert_only_own_tokens(self, owner: OwnerId, text: str, where: str) -> None:
        for token in tokens_in(text):
            assert token not in self.model.forgotten, f"{where} to {owner} shows forgotten {token}"
            holder = self.model.token_owner.get(token)
            assert holder == owner, f"{where} of {owner} shows {token} of {holder}: {text!r}"

    # -- chat --------------------------------------------------------------------------

    @rule(choice=SENDERS, place=PLACES)
    def chat(self, choice: tuple[int, int], place: int) -> None:
        sender = self.sender(choice)
        incoming = self.incoming(sender, place, self.new_text(sender))
        key = self.key_of(incoming)
        expected = self.model.chat(
            key, incoming.text, incoming.display_name, PERSONAS[key.persona_id]
        )
        sent = self.send(incoming)
        assert self.answer(sent, ReplyKind.CHAT) == expected

    @rule(choice=IN_GROUPS, place=st.integers(min_value=1, max_value=2))
    def chatter_not_addressed(self, choice: tuple[int, int], place: int) -> None:
        sender = self.sender(choice)
        incoming = self.incoming(sender, place, self.new_text(sender), addressed=False)
        sent = self.send(incoming)
        assert sent.done is None and sent.deltas == [], "a message not for the bot was answered"

    @rule(batch=st.lists(st.tuples(SENDERS, PLACES), min_size=2, max_size=4))
    def chat_at_once(self, batch: list[tuple[tuple[int, int], int]]) -> None:
        """Several messages at once, across owners and within one."""
        incomings = []
        for choice, place in batch:
            sender = self.sender(choice)
            incomings.append(self.incoming(sender, place, self.new_text(sender)))
        self.at_once(incomings)

    def at_once(self, chats: list[Incoming], also: Incoming | None = None) -> Sent | None:
        """Send the chat messages (and ``also``) all at once. Each conversation must take
        its messages one after the other, in some order, each reply seeing exactly the
        turns before it; the model follows the order the store shows. Returns what
        ``also`` got."""
        keys = [self.key_of(incoming) for incoming in chats]
        before = {key: self.model.current_turns(key) for key in keys}
        self.now += 1.0
        sents = self.run(collect_all(self.engine, [*chats, *([also] if also else [])]))
        author = {incoming.text: incoming.display_name for incoming in chats}
        reply_to: dict[str, str] = {}
        for key, old in before.items():
            texts = sorted(i.text for i, k in zip(chats, keys, strict=True) if k == key)
            window = self.run(self.store.load_window(key, 10_000))
            turns = [(t.role, t.text, t.author) for t in window.turns]
            assert turns[: len(old)] == old, f"{key}: earlier turns changed or went"
            new = turns[len(old) :]
            assert sorted(user_texts(new)) == texts, f"{key}: stored {new}, sent {texts}"
            seen = user_texts(old)
            persona_name = PERSONAS[key.persona_id]
            for (role, text, who), reply in zip(new[::2], new[1::2], strict=True):
                assert role == "user", f"{key}: two replies in a row: {new}"
                assert who == author[text], f"{key}: {text!r} stored as written by {who}"
                assert reply == ("assistant", echo(text, seen), persona_name), (
                    f"{key}: a reply saw other turns than those before it: {new}"
                )
                reply_to[text] = reply[1]
                seen.append(text)
            for text in texts:
                self.model.token_owner[tokens_in(text)[0]] = key.owner
            self.model.replace_current(key, turns)
        for sent in sents[: len(chats)]:
            assert self.answer(sent, ReplyKind.CHAT) == reply_to[sent.incoming.text]
        return sents[-1] if also else None

    @rule(choice=SENDERS, place=PLACES)
    def retry(self, choice: tuple[int, int], place: int) -> None:
        incoming = self.incoming(self.sender(choice), place, "/retry")
        key = self.key_of(incoming)
        expected = self.model.retry(key, PERSONAS[key.persona_id])
        sent = self.send(incoming)
        if expected is None:
            assert self.answer(sent, ReplyKind.COMMAND) == "There is nothing to retry yet."
        else:
            assert self.answer(sent, ReplyKind.CHAT) == expected

    # -- commands ----------------------------------------------------------------------

    @rule(choice=SENDERS, place=PLACES)
    def reset(self, choice: tuple[int, int], place: int) -> None:
        incoming = self.incoming(self.sender(choice), place, "/reset")
        key = self.key_of(incoming)
        self.model.reset(key)
        self.model.greet(key, greeting(incoming, key.persona_id), PERSONAS[key.persona_id])
        text = self.answer(self.send(incoming), ReplyKind.COMMAND)
        assert text.startswith(f"New conversation with {PERSONAS[key.persona_id]}."), text

    @rule(choice=SENDERS, place=PLACES, wanted=st.sampled_from(["ada", "MORROW", "nobody", ""]))
    def persona(self, choice: tuple[int, int], place: int, wanted: str) -> None:
        incoming = self.incoming(self.sender(choice), place, f"/persona {wanted}".strip())
        owner = self.key_of(incoming).owner
        text = self.answer(self.send(incoming), ReplyKind.COMMAND)
        chosen = wanted.lower()
        if chosen in PERSONAS:
            self.model.set_preference(owner, PERSONA_PREFERENCE, chosen)
            key = ConversationKey(owner, chosen, incoming.scope)
            self.model.greet(key, greeting(incoming, chosen), PERSONAS[chosen])
            assert text.startswith(f"You are now talking to {PERSONAS[chosen]}."), text
        elif wanted:
            assert text.startswith("I don't know a persona called"), text
        else:
            current = self.model.persona_of(owner)
            assert text.startswith(f"You are talking to {PERSONAS[current]} ({current})."), text

    @rule(person=st.sampled_from([p for p in CAST if p.has_account]))
    def make_link_code(self, person: Person) -> None:
        """What the web's 'Link a platform' button does."""
        self.now += 1.0
        account = self.accounts[person.name]
        code = self.run(create_link_code(self.store, account.id, self.now))
        self.model.add_code(normalise_link_code(code), account.id, self.now + LINK_CODE_TTL)
        self.issued.append(code)

    @rule(
        choice=SENDERS,
        place=PLACES,
        which=st.integers(min_value=0, max_value=50),
        kind=st.sampled_from(["issued", "issued-lower", "issued-bare", "wrong", "malformed"]),
    )
    def link(self, choice: tuple[int, int], place: int, which: int, kind: str) -> None:
        if kind.startswith("issued") and self.issued:
            code = self.issued[which % len(self.issued)]  # used and expired ones too
            code = {"issued-lower": code.lower(), "issued-bare": code.replace("-", " ")}.get(
                kind, code
            )
        elif kind == "malformed":
            code = MALFORMED_CODES[which % len(MALFORMED_CODES)]
        else:
            code = WRONG_CODES[which % len(WRONG_CODES)]
        incoming = self.incoming(self.sender(choice), place, f"/link {code}")
        self.check_link(incoming, self.send(incoming))

    def linked_already(self, incoming: Incoming) -> str:
        account_id = self.model.links[incoming.identity]
        where = platform_name(incoming.platform)
        return f"This {where} account is linked to {self.usernames[account_id]} already."

    def check_link(self, incoming: Incoming, sent: Sent) -> None:
        """Check the answer to ``/link CODE`` (it only asks), and keep the pending link
        in the model when there is one."""
        code = incoming.text.removeprefix("/link ")
        if incoming.account_id is not None:
            expected = "You are signed in here already"
        elif incoming.identity in self.model.links:
            expected = self.linked_already(incoming)
        elif code in MALFORMED_CODES:
            expected = "That doesn't look like a link code."
        elif (account_id := self.model.peek_code(normalise_link_code(code), self.now)) is None:
            expected = "That code is unknown, used or expired."
        else:
            expires_at = self.now + CONFIRM_SECONDS
            self.model.pending[incoming.identity] = (
                normalise_link_code(code),
                account_id,
                expires_at,
            )
            event("link: asked")
            expected = (
                f"This code links your {platform_name(incoming.platform)} account "
                f"({incoming.display_name}) to the PersonaBridge web account "
                f'"{self.usernames[account_id]}".'
            )
        text = self.answer(sent, ReplyKind.COMMAND)
        assert text.startswith(expected), f"{incoming.text!r}: {text!r}, wanted {expected!r}"

    @rule(choice=SENDERS, place=PLACES, move=st.booleans())
    def confirm(self, choice: tuple[int, int], place: int, move: bool) -> None:
        command = "/link confirm move" if move else "/link confirm"
        incoming = self.incoming(self.sender(choice), place, command)
        self.check_confirm(incoming, self.send(incoming))

    def check_confirm(self, incoming: Incoming, sent: Sent) -> None:
        """Check the answer to ``/link confirm [move]``; link in the model when it links."""
        pending = None if incoming.account_id else self.model.pending.pop(incoming.identity, None)
        if incoming.account_id is not None:
            expected = "You are signed in here already"
        elif pending is None or pending[2] <= self.now:
            expected = "No link is waiting for your confirmation"
        elif incoming.identity in self.model.links:
            expected = self.linked_already(incoming)
        elif self.model.take_code(pending[0], self.now) != pending[1]:
            expected = "That code was used or expired in the meantime"
        else:
            account_id = pending[1]
            move = incoming.text.endswith(" move")
            self.model.link(incoming.identity, account_id, move=move)
            event("link: linked, moving" if move else "link: linked, keeping")
            where = platform_name(incoming.platform)
            expected = f"Linked: this {where} account now speaks for {self.usernames[account_id]}."
        text = self.answer(sent, ReplyKind.COMMAND)
        assert text.startswith(expected), f"{incoming.text!r}: {text!r}, wanted {expected!r}"

    @rule(choice=SENDERS, place=PLACES)
    def cancel(self, choice: tuple[int, int], place: int) -> None:
        incoming = self.incoming(self.sender(choice), place, "/link cancel")
        sent = self.send(incoming)
        pending = None if incoming.account_id else self.model.pending.pop(incoming.identity, None)
        if incoming.account_id is not None:
            expected = "You are signed in here already"
        elif pending is None or pending[2] <= self.now:
            expected = "Nothing to cancel"
        else:
            expected = "Cancelled: nothing was linked."
        text = self.answer(sent, ReplyKind.COMMAND)
        assert text.startswith(expected), f"{incoming.text!r}: {text!r}, wanted {expected!r}"

    @rule(choice=SENDERS, place=PLACES)
    def unlink(self, choice: tuple[int, int], place: int) -> None:
        incoming = self.incoming(self.sender(choice), place, "/unlink")
        sent = self.send(incoming)
        where = platform_name(incoming.platform)
        account_id = self.model.links.get(incoming.identity)
        if incoming.account_id is not None:
            expected = "You are signed in here; unlink platforms on your account page."
        elif account_id is None:
            expected = f"This {where} account is not linked to any web account."
        else:
            event("link: unlinked")
            expected = f"Unlinked: this {where} account no longer speaks for "
            expected += self.usernames[account_id]
        text = self.answer(sent, ReplyKind.COMMAND)
        if account_id is not None and incoming.account_id is None:
            self.model.unlink(incoming.identity)
        assert text.startswith(expected), f"{incoming.text!r}: {text!r}, wanted {expected!r}"

    @rule(
        person=st.sampled_from([p for p in CAST if p.has_account]),
        choice=SENDERS,
        place=PLACES,
        move=st.booleans(),
    )
    def link_with_new_code(
        self, person: Person, choice: tuple[int, int], place: int, move: bool
    ) -> None:
        """The usual way: make a code on the web, send it straight away, confirm."""
        self.make_link_code(person)
        self.link(choice, place, len(self.issued) - 1, "issued")
        self.confirm(choice, place, move)

    @rule(
        person=st.sampled_from([p for p in CAST if p.has_account]),
        choice=SENDERS,
        place=PLACES,
        move=st.booleans(),
        others=st.lists(st.tuples(SENDERS, PLACES), min_size=1, max_size=3),
    )
    def link_amid_chats(
        self,
        person: Person,
        choice: tuple[int, int],
        place: int,
        move: bool,
        others: list[tuple[tuple[int, int], int]],
    ) -> None:
        """A confirmed link while other owners chat: their conversations must not notice.
        (The linking identity's own messages racing its link are in
        test_link_forget_regressions.py; the account's own, too, end in either order.)"""
        self.make_link_code(person)
        self.link(choice, place, len(self.issued) - 1, "issued")
        command = "/link confirm move" if move else "/link confirm"
        link = self.incoming(self.sender(choice), place, command)
        involved = {
            self.model.owner_of(link.identity, link.account_id),
            guest_owner(link.identity),
            account_owner(self.accounts[person.name].id),
        }
        chats = []
        for other, other_place in others:
            sender = self.sender(other)
            incoming = self.incoming(sender, other_place, self.new_text(sender))
            if self.key_of(incoming).owner not in involved:
                chats.append(incoming)
        sent = self.at_once(chats, also=link)
        assert sent is not None
        self.check_confirm(link, sent)

    @rule(choice=SENDERS, place=PLACES, word=st.sampled_from(["", "confirm", "yes"]))
    def forget(self, choice: tuple[int, int], place: int, word: str) -> None:
        incoming = self.incoming(self.sender(choice), place, f"/forget {word}".strip())
        owner = self.key_of(incoming).owner
        sent = self.send(incoming)  # the clock moves on first: model with the new time
        if not word:
            self.model.set_preference(owner, FORGET_PREFERENCE, repr(self.now))
            expected = "This deletes every conversation and setting of"
        else:
            requested = float(self.model.preferences.get(owner, {}).get(FORGET_PREFERENCE, "0"))
            if self.now - requested <= FORGET_CONFIRM_SECONDS:
                self.model.forget(owner)
                event("forget: forgotten")
                expected = "Done: every conversation and setting of yours is deleted."
            else:
                expected = "There is no pending /forget"
        text = self.answer(sent, ReplyKind.COMMAND)
        assert text.startswith(expected), f"{incoming.text!r}: {text!r}, wanted {expected!r}"

    @rule(choice=SENDERS, place=PLACES)
    def forget_at_once(self, choice: tuple[int, int], place: int) -> None:
        """/forget and its confirmation straight after (the common case)."""
        self.forget(choice, place, "")
        self.forget(choice, place, "confirm")

    @rule(choice=SENDERS, places=st.lists(PLACES, min_size=1, max_size=3))
    def forget_amid_chats(self, choice: tuple[int, int], places: list[int]) -> None:
        """Another process (a second engine on the store) confirms the owner's /forget
        while its messages are being answered here. Nothing from before the forget
        survives, a message refused because of it is stored nowhere, and what was
        stored after it is whole (each message with its reply, which saw only what came
        after the forget)."""
        sender = self.sender(choice)
        owner = self.key_of(self.incoming(sender, places[0], "/forget")).owner
        if self.model.persona_of(owner) != self.model.default_persona:
            return  # keys would change persona with the forget; the model keeps it simple
        self.forget(choice, places[0], "")
        chats = [self.incoming(sender, place, self.new_text(sender)) for place in places]
        confirm = self.incoming(sender, places[0], "/forget confirm")
        other = build_engine(self.store, lambda: self.now)

        async def race() -> tuple[list[Sent], Sent]:
            try:
                here = collect_all(self.engine, chats)
                sents, confirmed = await asyncio.gather(here, collect(other, confirm))
                return sents, confirmed
            finally:
                await other.aclose()

        self.now += 1.0
        sents, confirmed = self.run(race())
        assert confirmed.done is not None
        assert confirmed.done.text.startswith("Done: "), confirmed.done.text
        self.model.forget(owner)
        sent_texts = {incoming.text for incoming in chats}
        stored: set[str] = set()
        for key in {self.key_of(incoming) for incoming in chats}:
            window = self.run(self.store.load_window(key, 10_000))
            turns = [(t.role, t.text, t.author) for t in window.turns]
            seen: list[str] = []
            for (role, text, _), (reply_role, reply, _) in zip(
                turns[::2], turns[1::2], strict=True
            ):
                assert role == "user" and text in sent_texts, f"{key}: {turns}"
                assert (reply_role, reply) == ("assistant", echo(text, seen)), f"{key}: {turns}"
                seen.append(text)
                stored.add(text)
                self.model.token_owner[tokens_in(text)[0]] = owner
            if turns:
                self.model.replace_current(key, turns)
        refused = 0
        for sent in sents:
            done = sent.done
            assert done is not None
            if done.kind is ReplyKind.ERROR:
                assert done.text == OWNER_FORGOTTEN, done.text
                assert sent.incoming.text not in stored
                refused += 1
            else:
                assert done.kind is ReplyKind.CHAT, done
        event(f"forget amid chats: {refused} refused, {len(stored)} kept")

    @rule(seconds=st.sampled_from([60.0, FORGET_CONFIRM_SECONDS + 1, LINK_CODE_TTL + 1]))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds

    # -- invariants --------------------------------------------------------------------

    def owners(self) -> list[OwnerId]:
        guests = [
            guest_owner(Identity(platform, user_id))
            for person in CAST
            for platform, user_id in person.handles
        ]
        return guests + [account_owner(a.id) for a in self.accounts.values()]

    @invariant()
    def store_matches_model(self) -> None:
        for owner in self.owners():
            records = self.run(self.store.export_owner(owner))
            typed: Counter[str] = Counter()
            for record in records:
                for turn in record.turns:
                    self.assert_only_own_tokens(owner, turn.text, "a stored turn")
                    if turn.role == "user":
                        typed.update(tokens_in(turn.text))
            twice = [token for token, n in typed.items() if n > 1]
            assert not twice, f"{owner} has these turns twice: {twice}"
            assert export_by_slot(records) == self.model.expected_export(owner), owner
            prefs = self.run(self.store.get_preferences(owner))
            assert prefs == self.model.preferences.get(owner, {}), owner

    @invariant()
    def links_match_model(self) -> None:
        for person in CAST:
            for platform, user_id in person.handles:
                identity = Identity(platform, user_id)
                link = self.run(self.store.get_identity(identity))
                assert (link.account_id if link else None) == self.model.links.get(identity)


class MemoryInterleavings(Interleavings):
    store_kind = "memory"


class SqliteInterleavings(Interleavings):
    store_kind = "sqlite"


TestMemoryInterleavings = MemoryInterleavings.TestCase
TestMemoryInterleavings.settings = settings(max_examples=80, stateful_step_count=30)
TestSqliteInterleavings = SqliteInterleavings.TestCase
TestSqliteInterleavings.settings = settings(max_examples=50, stateful_step_count=30)
