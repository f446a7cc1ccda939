"""Linking with consent: ``/link CODE`` asks, only the same identity's confirmation binds.

A link code can be sent to anyone (a Telegram deep link is one tap), so the code alone
must never bind: whoever sends it is first told which web account they are about to
join and what happens to what they wrote as a guest, and a :class:`PendingLink` waits
in the store (several workers may serve one bot) for ``/link confirm`` (or the button
that sends it) from the same identity within ``confirm_seconds``. The code is peeked at
first and consumed only by the confirmation; if it expired or was used in between,
nothing is linked and the user is told to make a new one.

* ``/link confirm`` links and leaves the guest's history with the guest identity (it is
  there again after ``/unlink``); ``/link confirm move`` moves it into the account.
* ``/link cancel`` drops the pending link (the code stays usable until it expires).
* An identity linked already is never re-bound: ``/unlink`` first.
* The account's preferences (its persona) are kept; the confirmation names the persona
  the user now talks to.
* The account's owner is told of every link and unlink (:mod:`bot.notices`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from bot.limits import RateLimiter
from bot.linking import hash_link_code, looks_like_link_code
from bot.messages import Action, CommandAnswer, OwnerId, account_owner
from bot.notices import AccountNotices
from bot.personas import Persona
from bot.store.base import LinkingStore, PendingLink

if TYPE_CHECKING:
    from bot.messages import Speaker

log = logging.getLogger(__name__)

CONFIRM = "/link confirm"
CONFIRM_MOVE = "/link confirm move"
CANCEL = "/link cancel"
#: Preference set by ``/forget``: dropped on a link (the account now holds more than
#: what the user agreed to forget).
FORGET_PREFERENCE = "forget_requested_at"


def platform_name(platform: str) -> str:
    return {"telegram": "Telegram", "discord": "Discord", "console": "terminal"}.get(
        platform, platform
    )


class LinkConsent:
    """``/link``, ``/link confirm [move]``, ``/link cancel`` and ``/unlink``."""

    def __init__(
        self,
        store: LinkingStore,
        notices: AccountNotices,
        *,
        clock: Callable[[], float],
        attempts: RateLimiter,
        confirm_seconds: float,
        persona_of: Callable[[OwnerId], Awaitable[Persona]],
    ):
        self._store = store
        self._notices = notices
        self._clock = clock
        self._attempts = attempts
        self._confirm_seconds = confirm_seconds
        self._persona_of = persona_of

    @property
    def _minutes(self) -> int:
        return max(1, round(self._confirm_seconds / 60))

    async def link(self, speaker: Speaker, args: str) -> str | CommandAnswer:
        """``/link`` with whatever followed it."""
        if speaker.incoming.account_id is not None:
            return (
                "You are signed in here already; /link is for Discord, Telegram and the terminal."
            )
        words = args.lower().split()
        if words[:1] == ["confirm"]:
            return await self.confirm(speaker, move=words[1:2] == ["move"])
        if words == ["cancel"]:
            return await self.cancel(speaker)
        if not args:
            return (
                "Send /link CODE with the code from your account page on the web "
                "(log in, then 'Link a platform'). I ask you to confirm before linking."
            )
        return await self.request(speaker, args)

    async def request(self, speaker: Speaker, code: str) -> str | CommandAnswer:
        """The first step: name the account, keep a pending link, ask to confirm."""
        incoming = speaker.incoming
        where = platform_name(incoming.platform)
        if speaker.account_id is not None:
            return await self._linked_already(speaker)
        if not self._attempts.try_acquire(incoming.identity):
            wait = self._attempts.retry_after(incoming.identity)
            return f"Too many link attempts. Try again in {int(wait // 60) + 1} minutes."
        if not looks_like_link_code(code):
            return "That doesn't look like a link code. Codes look like ABCD-EFGH."
        now = self._clock()
        code_hash = hash_link_code(code)
        account_id = await self._store.peek_link_code(code_hash, now)
        account = await self._store.get_account(account_id) if account_id else None
        if account is None:
            return "That code is unknown, used or expired. Make a new one on your account page."
        expires_at = now + self._confirm_seconds
        await self._store.put_pending_link(
            PendingLink(incoming.identity, account.id, code_hash, expires_at)
        )
        name = account.username
        text = (
            f"This code links your {where} account ({incoming.display_name}) to the "
            f'PersonaBridge web account "{name}". Only go ahead if "{name}" is your own '
            "account: its owner will read everything you write here from then on.\n\n"
            f"What you wrote here so far stays with this {where} account as a guest (you "
            f'get it back with /unlink), unless you choose to move it into "{name}".\n\n'
            f"Nothing is linked yet. Within {self._minutes} minutes, press a button or send:\n"
            f"{CONFIRM} — link, and keep my guest history here\n"
            f"{CONFIRM_MOVE} — link, and move my guest history into the account\n"
            f"{CANCEL} — don't link"
        )
        actions = (
            Action(f"Link to {name}"[:60], CONFIRM),
            Action("Link and move my history", CONFIRM_MOVE),
            Action("Cancel", CANCEL),
        )
        return CommandAnswer(text, actions)

    async def confirm(self, speaker: Speaker, *, move: bool) -> str:
        """The second step: bind, if this identity has a live pending link and its code
        is still unused."""
        incoming = speaker.incoming
        identity = incoming.identity
        now = self._clock()
        pending = await self._store.take_pending_link(identity, now)
        if pending is None:
            return (
                "No link is waiting for your confirmation (it expires after "
                f"{self._minutes} minutes). Send /link CODE again."
            )
        if speaker.account_id is not None:
            return await self._linked_already(speaker)
        account_id = await self._store.take_link_code(pending.code_hash, now)
        account = await self._store.get_account(account_id) if account_id else None
        if account is None or account.id != pending.account_id:
            return (
                "That code was used or expired in the meantime, so nothing was linked. "
                "Make a new one on your account page."
            )
        await self._store.link_identity(
            identity, incoming.display_name, account.id, now, move_guest_data=move
        )
        owner = account_owner(account.id)
        await self._store.set_preference(owner, FORGET_PREFERENCE, None)
        log.info("linked a %s identity to account %s", incoming.platform, account.id)
        where = platform_name(incoming.platform)
        await self._notices.tell(
            account.id,
            f"Your account was linked to the {where} account {incoming.display_name} "
            f"(id {incoming.user_id}). If that was not you, unlink it on your account page.",
            skip=identity,
        )
        persona = await self._persona_of(owner)
        history = (
            "What you wrote here as a guest moved into the account."
            if move
            else f"What you wrote here as a guest stays with this {where} account "
            "(you get it back with /unlink)."
        )
        return (
            f"Linked: this {where} account now speaks for {account.username}. {history} "
            f"You now talk to {persona.name}, the account's persona (/persona to switch). "
            "Send /unlink to undo."
        )

    async def cancel(self, speaker: Speaker) -> str:
        if await self._store.take_pending_link(speaker.incoming.identity, self._clock()) is None:
            return "Nothing to cancel: no link is waiting for you."
        return "Cancelled: nothing was linked."

    async def unlink(self, speaker: Speaker, args: str) -> str:
        """``/unlink``: the identity is a guest again; the account keeps its history."""
        incoming = speaker.incoming
        where = platform_name(incoming.platform)
        if incoming.account_id is not None:
            return "You are signed in here; unlink platforms on your account page."
        if speaker.account_id is None:
            return f"This {where} account is not linked to any web account."
        account = await self._store.get_account(speaker.account_id)
        await self._store.unlink_identity(incoming.identity)
        log.info("unlinked a %s identity from account %s", incoming.platform, speaker.account_id)
        name = account.username if account else "the account"
        if account is not None:
            await self._notices.tell(
                account.id,
                f"The {where} account {incoming.display_name} (id {incoming.user_id}) was "
                "unlinked from your account.",
                skip=incoming.identity,
            )
        return (
            f"Unlinked: this {where} account no longer speaks for {name}. You chat here as "
            f"a guest again: {name}'s history stays with the account, and what you wrote "
            "here as a guest before linking is back."
        )

    async def _linked_already(self, speaker: Speaker) -> str:
        assert speaker.account_id is not None
        account = await self._store.get_account(speaker.account_id)
        name = account.username if account else "an account"
        where = platform_name(speaker.incoming.platform)
        return (
            f"This {where} account is linked to {name} already. To link it to another "
            "account, send /unlink first, then the new code."
        )
