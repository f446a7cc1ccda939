"""A persona card and a conversation window as chat messages (the OpenAI chat format).

The layout follows SillyTavern's chat-completion prompt, which is what card authors
write for: one system message made of the card (system prompt, description,
personality, scenario, what the persona knows, example dialogue) and the running
summary; the window's turns in order; the message being answered; then the card's
post-history instructions as a last system message. ``{{char}}`` and ``{{user}}``
expand in the card's text, never in what people wrote.

Consecutive turns of one role (a message whose reply failed, then the next message)
are joined into one message: several chat templates (Mistral's, Llama 2's) refuse
roles that do not alternate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, TypedDict

from bot.messages import Turn, turn_text
from bot.personas import Persona

#: SillyTavern's default main prompt, for cards without a system prompt.
DEFAULT_SYSTEM_PROMPT = (
    "Write {{char}}'s next reply in a fictional chat between {{char}} and {{user}}. "
    "Stay in character."
)

SUMMARY_SYSTEM_PROMPT = (
    "You keep the running summary of a long chat between {{char}} and {{user}}. Merge "
    "the summary so far and the new lines into one updated summary: third person, past "
    "tense, plain prose; keep names, facts about {{user}}, decisions, promises and open "
    "questions; drop small talk. Answer with the summary only, at most {words} words."
)


class ChatMessage(TypedDict):
    role: Literal["system", "user", "assistant"]
    content: str


def system_prompt(persona: Persona, user: str, summary: str = "") -> str:
    """The card (and the running summary) as one system prompt, for ``user``."""
    parts = [persona.system_prompt.strip() or DEFAULT_SYSTEM_PROMPT]
    if persona.description.strip():
        parts.append(persona.description.strip())
    if persona.personality.strip():
        parts.append(f"{{{{char}}}}'s personality: {persona.personality.strip()}")
    if persona.scenario.strip():
        parts.append(f"Scenario: {persona.scenario.strip()}")
    if persona.knowledge:
        facts = "\n".join(f"- {fact}" for fact in persona.knowledge)
        parts.append(f"What {{{{char}}}} knows:\n{facts}")
    if persona.examples:
        examples = "\n\n".join(
            f"{{{{user}}}}: {ex.user}\n{{{{char}}}}: {ex.char}" for ex in persona.examples
        )
        parts.append(f"Example dialogue (style only, not part of this chat):\n{examples}")
    text = persona.expand("\n\n".join(parts), user)
    if summary.strip():
        text += f"\n\nSummary of the conversation so far:\n{summary.strip()}"
    return text


def chat_messages(
    persona: Persona, window: Sequence[Turn], message: Turn, summary: str = ""
) -> list[ChatMessage]:
    """Everything a chat model needs to write the persona's reply to ``message``."""
    user = message.author.strip() or "User"
    messages = [ChatMessage(role="system", content=system_prompt(persona, user, summary))]
    for turn in (*window, message):
        _add(messages, turn.role, turn_text(turn))
    if persona.post_history_instructions.strip():
        content = persona.expand(persona.post_history_instructions.strip(), user)
        messages.append(ChatMessage(role="system", content=content))
    return messages


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
    last = messages[-1]
    if last["role"] == role:
        last["content"] = f"{last['content']}\n\n{text}"
    else:
        messages.append(ChatMessage(role=role, content=text))
