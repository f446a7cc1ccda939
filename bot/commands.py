"""The command set, the same words on every platform.

:data:`COMMANDS` describes them for adapters (Discord slash commands, Telegram's
``setMyCommands``, ``/help``); :class:`CommandHandlers` answers every command except
``/retry``, which streams a reply and so lives with the chat flow in the engine.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot import userpersona
from bot.greetings import (
    conversation_seed,
    greeting_list,
    greeting_text,
    greetings,
    store_greeting,
)
from bot.link_consent import FORGET_PREFERENCE as FORGET_PREFERENCE  # re-exported
from bot.link_consent import LinkConsent
from bot.messages import CommandAnswer, ConversationKey, OwnerId, Speaker, UserPersona
from bot.personas import Persona, PersonaLibrary
from bot.store.base import CommandStore, PreferenceStore, Usage

log = logging.getLogger(__name__)

PERSONA_PREFERENCE = "persona"
#: ``"on"`` when the owner asked for replies read aloud too (``/voice on``; see bot.speech).
VOICE_PREFERENCE = "voice"
VOICE_NOT_CONFIGURED = (
    "Voice replies are not set up here (no speech service is configured), so replies stay text."
)


@dataclass(frozen=True, slots=True)
class CommandInfo:
    name: str
    args: str
    description: str


COMMANDS: tuple[CommandInfo, ...] = (
    CommandInfo("start", "", "greeting from your persona"),
    CommandInfo("help", "", "what I understand"),
    CommandInfo("reset", "", "start a new conversation (the old one stays until /forget)"),
    CommandInfo(
        "greeting", "[N]", "list the greetings, or start a new conversation with greeting N"
    ),
    CommandInfo("me", "[TEXT]", "tell me who you are (/me name NAME, /me clear); /me shows it"),
    CommandInfo("persona", "[id]", "show your persona, or switch to another"),
    CommandInfo("personas", "", "list the personas you can talk to"),
    CommandInfo("link", "CODE", "link this account to your web account (asks you to confirm)"),
    CommandInfo("unlink", "", "stop speaking for your web account here; chat as a guest"),
    CommandInfo("retry", "", "write the last reply again"),
    CommandInfo("voice", "[on|off]", "also send replies as voice messages; /voice shows it"),
    CommandInfo("whoami", "", "who I think you are, and where your history lives"),
    CommandInfo("forget", "", "delete all your conversations and settings (asks first)"),
)
COMMAND_NAMES = frozenset(c.name for c in COMMANDS)


def parse_command(text: str) -> tuple[str, str] | None:
    """``"/persona@my_bot  ada"`` -> ``("persona", "ada")``; None when not a command."""
    if not text.startswith("/"):
        return None
    head, _, rest = text[1:].partition(" ")
    name = head.split("@", 1)[0].lower()
    if not name:
        return None
    return name, rest.strip()


#: Commands that only show something: they do not spend the chat rate-limit budget.
READ_ONLY_COMMANDS = frozenset({"help", "whoami", "personas"})


#: Commands that only show something when given no argument (with one, they change it).
SHOW_WITHOUT_ARGUMENT = frozenset({"persona", "greeting", "me", "voice"})


def is_read_only(text: str) -> bool:
    """``/help``, ``/whoami``, ``/personas``; ``/persona``, ``/greeting``, ``/me`` and
    ``/voice`` without an argument."""
    command = parse_command(text)
    if command is None:
        return False
    name, args = command
    return name in READ_ONLY_COMMANDS or (name in SHOW_WITHOUT_ARGUMENT and not args)


async def set_persona(store: PreferenceStore, owner: OwnerId, persona_id: str) -> None:
    await store.set_preference(owner, PERSONA_PREFERENCE, persona_id)


def usage_text(usage: Usage) -> str:
    """What the owner's messages have cost in model tokens, for ``/whoami``."""
    if not usage.replies:
        return "Tokens used: none recorded yet."
    total = usage.prompt_tokens + usage.completion_tokens
    return (
        f"Tokens used: {total:,} ({usage.prompt_tokens:,} prompt + "
        f"{usage.completion_tokens:,} completion) in {usage.replies:,} model requests."
    )


def help_text(persona: Persona) -> str:
    lines = [f"You are talking to {persona.name}. Just write to chat. Commands:"]
    lines += [f"/{c.name}{' ' + c.args if c.args else ''} — {c.description}" for c in COMMANDS]
    return "\n".join(lines)


class CommandHandlers:
    """Answers commands with text. Every method takes the speaker and the argument text."""

    def __init__(
        self,
        store: CommandStore,
        personas: PersonaLibrary,
        *,
        clock: Callable[[], float],
        linking: LinkConsent,
        forget_confirm_seconds: float,
        voice_ready: Callable[[], bool] = lambda: False,
    ):
        self._store = store
        self._personas = personas
        self._clock = clock
        self._linking = linking
        self._forget_confirm_seconds = forget_confirm_seconds
        #: Whether replies can be read aloud here (SPEECH__* set): /voice on says so if not.
        self._voice_ready = voice_ready

    def handler(self, name: str) -> Callable[[Speaker, str], Awaitable[str | CommandAnswer]] | None:
        return {
            "start": self.start,
            "help": self.help,
            "reset": self.reset,
            "greeting": self.greeting,
            "me": self.me,
            "persona": self.persona,
            "personas": self.list_personas,
            "link": self._linking.link,
            "unlink": self._linking.unlink,
            "whoami": self.whoami,
            "voice": self.voice,
            "forget": self.forget,
        }.get(name)

    async def start(self, speaker: Speaker, args: str) -> str | CommandAnswer:
        if args.lower().startswith("link-"):  # a Telegram deep link: asks, never binds
            return await self._linking.link(speaker, args[5:])
        persona = speaker.persona
        greeting = await self._greet(speaker.key, persona, speaker.user_name)
        greeting = greeting or f"Hello, I am {persona.name}."
        return f"{greeting}\n\n(Send /help to see what else I can do.)"

    async def _greet(self, key: ConversationKey, persona: Persona, user: str) -> str:
        """The greeting to show: stored as the first turn when the conversation is
        empty (a new one starts with it); an ongoing one only shows it again."""
        stored = await store_greeting(self._store, key, persona, user, self._clock())
        if stored is not None:
            return stored.text
        return greeting_text(persona, user, seed=conversation_seed(key))

    async def help(self, speaker: Speaker, args: str) -> str:
        return help_text(speaker.persona)

    async def reset(self, speaker: Speaker, args: str) -> str:
        return await self._new_conversation(speaker, 1)

    async def greeting(self, speaker: Speaker, args: str) -> str:
        persona = speaker.persona
        if not args:
            return greeting_list(persona, speaker.user_name)
        count = len(greetings(persona))
        number = int(args) if args.isdecimal() and len(args) < 6 else 0
        if not 1 <= number <= count:
            return (
                f"Choose a greeting from 1 to {count}; /greeting lists them."
                if count
                else (f"{persona.name} has no greeting.")
            )
        return await self._new_conversation(speaker, number)

    async def _new_conversation(self, speaker: Speaker, number: int) -> str:
        """Archive the current conversation and start one with greeting ``number``."""
        await self._store.reset_conversation(speaker.key)
        persona = speaker.persona
        stored = await store_greeting(
            self._store, speaker.key, persona, speaker.user_name, self._clock(), number
        )
        note = f"New conversation with {persona.name}. The old one is kept until /forget."
        return f"{note}\n\n{stored.text}" if stored else note

    async def me(self, speaker: Speaker, args: str) -> str:
        """``/me`` shows, ``/me TEXT`` describes, ``/me name NAME`` names, ``/me clear``
        forgets the speaker's own persona."""
        current = speaker.user
        head, _, rest = args.partition(" ")
        try:
            if not args:
                return userpersona.describe(current, speaker.incoming.display_name)
            if args.lower() == "clear":
                await userpersona.save(self._store, speaker.owner, UserPersona())
                return f"Forgotten. I know you as {speaker.incoming.display_name} again."
            if head.lower() == "name":
                wanted = UserPersona(rest, current.description)
                kept = await userpersona.save(self._store, speaker.owner, wanted)
                return f"I'll call you {kept.name or speaker.incoming.display_name}."
            kept = await userpersona.save(
                self._store, speaker.owner, UserPersona(current.name, args)
            )
        except userpersona.InvalidUserPersona as exc:
            return f"{exc} Nothing was changed."
        return userpersona.describe(kept, speaker.incoming.display_name)

    async def persona(self, speaker: Speaker, args: str) -> str:
        if not args:
            return (
                f"You are talking to {speaker.persona.name} ({speaker.persona.id}). "
                "Switch with /persona ID; see /personas."
            )
        chosen = self._personas.find(args.split()[0].lower())
        if chosen is None:
            return f"I don't know a persona called {args!r}. " + self._persona_list()
        await set_persona(self._store, speaker.owner, chosen.id)
        key = ConversationKey(speaker.owner, chosen.id, speaker.incoming.scope)
        greeting = await self._greet(key, chosen, speaker.user_name)
        return f"You are now talking to {chosen.name}.\n\n{greeting}".rstrip()

    async def list_personas(self, speaker: Speaker, args: str) -> str:
        return self._persona_list(current=speaker.persona.id)

    def _persona_list(self, current: str | None = None) -> str:
        lines = ["Personas:"]
        for p in self._personas:
            summary = p.expand(p.description, "you").strip().split("\n", 1)[0][:120]
            mark = " (current)" if p.id == current else ""
            lines.append(f"• {p.id} — {p.name}{mark}{': ' + summary if summary else ''}")
        lines.append("Switch with /persona ID.")
        return "\n".join(lines)

    async def whoami(self, speaker: Speaker, args: str) -> str:
        incoming = speaker.incoming
        lines = [f"You are {incoming.display_name} on {incoming.platform} (id {incoming.user_id})."]
        if speaker.user.name:
            lines.append(f"Personas call you {speaker.user.name} (/me).")
        account_id = speaker.account_id
        account = await self._store.get_account(account_id) if account_id else None
        if account is not None:
            lines.append(f"Linked to the account {account.username}.")
        else:
            lines.append("Not linked: you chat as a guest. Link with /link CODE.")
        where = "private chat" if incoming.private else "this group (your own history here)"
        lines.append(f"Persona: {speaker.persona.name} ({speaker.persona.id}); history: {where}.")
        lines.append(usage_text(await self._store.get_usage(speaker.owner)))
        return "\n".join(lines)

    async def voice(self, speaker: Speaker, args: str) -> str:
        """``/voice`` shows, ``/voice on`` and ``/voice off`` set whether replies also
        come as voice messages (for the owner, on every linked platform). Where no
        speech service is set up, ``/voice on`` says so and keeps nothing."""
        choice = args.strip().lower()
        if choice not in ("", "on", "off"):
            return "Send /voice on or /voice off (/voice shows which it is)."
        ready = self._voice_ready()
        if choice == "on" and not ready:
            return VOICE_NOT_CONFIGURED
        if choice:
            on = choice == "on"
            await self._store.set_preference(speaker.owner, VOICE_PREFERENCE, "on" if on else None)
        else:
            prefs = await self._store.get_preferences(speaker.owner)
            on = prefs.get(VOICE_PREFERENCE) == "on"
        if on and ready:
            return (
                f"Voice replies: on. {speaker.persona.name}'s replies also come as voice "
                "messages, after the text. /voice off stops them."
            )
        if not ready:
            return "Voice replies: off. " + VOICE_NOT_CONFIGURED
        return "Voice replies: off. /voice on sends replies as voice messages too."

    async def forget(self, speaker: Speaker, args: str) -> str:
        now = self._clock()
        prefs = await self._store.get_preferences(speaker.owner)
        if args.lower() in ("confirm", "yes"):
            requested = float(prefs.get(FORGET_PREFERENCE, "0") or 0)
            if now - requested <= self._forget_confirm_seconds:
                await self._store.forget_owner(speaker.owner)
                log.info("owner forgot everything")
                return "Done: every conversation and setting of yours is deleted."
            return "There is no pending /forget (or it expired). Send /forget first."
        await self._store.set_preference(speaker.owner, FORGET_PREFERENCE, repr(now))
        minutes = int(self._forget_confirm_seconds // 60)
        scope = "your account" if speaker.account_id else "you"
        return (
            f"This deletes every conversation and setting of {scope}, on every platform, "
            f"for good. To go ahead, send /forget confirm within {minutes} minutes."
        )
