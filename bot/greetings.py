"""The greeting a conversation starts with, stored as its first assistant turn.

As in SillyTavern, a card's greeting (``first_mes``, or one of its alternate greetings)
is the first message of every chat: it sets the scene, and the model sees it as the
persona's first turn. So it is stored in the conversation like any reply: every
backend's window, the export and the web history have it. It is stored once, when the
conversation is still empty: by ``/start``, ``/reset``, ``/persona ID`` and
``/greeting N``, or just before the first message of a conversation that has none. A
conversation that began before greetings were stored simply has none.
"""

from __future__ import annotations

import random

from bot.errors import VersionConflict
from bot.macros import MacroContext, expand_macros
from bot.messages import ConversationKey, NewTurn, Turn
from bot.personas import Persona
from bot.store.base import ConversationStore

#: How much of each greeting ``/greeting`` lists.
PREVIEW_CHARS = 80


def greetings(persona: Persona) -> list[str]:
    """The persona's greetings as written: ``first_mes`` first, then the alternates
    (empty ones left out). ``/greeting N`` counts from 1 in this list."""
    return [g for g in (persona.greeting, *persona.alternate_greetings) if g.strip()]


def conversation_seed(key: ConversationKey) -> str:
    """What makes a conversation's macros (``{{pick}}``, a greeting's ``{{random}}``)
    choose the same each time for it, and differently for another."""
    return f"{key.owner}\x1f{key.persona_id}\x1f{key.scope}"


def greeting_text(persona: Persona, user: str, number: int = 1, *, seed: str = "") -> str:
    """Greeting ``number`` (1 = the first) for ``user``, macros expanded (deterministic
    for one ``seed``); "" when the persona has no such greeting."""
    options = greetings(persona)
    if not 1 <= number <= len(options):
        return ""
    rng = random.Random(f"{seed}\x1f{number}")
    context = MacroContext(char=persona.char_name, user=user, seed=seed, rng=rng)
    return expand_macros(options[number - 1], context).strip()


def greeting_turn(
    persona: Persona, user: str, now: float, number: int = 1, *, seed: str = ""
) -> NewTurn | None:
    text = greeting_text(persona, user, number, seed=seed)
    return NewTurn("assistant", text, persona.name, now) if text else None


async def store_greeting(
    store: ConversationStore,
    key: ConversationKey,
    persona: Persona,
    user: str,
    now: float,
    number: int = 1,
) -> Turn | None:
    """Store greeting ``number`` as the first turn of the key's conversation when the
    conversation is empty; None when it is not (or the persona has no greeting). A
    concurrent append wins: the conversation is no longer empty then."""
    turn = greeting_turn(persona, user, now, number, seed=conversation_seed(key))
    if turn is None:
        return None
    window = await store.load_window(key, 1)
    if window.turns:
        return None
    try:
        _, stored = await store.append_turns(key, [turn], window.version, now)
    except VersionConflict:
        return None
    return stored[0]


def greeting_list(persona: Persona, user: str) -> str:
    """The persona's greetings, numbered, for ``/greeting``."""
    options = greetings(persona)
    if not options:
        return f"{persona.name} has no greeting."
    if len(options) == 1:
        return f"{persona.name} has one greeting; /reset starts a new conversation with it."
    lines = [f"{persona.name} can start a conversation in {len(options)} ways:"]
    for number, raw in enumerate(options, 1):
        text = " ".join(persona.expand(raw, user).split())
        short = text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"
        lines.append(f"{number}. {short}")
    lines.append("Send /greeting N to start a new conversation with greeting N.")
    return "\n".join(lines)
