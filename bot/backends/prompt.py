"""A persona card and a conversation window as chat messages (the OpenAI chat format),
laid out the way SillyTavern lays out a chat-completion prompt, which is what card
authors write and test for.

1. One system message (SillyTavern with "squash system messages"): the main prompt
   (the card's ``system_prompt`` replaces the default, ``{{original}}`` in it standing
   for the default), lorebook entries placed before the character, the user's own
   persona, the description (with entries placed before or after it), the personality,
   the scenario, the card's ``knowledge`` (PersonaBridge's own always-on facts),
   entries placed after the character, and the running summary.
2. The example dialogue, each ``<START>`` block as separate example messages: a
   ``[Example Chat]`` system message, then the turns as system messages named
   ``example_user``/``example_assistant``; ``[Start a new Chat]`` closes them. Examples
   are what gives way first: whole blocks, from the last, when the prompt would not fit
   the context (:attr:`PromptOptions.context_tokens`).
3. The chat: the window's turns, which start with the greeting when the conversation
   is young (it is stored as the first assistant turn), then the message being
   answered. The card's ``depth_prompt`` (SillyTavern's character's note) and lorebook
   entries with a depth go in at their depth (0: after the last message).
4. The post-history instructions, last (``{{original}}``: the default, empty unless
   set).

Macros (:mod:`bot.macros`) expand in the card's text, never in what people wrote.
Consecutive turns of one role (a message whose reply failed, then the next message)
are joined into one message: several chat templates (Mistral's, Llama 2's) refuse
roles that do not alternate.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, NotRequired, TypedDict

from bot.backends.base import ReplyContext
from bot.dialogue import ExampleBlock
from bot.greetings import greeting_text
from bot.lorebook import Activation, Placement, ScanInput, activate, estimate_tokens
from bot.macros import MacroContext, expand_macros
from bot.messages import Turn, turn_text
from bot.personas import Persona

#: SillyTavern's default main prompt, for cards without a system prompt.
DEFAULT_SYSTEM_PROMPT = (
    "Write {{char}}'s next reply in a fictional chat between {{char}} and {{user}}. "
    "Stay in character."
)
#: Tokens kept free for the answer when the backend does not say how long it may be.
DEFAULT_REPLY_TOKENS = 512
EXAMPLE_CHAT = "[Example Chat]"
NEW_CHAT = "[Start a new Chat]"

SUMMARY_SYSTEM_PROMPT = (
    "You keep the running summary of a long chat between {{char}} and {{user}}. Merge "
    "the summary so far and the new lines into one updated summary: third person, past "
    "tense, plain prose; keep names, facts about {{user}}, decisions, promises and open "
    "questions; drop small talk. Answer with the summary only, at most {words} words."
)


class ChatMessage(TypedDict):
    role: Literal["system", "user", "assistant"]
    content: str
    name: NotRequired[str]


@dataclass(frozen=True, slots=True)
class PromptOptions:
    """How big the prompt may be, and the defaults a card's prompts replace.

    ``context_tokens`` is the model's context; ``reply_tokens`` is kept free for the
    answer. The lorebook gets ``lorebook_share`` of the context unless the card's book
    sets a ``token_budget``. Token counts are estimates (:func:`estimate_tokens`).
    """

    context_tokens: int = 8192
    reply_tokens: int = DEFAULT_REPLY_TOKENS
    lorebook_share: float = 0.25
    main_prompt: str = DEFAULT_SYSTEM_PROMPT
    post_history: str = ""
    rng: random.Random = field(default_factory=random.Random, compare=False)
    clock: Callable[[], datetime] | None = field(default=None, compare=False)


def chat_messages(
    persona: Persona,
    window: Sequence[Turn],
    message: Turn,
    summary: str = "",
    *,
    context: ReplyContext | None = None,
    options: PromptOptions | None = None,
) -> list[ChatMessage]:
    """Everything a chat model needs to write the persona's reply to ``message``."""
    options = options or PromptOptions()
    user = message.author.strip() or "User"
    macros = _macro_context(persona, user, message, context, options)
    turns = (*window, message)
    lore = activate(
        persona.lorebook,
        _scan_input(persona, turns, user, macros.seed),
        budget_tokens=int(options.context_tokens * options.lorebook_share),
    )
    system = ChatMessage(
        role="system", content=_system_text(persona, lore, macros, options, context, summary)
    )
    chat = _chat(turns, lore, persona, macros)
    closing = _post_history(persona, macros, options)
    used = sum(estimate_tokens(m["content"]) for m in (system, *chat, *closing))
    room = options.context_tokens - options.reply_tokens - used
    examples = _examples(persona.example_dialogue, lore, macros, room)
    return [system, *examples, *chat, *closing]


def _macro_context(
    persona: Persona,
    user: str,
    message: Turn,
    context: ReplyContext | None,
    options: PromptOptions,
) -> MacroContext:
    seed = context.seed if context is not None else ""
    if options.clock is None:
        return MacroContext(persona.char_name, user, seed=seed, rng=options.rng)
    return MacroContext(persona.char_name, user, seed=seed, rng=options.rng, clock=options.clock)


def _scan_input(persona: Persona, turns: Sequence[Turn], user: str, seed: str) -> ScanInput:
    return ScanInput(
        messages=[turn_text(t) for t in turns],
        character_messages=sum(t.role == "assistant" for t in turns),
        greeting_index=_greeting_index(persona, turns, user, seed),
    )


def _greeting_index(persona: Persona, turns: Sequence[Turn], user: str, seed: str) -> int | None:
    """Which greeting opened the chat (0: ``first_mes``, 1..: the alternates), when the
    window still starts with it; for V3's ``@@is_greeting``."""
    if not turns or turns[0].role != "assistant":
        return None
    first = turns[0].text.strip()
    written = [i for i, g in enumerate(persona.greetings) if g.strip()]
    for number, index in enumerate(written, start=1):
        if greeting_text(persona, user, number, seed=seed) == first:
            return index
    return None


def _system_text(
    persona: Persona,
    lore: Activation,
    macros: MacroContext,
    options: PromptOptions,
    context: ReplyContext | None,
    summary: str,
) -> str:
    def card(text: str) -> str:
        return expand_macros(text, macros).strip()

    main = options.main_prompt
    if persona.system_prompt.strip():
        original = expand_macros(options.main_prompt, macros)
        main = expand_macros(persona.system_prompt, macros.with_original(original))

    def entries(placement: Placement) -> str:
        # SillyTavern joins the entries of one place with a newline, in order.
        return "\n".join(text for text in map(card, lore.texts(placement)) if text)

    parts = [card(main), entries("before_char")]
    if context is not None and context.user.description.strip():
        # The user wrote it: only the two names are filled in, as SillyTavern does.
        parts.append(persona.expand(context.user.description.strip(), macros.user))
    parts += [entries("before_desc"), card(persona.description), entries("after_desc")]
    personality = _section(card(persona.personality), entries("personality"))
    if personality:
        parts.append(f"{macros.char}'s personality: {personality}")
    scenario = _section(card(persona.scenario), entries("scenario"))
    if scenario:
        parts.append(f"Scenario: {scenario}")
    if persona.knowledge:
        facts = "\n".join(f"- {card(fact)}" for fact in persona.knowledge)
        parts.append(f"What {macros.char} knows:\n{facts}")
    parts.append(entries("after_char"))
    if summary.strip():
        parts.append(f"Summary of the conversation so far:\n{summary.strip()}")
    return "\n\n".join(part for part in parts if part)


def _section(*texts: str) -> str:
    return "\n".join(text for text in texts if text)


def _examples(
    blocks: Sequence[ExampleBlock], lore: Activation, macros: MacroContext, room: int
) -> list[ChatMessage]:
    """The example blocks that fit in ``room`` tokens, in order, as example messages."""
    before = [_system(expand_macros(t, macros)) for t in lore.texts("before_examples")]
    after = [_system(expand_macros(t, macros)) for t in lore.texts("after_examples")]
    room -= sum(estimate_tokens(m["content"]) for m in (*before, *after))
    out: list[ChatMessage] = []
    for block in blocks:
        messages = [_system(EXAMPLE_CHAT)]
        for line in block:
            name = "example_user" if line.role == "user" else "example_assistant"
            text = expand_macros(line.text, macros).strip()
            messages.append(ChatMessage(role="system", content=text, name=name))
        cost = sum(estimate_tokens(m["content"]) for m in messages)
        if cost > room - estimate_tokens(NEW_CHAT):
            break  # this block and the ones after it give way
        out += messages
        room -= cost
    if not out and not before and not after:
        return []
    return [*before, *out, *after, _system(NEW_CHAT)]


def _chat(
    turns: Sequence[Turn], lore: Activation, persona: Persona, macros: MacroContext
) -> list[ChatMessage]:
    chat: list[ChatMessage] = []
    for turn in turns:
        _add(chat, turn.role, turn_text(turn))
    inserts: list[tuple[int, ChatMessage]] = []
    for entry in lore.in_chat:
        text = expand_macros(entry.text, macros).strip()
        inserts.append((entry.depth, ChatMessage(role=entry.role, content=text)))
    note = persona.depth_prompt
    if note is not None:
        text = expand_macros(note.prompt, macros).strip()
        inserts.append((note.depth, ChatMessage(role=note.role, content=text)))
    # Deepest first, so that each depth counts from the end of the chat as it was.
    for depth, inserted in sorted(inserts, key=lambda pair: -pair[0]):
        if inserted["content"]:
            chat.insert(max(len(chat) - depth, 0), inserted)
    return chat


def _post_history(
    persona: Persona, macros: MacroContext, options: PromptOptions
) -> list[ChatMessage]:
    default = expand_macros(options.post_history, macros).strip()
    text = default
    if persona.post_history_instructions.strip():
        text = expand_macros(persona.post_history_instructions, macros.with_original(default))
    return [_system(text.strip())] if text.strip() else []


def _system(text: str) -> ChatMessage:
    return ChatMessage(role="system", content=text)


def summary_messages(
    persona: Persona, summary: str, turns: Sequence[Turn], *, max_chars: int
) -> list[ChatMessage]:
    """The request that folds ``turns`` into ``summary`` (see :data:`SUMMARY_SYSTEM_PROMPT`)."""
    user = next((t.author.strip() for t in turns if t.role == "user" and t.author.strip()), "")
    user = user or "User"
    words = max(max_chars // 7, 20)
    instructions = persona.expand(SUMMARY_SYSTEM_PROMPT.replace("{words}", str(words)), user)
    lines = "\n".join(
        f"{persona.name if t.role == 'assistant' else (t.author.strip() or user)}: {turn_text(t)}"
        for t in turns
    )
    request = (
        f"Summary so far:\n{summary.strip() or '(none yet)'}\n\n"
        f"New lines:\n{lines}\n\nWrite the updated summary."
    )
    return [
        ChatMessage(role="system", content=instructions),
        ChatMessage(role="user", content=request),
    ]


def _add(messages: list[ChatMessage], role: Literal["user", "assistant"], text: str) -> None:
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"] = f"{messages[-1]['content']}\n\n{text}"
    else:
        messages.append(ChatMessage(role=role, content=text))
