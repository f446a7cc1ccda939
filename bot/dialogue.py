"""Example dialogue (a card's ``mes_example``) as blocks of speaker lines.

SillyTavern separates example conversations with ``<START>``; inside one, a line that
starts with a speaker label (``{{user}}:``, ``<USER>:``, ``You:``, ``{{char}}:``,
``<BOT>:``, ``<char>:``, the character's name or nickname) opens a turn, and the
lines after it continue that turn. Every block is kept, even one with only the
character speaking (common in assistant cards): the prompt sends each block as
separate example messages, and the offline brain pairs a user line with the answer
after it (:func:`exchanges`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

ExampleRole = Literal["user", "char"]

_START = re.compile(r"^\s*<START>\s*$", re.IGNORECASE | re.MULTILINE)
_USER_LABELS = (r"\{\{\s*user\s*\}\}", r"<user>", r"you", r"user")
_CHAR_LABELS = (r"\{\{\s*char\s*\}\}", r"<bot>", r"<char>", r"\{\{\s*bot\s*\}\}")


@dataclass(frozen=True, slots=True)
class ExampleLine:
    """One turn of an example conversation; ``text`` keeps its macros as written."""

    role: ExampleRole
    text: str


#: One ``<START>`` block: the turns of one example conversation, in order.
ExampleBlock = tuple[ExampleLine, ...]


def parse_example_blocks(text: str, names: Iterable[str] = ()) -> tuple[ExampleBlock, ...]:
    """Every example conversation of ``text``; ``names`` are the character's names.

    Lines before the first speaker label of a block are narration, kept as the
    character's. Consecutive turns of one speaker merge; empty blocks drop.
    """
    speaker = _speaker_pattern(names)
    blocks: list[ExampleBlock] = []
    for chunk in _START.split(text):
        turns: list[tuple[ExampleRole, list[str]]] = []
        for line in chunk.splitlines():
            match = speaker.match(line.strip())
            if match is None:
                if turns:
                    turns[-1][1].append(line)
                elif line.strip():
                    turns.append(("char", [line.strip()]))
                continue
            role: ExampleRole = "user" if match.group("user") is not None else "char"
            said = match.group("said")
            if turns and turns[-1][0] == role:
                turns[-1][1].append(said)
            else:
                turns.append((role, [said]))
        block = tuple(
            ExampleLine(role, joined)
            for role, lines in turns
            if (joined := "\n".join(lines).strip())
        )
        if block:
            blocks.append(block)
    return tuple(blocks)


def exchanges(blocks: Iterable[ExampleBlock]) -> tuple[tuple[str, str], ...]:
    """The (user line, character answer) pairs of the blocks, in order."""
    return tuple(
        (said.text, answer.text)
        for block in blocks
        for said, answer in pairwise(block)
        if said.role == "user" and answer.role == "char"
    )


def blocks_text(blocks: Iterable[ExampleBlock]) -> str:
    """The blocks written back as ``mes_example`` text (``<START>`` and macro labels)."""
    out = []
    for block in blocks:
        lines = ["<START>"]
        lines += [f"{'{{user}}' if ln.role == 'user' else '{{char}}'}: {ln.text}" for ln in block]
        out.append("\n".join(lines))
    return "\n".join(out)


def _speaker_pattern(names: Iterable[str]) -> re.Pattern[str]:
    chars = [*_CHAR_LABELS, *(re.escape(n.strip()) for n in names if n and n.strip())]
    return re.compile(
        rf"(?:(?P<user>{'|'.join(_USER_LABELS)})|(?P<char>{'|'.join(chars)}))\s*:\s?(?P<said>.*)",
        re.IGNORECASE | re.DOTALL,
    )
