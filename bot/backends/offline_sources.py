"""What the offline brain can answer from: a card's exchanges and facts, labels removed.

A card teaches its character in three places, and all three are read the same way:
the example dialogue, transcripts written into the description (``<START>`` then
``{{user}}: ...`` / ``{{char}}: ...``, as Seraphina's card does), and the lorebook.
A transcript is a set of *exchanges*: the user's line is a question to match, the
character's line after it is the answer. Any other lorebook entry is a *fact*. A
lorebook entry's keys are the words it is about, so they count in matching. Speaker
labels never reach an answer: :func:`bot.dialogue.parse_example_blocks` takes them off.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise

from bot.dialogue import parse_example_blocks
from bot.lore_decorators import parse_decorators
from bot.personas import Persona

# A transcript line: a speaker label at the start of a line.
_LABELLED = re.compile(r"^\s*(?:\{\{\s*(?:user|char)\s*\}\}|<(?:user|bot|char)>)\s*:", re.I | re.M)


@dataclass(frozen=True, slots=True)
class Source:
    """One thing the persona can say: an answer (as written, macros kept), the line it
    answers (empty for a fact) and the words it is about (a lorebook entry's keys)."""

    answer: str
    question: str = ""
    keys: tuple[str, ...] = ()

    @property
    def knowledge(self) -> bool:
        return not self.question


def card_sources(persona: Persona) -> Iterator[Source]:
    """Every exchange and fact of the card, in the card's order, each once."""
    names = (persona.name, persona.char_name)
    seen: set[tuple[str, str]] = set()

    def fresh(source: Source) -> bool:
        mark = (source.question.strip(), source.answer.strip())
        if not mark[1] or mark in seen:
            return False
        seen.add(mark)
        return True

    for example in persona.examples:
        if fresh(source := Source(example.char, example.user)):
            yield source
    if _LABELLED.search(persona.description):
        for source in _transcript(persona.description, names, ()):
            if source.question and fresh(source):  # the rest of a description is no fact
                yield source
    for line in persona.knowledge:
        if fresh(source := Source(line.strip())):
            yield source
    book = persona.lorebook
    for entry in book.entries if book is not None else ():
        if not entry.enabled:
            continue
        decorators, content = parse_decorators(entry.content)
        if decorators.dont_activate:
            continue
        found = (*entry.keys, *(entry.secondary_keys or ()), *decorators.additional_keys)
        keys = tuple(k for k in found if k.strip())
        for source in _transcript(content, names, keys):
            if fresh(source):
                yield source


def _transcript(text: str, names: tuple[str, ...], keys: tuple[str, ...]) -> Iterator[Source]:
    """The exchanges of ``text`` when it is written as a transcript, else ``text`` as
    one fact."""
    if not _LABELLED.search(text):
        if text.strip():
            yield Source(text.strip(), keys=keys)
        return
    for block in parse_example_blocks(text, names):
        paired = False
        for said, answer in pairwise(block):
            if said.role == "user" and answer.role == "char":
                paired = True
                yield Source(answer.text.strip(), _unquote(said.text), keys)
        if not paired:  # the character speaking alone: what it says is still its own
            for line in block:
                if line.role == "char":
                    yield Source(line.text.strip(), keys=keys)


def _unquote(line: str) -> str:
    """A user line as the question it asks: ``"What is X?"`` -> ``What is X?``."""
    line = line.strip()
    if len(line) >= 2 and line[0] == line[-1] and line[0] in "\"'“”":
        return line[1:-1].strip()
    return line.strip("“”").strip()
