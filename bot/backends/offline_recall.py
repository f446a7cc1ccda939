"""Questions about the conversation itself, answered from the window.

"What did I just ask?", "what did you say?", "what's my name?", "who am I?", "what was
the first thing I said?": a character that was there can answer them, so the offline
brain does, from the turns it is shown (the window) and from who the user says they
are (``/me``). Only whole questions match (the message's lowercase words, a few polite
words around them allowed), so "what did I just ask about Docker" is left to the card.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from bot.messages import Turn, UserPersona

#: How much of an earlier message a recall quotes.
QUOTE_CHARS = 300

_POLITE = r"(?:(?:hey|so|ok|okay|um|sorry|please|remind me|tell me|can you tell me|do you "
_POLITE += r"remember|again|now|then|exactly) )*"
_ASKS: dict[str, str] = {
    "last_user": r"what did i (?:just |last )?(?:ask|say|tell you|write|send)(?: you| to you)?"
    r"(?: before| earlier| last| just now| before this)?|what was my (?:last |previous )?"
    r"(?:question|message)|what (?:was it|did i ask) i (?:asked|said)",
    "last_reply": r"what did you (?:just |last )?(?:say|tell me|answer|reply|write)|what was "
    r"your (?:last |previous )?(?:answer|reply|message)|(?:can you )?(?:say|repeat) that "
    r"(?:again|once more)?",
    "first_user": r"what was (?:the )?first (?:thing|question|message) i (?:asked|said|sent|"
    r"wrote)(?: you)?|what did i (?:ask|say) first",
    "name": r"what (?:s|is) my name|whats my name|do you know my name|what do you call me|"
    r"what am i called|who am i|do you know who i am|what do you know about me",
}
_ASK = re.compile(
    rf"{_POLITE}(?:{'|'.join(f'(?P<{k}>{v})' for k, v in _ASKS.items())})(?: please| again)?"
)
_WORD = re.compile(r"[^\W_]+")


@dataclass(frozen=True, slots=True)
class Recall:
    """What a recall question asks about, and what the window holds for it."""

    kind: str
    text: str  # the earlier turn's text, or the user's name for "name"


def recall_question(text: str) -> str | None:
    """The kind of conversation question ``text`` is (see :data:`_ASKS`), or None."""
    words = " ".join(_WORD.findall(text.lower().replace("'", "")))
    match = _ASK.fullmatch(words)
    return match.lastgroup if match else None


def recall(kind: str, window: Sequence[Turn], message: Turn) -> Recall | None:
    """The earlier turn a question of ``kind`` is about; None when there is none yet."""
    earlier = [t for t in window if t.seq != message.seq]
    users = [t for t in earlier if t.role == "user"]
    if kind == "last_user":
        return Recall(kind, users[-1].text) if users else None
    if kind == "first_user":
        return Recall(kind, users[0].text) if users else None
    if kind == "last_reply":
        replies = [t for t in earlier if t.role == "assistant"]
        return Recall(kind, replies[-1].text) if replies else None
    return None


def quote(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= QUOTE_CHARS else text[: QUOTE_CHARS - 1].rstrip() + "…"


_PHRASES: dict[str, tuple[str, ...]] = {
    "last_user": ('You asked me: "{}"', 'Your last message was: "{}"', 'Just now you said: "{}"'),
    "first_user": (
        'The first thing you said was: "{}"',
        'You started with: "{}"',
        'Your first message was: "{}"',
    ),
    "last_reply": ('I said: "{}"', 'My last words were: "{}"', 'What I said was: "{}"'),
}


def answer_recall(
    kind: str,
    window: Sequence[Turn],
    message: Turn,
    user: UserPersona,
    name: str,
    avoid: Collection[str] = (),
) -> str:
    """The answer to a conversation question, phrased unlike the answers in ``avoid``
    (what a ``/retry`` replaces) while another phrasing is left. It quotes what people
    wrote, so nothing in it is expanded as a macro afterwards: ``name`` is put in here."""
    return _first_new(_answers(kind, window, message, user, name), avoid)


def _answers(
    kind: str, window: Sequence[Turn], message: Turn, user: UserPersona, name: str
) -> list[str]:
    if kind == "name":
        if user.description:
            about = quote(user.description)
            return [
                f"You're {name}. You told me this about yourself: {about}",
                f"{name} — that's you. And you said: {about}",
            ]
        return [
            f"You're {name}, unless you'd rather I called you something else (/me name).",
            f"Your name is {name}, as far as I know.",
        ]
    found = recall(kind, window, message)
    if found is None:
        if kind == "last_reply":
            return [
                f"I haven't said anything yet, {name}: this is the start of our conversation.",
                "Nothing yet: we've only just begun.",
            ]
        return [
            f"You haven't asked me anything before this, {name}: that was your first message.",
            "Nothing before this: it's the first thing you've said to me.",
        ]
    return [phrase.format(quote(found.text)) for phrase in _PHRASES[kind]]


def _first_new(options: Sequence[str], avoid: Collection[str]) -> str:
    return next((o for o in options if o not in avoid), options[0])
