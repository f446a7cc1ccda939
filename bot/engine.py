"""The conversation engine: from one :class:`Incoming` to a stream of reply events.

For each message: check access and the rate limit, resolve who is speaking (a guest
or a linked account), then either answer a command or chat. Chat holds the
conversation's lock (messages of one conversation never interleave; different
conversations run concurrently), stores the user's turn *before* asking the backend,
streams the reply, and stores it once complete. If the backend fails, the user gets one
clear message and ``/retry`` regenerates from the stored turn: nothing is lost. A
transient store failure is tried again a few times (:mod:`bot.retrying`); an append
whose answer was lost is looked for before it is sent again, so no turn is stored twice,
and the user is told a turn was not kept only when it is not there.

When the window drops old turns, a running summary of them is made in the background
(:mod:`bot.summary`) and passed to later replies; the tokens replies and summaries cost
are added to the owner's usage.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from bot import userpersona
from bot.backends.base import ReplyContext, Summariser, TokenUsage
from bot.backends.guard import ReplyGuard, ReplyOutcome
from bot.backoff import FULL_JITTER, Backoff
from bot.commands import (
    PERSONA_PREFERENCE,
    is_read_only,
    parse_command,
    set_persona,
)
from bot.config import (
    AccessSettings,
    EngineSettings,
)
from bot.errors import (
    BackendError,
    ConversationBusy,
    OwnerForgotten,
    StoreError,
    StoreUnavailable,
    VersionConflict,
)
from bot.greetings import conversation_seed, store_greeting
from bot.leases import LeasePolicy, still_answering
from bot.limits import HeldLocks, KeyedLocks
from bot.media import Processed
from bot.messages import (
    Attachment,
    AttachmentKind,
    CommandAnswer,
    ConversationKey,
    Incoming,
    NewTurn,
    OwnerId,
    ReplyDone,
    ReplyEvent,
    ReplyKind,
    Speaker,
    TextDelta,
    Turn,
    UserPersona,
    account_owner,
    clean_text,
    guest_owner,
    too_long_refusal,
)
from bot.metrics import Metrics
from bot.pairing import paired
from bot.personas import Persona, PersonaLibrary
from bot.recent_images import IMAGES_GONE_NOTE, RecentImages, sees_images
from bot.retrying import StoreRetry, UnsureAppends, find_stored, retry_transient
from bot.store.base import ConversationStore, ConversationWindow, Lease
from bot.summary import StoredSummary, dropped_turns

if TYPE_CHECKING:
    from bot.engine_parts import EngineParts

log = logging.getLogger(__name__)

T = TypeVar("T")

STORE_TROUBLE = "I can't reach my memory right now, so I didn't keep that. Please try again."
REPLY_NOT_KEPT = "I couldn't save my reply just now. Your message is kept: send /retry in a moment."
BLANK_MESSAGE = "Write a message first: there is nothing in that one to answer. Nothing was kept."
OWNER_FORGOTTEN = (
    "Your data was just deleted, so I kept nothing of this message or my reply. "
    "Send it again to start afresh."
)
APPEND_ATTEMPTS = 5
#: Turns read beyond an append's own when checking whether a failed append was written
#: (another process may have appended after it).
WRITTEN_CHECK_SLACK = 4
#: Upper bound of the first random pause after a version conflict (doubles each time).
CONFLICT_BACKOFF = 0.005
_CONFLICT_PAUSE = Backoff(CONFLICT_BACKOFF, jitter=FULL_JITTER)
#: Shown after a reply that a fallback backend wrote, when ENGINE__FALLBACK_NOTE is on.
FALLBACK_NOTE = "\n\n({name}'s usual brain is unavailable right now: a backup answered.)"
#: Shown after replies to someone whose chosen persona's card was removed.
MISSING_PERSONA_NOTE = (
    "\n\n(The persona {missing!r} you chose is no longer here, so {name} answered. "
    "Send /personas to see who is, and /persona ID to choose.)"
)
#: Commands a guest may use when only linked accounts may chat.
GUEST_COMMANDS = frozenset({"start", "help", "link", "unlink", "whoami"})


def bounded_window(
    turns: Sequence[Turn], max_chars: int, max_turns: int | None = None
) -> list[Turn]:
    """The newest turns that fit in ``max_chars`` (and, given, at most ``max_turns`` of
    them), oldest first.

    A reply that ``/retry`` replaced is followed directly by its replacement (two
    assistant turns in a row): only the newer one is shown to the backend.
    """
    kept: list[Turn] = []
    budget = max_chars
    for turn in reversed(turns):
        if len(kept) == max_turns:
            break
        if kept and turn.role == "assistant" and kept[-1].role == "assistant":
            continue
        size = turn_size(turn) if turn.attachments else len(turn.text)  # (no call: most)
        if size > budget:
            break
        budget -= size
        kept.append(turn)
    kept.reverse()
    return kept


def turn_size(turn: Turn) -> int:
    """What a turn costs of the window: its text and its files' text."""
    if not turn.attachments:  # most turns: no generator to sum
        return len(turn.text)
    return len(turn.text) + sum(len(item.text) for item in turn.attachments)


def media_preface(processed: Processed) -> str:
    """What the user is shown before the reply: what was heard in their voice notes
    (so they can see it was understood) and which files were not used, and why."""
    lines = [
        f"🎤 “{item.text}”"
        for item in processed.attachments
        if item.kind is AttachmentKind.AUDIO and item.text
    ]
    lines += [f"⚠️ {refusal}" for refusal in processed.refusals]
    return "\n".join(lines) + "\n\n" if lines else ""


class Engine:
    """Turns messages into replies. One per process, shared by every adapter.

    Built by :func:`bot.engine_parts.build_engine`, which makes its parts."""

    def __init__(
        self,
        store: ConversationStore,
        personas: PersonaLibrary,
        guard: ReplyGuard,
        parts: EngineParts,
        *,
        settings: EngineSettings,
        access: AccessSettings,
        metrics: Metrics,
        store_retry: StoreRetry,
        clock: Callable[[], float],
        monotonic: Callable[[], float],
    ):
        self.store = store
        self.personas = personas
        self.guard = guard
        self.commands = parts.commands
        self.summaries = parts.summaries
        self.notices = parts.notices
        self.media = parts.media
        #: Replies read aloud (``/voice on``): front ends call it after the text is out.
        self.speech = parts.speech
        self.settings = settings
        self.access = access
        #: Whether any allow or block list is set (most deployments: none).
        self._screened = bool(
            access.block_users or access.allow_users or access.block_chats or access.allow_chats
        )
        self.metrics = metrics
        self.store_retry = store_retry
        self._clock = clock
        self._monotonic = monotonic
        self._limits = parts.limits
        self._locks = parts.locks
        self._speakers = KeyedLocks()
        self.leases = LeasePolicy(seconds=settings.lease_seconds, wait=settings.lease_wait_seconds)
        #: Appends whose outcome is unknown: what the user sends again is matched to them.
        self._unsure = UnsureAppends()
        #: The latest message's images per conversation, for /retry (never stored).
        self.recent_images = RecentImages(max_bytes=self.media.settings.retry_images_bytes)
        self._summarisers: dict[str, Summariser] = {
            name: backend
            for name, backend in guard.backends.items()
            if settings.summary and isinstance(backend, Summariser)
        }

    async def aclose(self, grace: float = 5.0) -> None:
        """Let the summaries still being made finish (cancelled after ``grace``
        seconds). Call it before the store and the backends close."""
        await self.summaries.aclose(grace)
        await self.notices.aclose(grace)

    # -- the one entry point ------------------------------------------------------------

    async def handle(self, incoming: Incoming) -> AsyncGenerator[ReplyEvent, None]:
        """Answer one message: zero events when it is not for us, else optional
        :class:`TextDelta` values and exactly one :class:`ReplyDone` last.

        This is the only generator between the backend and the adapter: every word of a
        reply passes here, so the steps around the stream are plain coroutines: admit
        (checks, files), begin (locks, who speaks, the command or the stored user turn),
        then stream, and finish (the reply stored, or what went wrong).
        """
        if not incoming.addressed:
            return
        self.metrics.message_in(incoming.platform)
        if incoming.files:
            refusal, media, preface = await self._admit(incoming)
            attachments: Sequence[Attachment] = media.attachments
        else:  # most messages: the checks alone, no coroutine of their own
            refusal, attachments, preface = self._precheck(incoming), (), ""
        if preface:
            yield TextDelta(preface)
        held = HeldLocks()  # the locks _begin takes, released last
        try:
            begun = refusal or await self._begin(incoming, attachments, held)
            if isinstance(begun, _KeptReply):  # a reply the user was told was lost was stored
                yield TextDelta(begun.done.text)
                done = begun.done
            elif isinstance(begun, ReplyDone):
                done = begun
            else:
                parts: list[str] = []
                try:
                    async for delta in self.guard.stream(
                        *begun.backend_args,
                        summary=begun.summary.text,
                        context=begun.reply_context,
                        outcome=begun.outcome,
                    ):
                        # a backend's JSON may carry a lone surrogate, which no store
                        # nor page could take
                        delta = clean_text(delta)
                        parts.append(delta)
                        yield TextDelta(delta)
                        if self._lease_due(begun):
                            await self._renew_lease(begun)
                except BackendError as exc:
                    done = self._backend_failed(begun.persona, exc)
                else:
                    done = await self._finish(incoming, begun, "".join(parts))
                finally:
                    if begun.lease is not None:
                        await self._release(begun)
                if done.note:  # not stored: the note is about this moment only
                    yield TextDelta(done.note)
        finally:
            held.release()
        if preface:
            done = dataclasses.replace(done, preface=preface)
        self.metrics.message_out(incoming.platform, done.kind)
        yield done

    async def _admit(self, incoming: Incoming) -> tuple[ReplyDone | None, Processed, str]:
        """What comes before anything is locked: the checks that refuse a message
        (access, rate limit, size), then its files, fetched and converted. Returns the
        refusal (None when admitted), the files, and what to show before the reply."""
        refusal = self._precheck(incoming)
        if refusal is not None or not incoming.files or not await self._takes_files(incoming):
            return refusal, Processed(), ""
        media = await self.media.process(incoming.files)
        preface = media_preface(media)
        if not incoming.text.strip() and not media.attachments:
            return ReplyDone(preface.strip(), ReplyKind.ERROR), media, ""
        return None, media, preface

    async def _begin(
        self, incoming: Incoming, attachments: Sequence[Attachment], held: HeldLocks
    ) -> _Prepared | _KeptReply | ReplyDone:
        """Everything before the reply streams: who speaks, what they ask, and, for
        chat, their turn stored and the backend's input gathered. Returns that prepared
        reply, or the finished answer (a command's, a refusal, a store failure: nothing
        of the message was kept then).

        The locks go into ``held``, which the caller releases after the reply is stored.
        One message of an identity at a time, from resolving its owner to the stored
        reply: a message racing its own /link would otherwise be kept under the guest
        owner after the guest's data had moved to the account. Then, for chat, one
        message of the conversation at a time."""
        try:
            await held.take(self._speakers, incoming.identity)
            speaker = await self.resolve(incoming)
            route = await self._route(speaker)
            if isinstance(route, ReplyDone):
                return route
            await held.take(self._locks, speaker.key)
            return await self._prepare(speaker, route, attachments)
        except StoreError as exc:
            return self._store_failed(incoming, exc, turn_kept=False)

    async def _finish(self, incoming: Incoming, prepared: _Prepared, text: str) -> ReplyDone:
        """The answer once the reply streamed: stored, with a note about this moment
        when there is one, or what went wrong (the user's turn is kept)."""
        try:
            done = await self._complete(prepared, text, prepared.outcome)
        except StoreError as exc:
            return self._store_failed(incoming, exc, turn_kept=True)
        note = self._note(prepared, done)
        return dataclasses.replace(done, note=note) if note else done

    def _store_failed(self, incoming: Incoming, exc: StoreError, *, turn_kept: bool) -> ReplyDone:
        if isinstance(exc, OwnerForgotten):
            # /forget or an account deletion won the race: nothing of this message stays
            log.info("a %s message's owner was forgotten while it was answered", incoming.platform)
            return ReplyDone(OWNER_FORGOTTEN, ReplyKind.ERROR)
        log.warning("store failed on a %s message: %s", incoming.platform, exc)
        self.metrics.error("store")
        return ReplyDone(REPLY_NOT_KEPT if turn_kept else STORE_TROUBLE, ReplyKind.ERROR)

    def _note(self, prepared: _Prepared, done: ReplyDone) -> str:
        """What to add after a chat reply about this moment only (the images of a
        /retry's message no longer here, a backup backend, a removed persona)."""
        if done.kind is not ReplyKind.CHAT:
            return ""
        note = IMAGES_GONE_NOTE if prepared.images_lost else ""
        if prepared.outcome.fallback and self.settings.fallback_note:
            note += FALLBACK_NOTE.format(name=done.persona_name)
        if prepared.missing_persona:
            note += MISSING_PERSONA_NOTE.format(
                missing=prepared.missing_persona, name=prepared.persona.name
            )
        return note

    def _lease_due(self, prepared: _Prepared) -> bool:
        """Whether the lease of a reply still streaming is due for renewal."""
        return (
            prepared.lease is not None
            and self._monotonic() - prepared.lease_taken >= self.leases.renew_every
        )

    async def _renew_lease(self, prepared: _Prepared) -> None:
        """Extend the lease of a long reply (an append of no turns, one write per
        ``renew_every`` seconds of streaming), so that it can be short: a killed worker's
        conversation is free again soon. Failing, the reply goes on; it pairs with its
        message by ``reply_to`` whoever appends meanwhile."""
        holder = prepared.lease
        assert holder is not None
        take = Lease(holder, self._clock() + self.leases.seconds)
        prepared.lease_taken = self._monotonic()
        try:
            prepared.version, _ = await self._append(
                prepared.key, [], prepared.version, prepared.epoch, take=take
            )
        except ConversationBusy:
            prepared.lease = None  # it expired and another worker took it
        except StoreError as exc:
            log.warning("could not renew a conversation's lease: %s", exc)

    async def _release(self, prepared: _Prepared) -> None:
        """Free the lease of a message whose reply was not stored (the backend failed,
        the client went away): the next message of the conversation need not wait for
        it to expire."""
        holder, prepared.lease = prepared.lease, None
        assert holder is not None
        try:
            await self._retrying(lambda: self.store.release_lease(prepared.key, holder))
        except StoreError as exc:
            log.warning("could not free a conversation's lease (it expires): %s", exc)

    async def _takes_files(self, incoming: Incoming) -> bool:
        """Whether a message's files are fetched and converted: not for a command, nor
        for a guest where only linked accounts may chat (downloading and transcribing
        cost; the message is refused anyway)."""
        if parse_command(incoming.text) is not None:
            return False
        if not self.access.linked_only or incoming.account_id is not None:
            return True
        link, _ = await self._retrying(lambda: self.store.resolve_identity(incoming.identity))
        return link is not None

    def _precheck(self, incoming: Incoming) -> ReplyDone | None:
        denial = self._denial(incoming)
        if denial:
            return ReplyDone(denial, ReplyKind.DENIED)
        limits = self._limits
        exempt = incoming.platform in limits.exempt
        bucket = limits.read if is_read_only(incoming.text) else limits.chat
        if not exempt and not bucket.try_acquire(incoming.identity):
            self.metrics.rate_limited(incoming.platform)
            wait = max(1, math.ceil(bucket.retry_after(incoming.identity)))
            return ReplyDone(
                f"Slow down a little — you can send another message in {wait} s.",
                ReplyKind.RATE_LIMITED,
                retry_after=wait,
            )
        if not incoming.text.strip() and not incoming.files:  # a message with only a file
            # is a message; not so Discord's /chat message:"   ", or a bare mention
            return ReplyDone(BLANK_MESSAGE, ReplyKind.ERROR)
        limit = self.settings.max_message_chars
        if len(incoming.text) > limit:
            return ReplyDone(too_long_refusal(limit), ReplyKind.ERROR)
        return None

    def _denial(self, incoming: Incoming) -> str | None:
        access = self.access
        if not self._screened:  # no list to check: nothing to format per message
            return None
        user = str(incoming.identity)
        chat = f"{incoming.platform}:{incoming.chat_id}"
        if user in access.block_users or (access.allow_users and user not in access.allow_users):
            return "Sorry, I'm not available to you here."
        if chat in access.block_chats or (access.allow_chats and chat not in access.allow_chats):
            return "Sorry, I'm not available in this chat."
        return None

    async def _route(self, speaker: Speaker) -> str | ReplyDone | None:
        """What to do with a message: the text to chat with, None for ``/retry``, or
        the finished answer of any other command."""
        text = speaker.incoming.text
        command = parse_command(text)
        name = command[0] if command else None
        if self.access.linked_only and speaker.account_id is None and name not in GUEST_COMMANDS:
            return ReplyDone(
                "Only linked accounts can chat here. Sign up on the web, then send /link CODE.",
                ReplyKind.DENIED,
            )
        if command is None:
            return text
        name, args = command
        if name == "retry":
            return None
        handler = self.commands.handler(name)
        if handler is None:
            return ReplyDone(
                f"I don't know /{name}. Send /help for the commands.", ReplyKind.COMMAND
            )
        async with self._locks.lock(speaker.key):
            answer = await handler(speaker, args)
        if isinstance(answer, CommandAnswer):
            return ReplyDone(
                answer.text, ReplyKind.COMMAND, speaker.persona.name, actions=answer.actions
            )
        return ReplyDone(answer, ReplyKind.COMMAND, speaker.persona.name)

    # -- who is speaking ----------------------------------------------------------------

    async def resolve(self, incoming: Incoming) -> Speaker:
        """Who speaks (a guest, or the account the identity is linked to) and with whom."""
        account_id = incoming.account_id
        if account_id is None:
            link, prefs = await self._retrying(
                lambda: self.store.resolve_identity(incoming.identity)
            )
            account_id = link.account_id if link else None
        else:
            owner = account_owner(account_id)
            prefs = await self._retrying(lambda: self.store.get_preferences(owner))
        owner = account_owner(account_id) if account_id else guest_owner(incoming.identity)
        chosen = prefs.get(PERSONA_PREFERENCE)
        missing = chosen if chosen and self.personas.find(chosen) is None else None
        user = userpersona.from_preferences(prefs)
        persona = self._persona_of(prefs)
        return Speaker(incoming, owner, account_id, persona, user, missing_persona=missing)

    async def active_persona(self, owner: OwnerId) -> Persona:
        return self._persona_of(await self._retrying(lambda: self.store.get_preferences(owner)))

    async def user_persona(self, owner: OwnerId) -> UserPersona:
        """Who the owner says they are (``/me``, the account page)."""
        prefs = await self._retrying(lambda: self.store.get_preferences(owner))
        return userpersona.from_preferences(prefs)

    async def set_user_persona(self, owner: OwnerId, persona: UserPersona) -> UserPersona:
        """Keep who the owner says they are; raises InvalidUserPersona (nothing kept)."""
        return await userpersona.save(self.store, owner, persona)

    def _persona_of(self, prefs: Mapping[str, str]) -> Persona:
        chosen = prefs.get(PERSONA_PREFERENCE)
        return (self.personas.find(chosen) if chosen else None) or self.personas.default

    async def set_persona(self, owner: OwnerId, persona_id: str) -> Persona:
        """Make ``persona_id`` the owner's persona everywhere (UnknownPersona if none)."""
        persona = self.personas.get(persona_id)
        await set_persona(self.store, owner, persona.id)
        return persona

    # -- chat ----------------------------------------------------------------------------

    async def _prepare(
        self, speaker: Speaker, new_text: str | None, attachments: Sequence[Attachment] = ()
    ) -> _Prepared | _KeptReply | ReplyDone:
        """Store ``new_text`` (and what its ``attachments`` came to, without their bytes)
        as the user's turn, before any backend is asked, and gather what the backend
        needs; with None (``/retry``) answer the last user turn again. Runs under the
        conversation's lock."""
        key = speaker.key
        max_turns = self.settings.window_max_turns
        summariser = self._summarisers.get(speaker.persona.backend)
        # a summariser sees the turns that just dropped out of the window, too
        loaded = self.summaries.policy.batch * 2 + max_turns if summariser else max_turns
        lease: str | None = None
        earlier: tuple[str, ...] = ()
        images_lost = False
        sent_at = speaker.incoming.sent_at
        kept = None
        first: _FirstTry | StoreUnavailable | None = None
        holder: str | None = None  # the lease's, when the first try was made
        if new_text is not None:
            author = speaker.user_name
            files = tuple(item.stored() for item in attachments) if attachments else ()
            turn = NewTurn("user", new_text, author, sent_at or self._clock(), attachments=files)
            # the same message again, after its append ended unknown: it may be stored
            sent_before = self._unsure.take(key, partial(_resends, turn))
            if sent_at is None and sent_before is None:  # nothing to look for first
                holder = self.leases.holder()
                first = await self._read_and_append(key, turn, loaded, holder)
        if isinstance(first, _FirstTry):  # most messages: read and stored in one trip
            epoch, window, version, stored, lease = first
            if epoch is None:
                raise OwnerForgotten(f"owner {key.owner} is deleted")
        else:
            # the epoch first: a /forget after this point refuses every write of this message
            try:
                epoch, window = await self._retrying(
                    lambda: self.store.epoch_and_window(key, loaded)
                )
            except StoreUnavailable:
                if first is not None:  # the first try may have stored the turn
                    self._unsure.note(key, [turn])
                raise
            if epoch is None:
                raise OwnerForgotten(f"owner {key.owner} is deleted")
            version = window.version
            if new_text is not None:
                kept = find_stored(window.turns, [turn]) if sent_at is not None else None
                if kept is None and sent_before is not None:
                    kept = find_stored(window.turns, sent_before)
        if isinstance(first, _FirstTry):
            history, message = paired(window.turns), stored[0]
            if attachments:  # this message's images are shown to the backend, once
                message = dataclasses.replace(message, attachments=tuple(attachments))
            self.recent_images.keep(key, message)  # and again to a /retry of it
        elif kept is not None:
            # an event from the inbox, answered again after a crash: its turn is stored
            answer = _stored_reply(window.turns, kept[0])
            if answer is not None:
                return ReplyDone(answer.text, ReplyKind.CHAT, speaker.persona.name)
            conversation = paired(window.turns)
            message = kept[0]
            history = conversation[: conversation.index(message)]
        elif new_text is not None:
            window, version, stored, lease = await self._take_lease(
                key, [turn], window, loaded, epoch, holder=holder, failed=first
            )
            if lease is None:
                return still_answering()
            history, message = paired(window.turns), stored[0]
            if attachments:  # this message's images are shown to the backend, once
                message = dataclasses.replace(message, attachments=tuple(attachments))
            self.recent_images.keep(key, message)  # and again to a /retry of it
        else:
            if _last_user_turn(window.turns) is None:
                return ReplyDone("There is nothing to retry yet.", ReplyKind.COMMAND)
            # a reply whose append ended unknown (the user was told it was not kept)
            lost = self._unsure.take(key, _is_reply)
            found_reply = find_stored(window.turns, lost) if lost is not None else None
            if found_reply is not None:
                done = ReplyDone(found_reply[0].text, ReplyKind.CHAT, speaker.persona.name)
                return _KeptReply(done)
            # /retry answers too: it takes the lease with an append of no turns
            window, version, _, lease = await self._take_lease(key, [], window, loaded, epoch)
            found = _last_user_turn(paired(window.turns))
            if lease is None or found is None:
                return still_answering()
            history, message = found
            message, images_lost = self.recent_images.restore(key, message)
            images_lost = images_lost and sees_images(self.guard, speaker.persona)
            earlier = tuple(t.text for t in paired(window.turns)[len(history) + 1 :])
        summary = StoredSummary.decode(window.summary) if self._summarisers else StoredSummary()
        budget = self.settings.window_max_chars - turn_size(message) - len(summary.text)
        context = bounded_window(history, budget, max_turns)
        return _Prepared(
            key=key,
            persona=speaker.persona,
            context=context,
            message=message,
            version=version,
            epoch=epoch,
            old_state=window.backend_state,
            state=dict(window.backend_state),
            started=time.perf_counter(),
            summary=summary,
            summariser=summariser,
            dropped=dropped_turns(summary, history, context) if summariser else [],
            lease=lease,
            lease_taken=self._monotonic(),
            images_lost=images_lost,
            reply_context=ReplyContext(speaker.user, earlier, seed=conversation_seed(key)),
            missing_persona=speaker.missing_persona,
        )

    async def _read_and_append(
        self, key: ConversationKey, turn: NewTurn, loaded: int, holder: str
    ) -> _FirstTry | StoreUnavailable | None:
        """The first try of a new message: read the epoch and window and store the
        user's turn, taking the lease for ``holder``, in one store call. None when the
        conversation is busy (another worker's lease, another process's append): the
        usual way waits. A transient failure is handed back: the turn (and the lease)
        may be stored, and the usual way, with the same holder, counts it as its
        append's first failed try (then reads whether it was)."""
        take = Lease(holder, self._clock() + self.leases.seconds)
        try:
            epoch, window, version, stored = await self.store.read_and_append(
                key, loaded, [turn], self._clock(), take_lease=take
            )
        except (ConversationBusy, VersionConflict):
            return None
        except StoreUnavailable as exc:
            return exc
        return _FirstTry(epoch, window, version, stored, holder)

    async def _take_lease(
        self,
        key: ConversationKey,
        turns: list[NewTurn],
        window: ConversationWindow,
        loaded: int,
        epoch: int,
        *,
        holder: str | None = None,
        failed: StoreUnavailable | None = None,
    ) -> tuple[ConversationWindow, int, tuple[Turn, ...], str | None]:
        """Append ``turns`` (the user's turn; none for ``/retry``) taking the
        conversation's lease, waiting while another worker holds it (:mod:`bot.leases`).
        Returns the window appended to, the new version, the stored turns and the
        lease's holder; the holder is None when the wait ran out: the turns are then
        stored without the lease. ``failed``: the first try of the append (made by
        :meth:`_read_and_append` for ``holder``) failed so."""
        policy = self.leases
        holder = holder or policy.holder()
        deadline = self._monotonic() + policy.wait
        tries = 0
        while True:
            take = Lease(holder, self._clock() + policy.seconds)
            first_failure, failed = failed, None
            try:
                version, stored = await self._append(
                    key, turns, window.version, epoch, take=take, failed=first_failure
                )
                return window, version, stored, holder
            except ConversationBusy:
                tries += 1
                self.metrics.error("lease_wait")
                remaining = deadline - self._monotonic()
                if remaining > 0:
                    await asyncio.sleep(policy.pause(tries, remaining))
                window = await self._retrying(lambda: self.store.load_window(key, loaded))
                if remaining <= 0:
                    if not turns:
                        return window, window.version, (), None
                    version, stored = await self._append(key, turns, window.version, epoch)
                    return window, version, stored, None

    def _backend_failed(self, persona: Persona, exc: BackendError) -> ReplyDone:
        log.warning("persona %s could not answer: %s", persona.id, exc)
        self.metrics.error("backend")
        return ReplyDone(
            f"{persona.name} couldn't answer just now. Your message is saved — "
            "send /retry to try again.",
            ReplyKind.ERROR,
            persona.name,
        )

    async def _complete(
        self, prepared: _Prepared, reply_text: str, outcome: ReplyOutcome
    ) -> ReplyDone:
        """Store the finished reply (and the backend's state, when it changed), count
        its tokens, and start a summary when enough turns left the window."""
        persona = prepared.persona
        answered_by = outcome.backend or persona.backend
        self.metrics.backend_latency(answered_by, time.perf_counter() - prepared.started)
        if outcome.usage is not None:
            await self._add_usage(prepared.key.owner, outcome.usage)
        text = reply_text.strip()
        if not text:
            return ReplyDone(
                f"{persona.name} had nothing to say. Send /retry to try again.",
                ReplyKind.ERROR,
                persona.name,
            )
        reply = NewTurn("assistant", text, persona.name, self._clock(), prepared.message.seq)
        version, _ = await self._append(
            prepared.key, [reply], prepared.version, prepared.epoch, release=prepared.lease
        )
        prepared.lease = None
        if prepared.state != prepared.old_state:
            await self._save_state(prepared.key, prepared.state, version, prepared.epoch)
        if prepared.summariser is not None and prepared.dropped:
            self.summaries.maybe_start(
                prepared.key, persona, prepared.summariser, prepared.summary, prepared.dropped
            )
        return ReplyDone(text, ReplyKind.CHAT, persona.name)

    async def _add_usage(self, owner: OwnerId, usage: TokenUsage) -> None:
        # what a reply cost is worth keeping, not worth failing the reply for
        try:
            await self.store.add_usage(owner, usage.prompt_tokens, usage.completion_tokens)
        except StoreError as exc:
            log.warning("could not count a reply's tokens: %s", exc)

    async def _retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        """A store call that may safely run twice (a read, or a write that sets rather
        than adds), tried again when it fails transiently."""
        try:
            return await call()  # the first try inline: one coroutine less per store call
        except StoreUnavailable as exc:
            failed = exc
        return await retry_transient(
            call, self.store_retry, on_retry=self._store_retried, failed=failed
        )

    def _store_retried(self, exc: StoreUnavailable) -> None:
        log.debug("store failed transiently, trying again: %s", exc)
        self.metrics.error("store_retry")

    async def _append(
        self,
        key: ConversationKey,
        turns: list[NewTurn],
        version: int,
        epoch: int,
        *,
        take: Lease | None = None,
        release: str | None = None,
        failed: StoreUnavailable | None = None,
    ) -> tuple[int, tuple[Turn, ...]]:
        """Append under the version check, exactly once (``failed``: the first try was
        made already, and failed so).

        Another process may have appended to this conversation meanwhile: then take its
        version and append after it, after a short random pause so that two processes
        racing on one conversation do not keep colliding (a tight retry loop can starve
        one of them). A transient failure may have come after the turns were written
        (the answer was lost): so read the conversation again, and append only when our
        turns are not there; after the last try, that read decides whether we fail."""
        conflicts = failures = 0
        while True:
            try:
                if failed is not None:
                    first_failure, failed = failed, None
                    raise first_failure
                return await self.store.append_turns(
                    key,
                    turns,
                    version,
                    self._clock(),
                    epoch=epoch,
                    take_lease=take,
                    release_lease=release,
                )
            except VersionConflict:
                conflicts += 1
                if conflicts >= APPEND_ATTEMPTS:
                    raise
                self.metrics.error("version_conflict")
                await asyncio.sleep(_CONFLICT_PAUSE.delay(conflicts))
                # A write retried below us (a lost answer) can conflict with itself: when
                # the newest turns are ours, they are stored. (The newest turn comes with
                # a DynamoDB conflict, so this read usually costs no call.)
                window = await self._reread(key, len(turns), turns, unsure=failures > 0)
                stored = find_stored(window.turns, turns) if turns else None
                if stored is not None:
                    return window.version, stored
                version = window.version
            except StoreUnavailable as exc:
                failures += 1
                last = failures >= self.store_retry.attempts
                if not last:
                    self._store_retried(exc)
                    await asyncio.sleep(self.store_retry.pause(failures))
                size = len(turns) + WRITTEN_CHECK_SLACK
                window = await self._reread(key, size, turns, unsure=True)
                # no turns (a lease taken alone): sending it again is harmless
                stored = find_stored(window.turns, turns) if turns else None
                if stored is not None:
                    return window.version, stored
                if last:
                    raise
                version = window.version

    async def _reread(
        self, key: ConversationKey, size: int, turns: list[NewTurn], *, unsure: bool
    ) -> ConversationWindow:
        """The newest ``size`` turns, read to learn whether ``turns`` are stored. When
        the read fails too and a failed try may have been applied (``unsure``), the
        turns are noted: the user is told they were not kept, and what they send again
        is matched to them rather than stored a second time."""
        try:
            return await self._retrying(partial(self.store.load_window, key, size))
        except StoreUnavailable:
            if unsure and turns:
                self._unsure.note(key, turns)
            raise

    async def _save_state(
        self, key: ConversationKey, state: dict[str, Any], version: int, epoch: int
    ) -> None:
        """Keep the backend's new state. The reply is stored already, so failing here
        only logs: the user is not told their reply was lost when it was not."""
        try:
            for _ in range(APPEND_ATTEMPTS):
                try:
                    save = partial(
                        self.store.save_conversation_state,
                        key,
                        version,
                        backend_state=state,
                        epoch=epoch,
                    )
                    await self._retrying(save)
                    return
                except VersionConflict:
                    version = (await self._retrying(lambda: self.store.load_window(key, 1))).version
        except StoreError as exc:
            log.warning("could not keep a backend's conversation state: %s", exc)
            self.metrics.error("store")

    # -- for front ends that show history (web chat, console) ---------------------------

    async def open_conversation(
        self, owner: OwnerId, scope: str, display_name: str
    ) -> tuple[Persona, list[Turn]]:
        """The owner's persona and the turns a user sees when opening that conversation
        (a page, a terminal): an empty conversation starts with the persona's greeting,
        stored as its first turn, as ``/start`` does."""
        prefs = await self._retrying(lambda: self.store.get_preferences(owner))
        persona = self._persona_of(prefs)
        user = userpersona.from_preferences(prefs).name or display_name
        key = ConversationKey(owner, persona.id, scope)
        # Not under the conversation's lock (a page must not wait for a reply being
        # written): the version check lets the greeting into an empty conversation only.
        stored = await self._retrying(
            lambda: store_greeting(self.store, key, persona, user, self._clock())
        )
        if stored is not None:
            return persona, [stored]
        return persona, await self.recent_turns(owner, persona.id, scope)

    async def recent_turns(self, owner: OwnerId, persona_id: str, scope: str) -> list[Turn]:
        """The turns a user sees when opening a conversation, oldest first."""
        key = ConversationKey(owner, persona_id, scope)
        window = await self._retrying(
            lambda: self.store.load_window(key, self.settings.window_max_turns)
        )
        return bounded_window(paired(window.turns), self.settings.window_max_chars)


@dataclass(slots=True)
class _Prepared:
    """A stored user turn, ready to be answered."""

    key: ConversationKey
    persona: Persona
    context: list[Turn]
    message: Turn
    version: int
    #: The owner's epoch when the message began: its writes are refused after a /forget.
    epoch: int
    old_state: Mapping[str, Any]
    state: dict[str, Any]
    started: float
    summary: StoredSummary
    summariser: Summariser | None
    #: Turns that left the window and are not in the summary yet.
    dropped: list[Turn]
    #: Who the user says they are, and what a /retry replaces.
    reply_context: ReplyContext = field(default_factory=ReplyContext)
    #: The holder of the conversation's lease while this message has it (bot.leases).
    lease: str | None = None
    #: When the lease was taken or last renewed (the engine's monotonic clock).
    lease_taken: float = 0.0
    #: Which backend answered and what it cost, filled in as the reply streams.
    outcome: ReplyOutcome = field(default_factory=ReplyOutcome)
    #: The persona the speaker chose, when its card is gone (replies say so).
    missing_persona: str | None = None
    #: A /retry of a message whose images this process no longer holds.
    images_lost: bool = False

    @property
    def backend_args(self) -> tuple[Persona, list[Turn], Turn, dict[str, Any]]:
        return self.persona, self.context, self.message, self.state


def _stored_reply(turns: Sequence[Turn], message: Turn) -> Turn | None:
    """The newest reply to ``message`` in ``turns``, if any."""
    found = None
    for turn in turns:
        if turn.role == "assistant" and turn.reply_to == message.seq:
            found = turn
    return found


def _last_user_turn(turns: Sequence[Turn]) -> tuple[list[Turn], Turn] | None:
    for index in range(len(turns) - 1, -1, -1):
        if turns[index].role == "user":
            return list(turns[:index]), turns[index]
    return None


class _FirstTry(NamedTuple):
    """What :meth:`Engine._read_and_append` read and stored, in one store call."""

    epoch: int | None
    window: ConversationWindow
    version: int
    stored: tuple[Turn, ...]
    lease: str


@dataclass(frozen=True, slots=True)
class _KeptReply:
    """The answer to a ``/retry`` that found its lost reply stored after all."""

    done: ReplyDone


def _resends(turn: NewTurn, unsure: Sequence[NewTurn]) -> bool:
    """Whether ``turn`` says again the one user turn of an append of unknown outcome."""
    return len(unsure) == 1 and (
        unsure[0].role,
        unsure[0].text,
        unsure[0].author,
        unsure[0].attachments,
    ) == (turn.role, turn.text, turn.author, turn.attachments)


def _is_reply(unsure: Sequence[NewTurn]) -> bool:
    return len(unsure) == 1 and unsure[0].role == "assistant"
