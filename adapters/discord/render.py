"""Splitting a reply into Discord messages of at most 2000 characters.

A cut is made, by preference: at a paragraph or line break outside code blocks, late
enough to fill the message; at a space outside code blocks and outside inline markup
(`` ` ``, ``**``, ``__``, ``~~``, ``||``); before a code block, so the block moves to the
next message whole; and only when a block alone is longer than a message, at a line
inside it, closing the fence in this message and reopening it (with its language) in the
next. A fence the text leaves open is closed, so every message renders on its own.

Fences are tracked by parity: a line with an odd number of ````` opens or closes a
block, as Discord's renderer sees it for the text models write.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LIMIT = 2000
#: Ends the text of a reply that is still being written.
CURSOR = " ▌"
FENCE = "```"
CLOSE = "\n```"
_LANGUAGE = re.compile(r"[\w+#.-]{1,20}")
_INLINE_MARKS = ("**", "__", "~~", "||")


def split_message(text: str, limit: int = LIMIT) -> list[str]:
    """``text`` as pieces of at most ``limit`` characters, in order (none if blank)."""
    if limit < 64:
        raise ValueError("limit must be at least 64 characters")
    pieces: list[str] = []
    reopen = ""  # the fence line that reopens a block the previous cut split
    fence: str | None = None  # the open block's fence line, at the start of ``rest``
    rest = text.strip()
    while rest:
        # Only a rest that may fit is scanned whole: scanning it at every cut would make
        # a long text cost the square of its length.
        if len(reopen) + len(rest) <= limit:
            closing = CLOSE if _scan(rest, fence).end is not None else ""
            if len(reopen) + len(rest) + len(closing) <= limit:
                pieces.append(reopen + rest + closing)
                break
        cut = _best_cut(rest, fence, limit - len(reopen) - len(CLOSE))
        inside = cut.fence is not None
        pieces.append(reopen + rest[: cut.end].rstrip() + (CLOSE if inside else ""))
        rest = rest[cut.resume :]
        if not inside:
            rest = rest.lstrip()
        fence = cut.fence
        reopen = _reopen_line(fence) + "\n" if inside else ""
    return pieces


def close_open_fence(text: str) -> str:
    """``text`` with a dangling code fence closed (for showing a reply being written)."""
    return text + CLOSE if _scan(text, None).end is not None else text


@dataclass(frozen=True, slots=True)
class _Cut:
    end: int  # the piece is rest[:end]
    resume: int  # the next piece starts at rest[resume:]
    fence: str | None  # the block open at the cut, if any


@dataclass(frozen=True, slots=True)
class _Line:
    start: int
    end: int  # index of its newline, or len(text)
    before: str | None  # the open fence line before this line
    after: str | None  # ... and after it


@dataclass(frozen=True, slots=True)
class _Scan:
    lines: list[_Line]
    end: str | None  # the fence still open at the end


def _scan(text: str, fence: str | None) -> _Scan:
    lines: list[_Line] = []
    start = 0
    while True:
        newline = text.find("\n", start)
        end = len(text) if newline == -1 else newline
        line = text[start:end]
        after = fence
        if line.count(FENCE) % 2:
            after = line.strip() if fence is None else None
        lines.append(_Line(start, end, fence, after))
        fence = after
        if newline == -1:
            return _Scan(lines, fence)
        start = newline + 1


def _reopen_line(fence: str | None) -> str:
    info = (fence or "").strip().removeprefix(FENCE)
    return FENCE + info if _LANGUAGE.fullmatch(info) else FENCE


def _best_cut(rest: str, fence: str | None, budget: int) -> _Cut:
    """The best place to end the next piece, which may hold ``budget`` characters."""
    window = rest[: budget + 1]
    half = budget // 2
    best: tuple[int, int] | None = None  # (tier, end): lower tier wins, then later end
    cuts: dict[tuple[int, int], _Cut] = {}

    def offer(tier: int, cut: _Cut) -> None:
        nonlocal best
        if cut.end <= 0 or cut.end > budget or not rest[: cut.end].strip():
            return
        key = (tier, cut.end)
        if best is None or (tier, -cut.end) < (best[0], -best[1]):
            best = key
        cuts[key] = cut

    lines = _scan(window, fence).lines
    for line in lines:
        if line.end < len(window):  # a line break
            cut = _Cut(line.end, line.end + 1, line.after)
            if line.after is None:
                paragraph = window[line.end + 1 : line.end + 2] == "\n" or (line.start == line.end)
                tier = (1 if paragraph else 2) if line.end >= half else 4
                offer(tier, cut)
            elif line.before is not None:  # inside a block, after a line of it
                offer(5, cut)
        for match in re.finditer(r"\s", window[line.start : line.end]):
            at = line.start + match.start()
            state = _state_at(window, line, at)
            cut = _Cut(at, at + 1, state)
            if state is None and _balanced(window[line.start : at]):
                offer(3 if at >= half else 6, cut)
            else:
                offer(6, cut)
    if best is None:
        at = budget
        while at > 1 and rest[at - 1] == "`" and rest[at] == "`":
            at -= 1  # never split a run of backticks: it may be a fence
        line = next(line for line in lines if line.start <= at <= line.end)
        return _Cut(at, at, _state_at(window, line, at))
    return cuts[best]


def _state_at(text: str, line: _Line, at: int) -> str | None:
    """The fence open at ``at``, inside ``line``. A fence opened earlier on the line
    is described by the whole line, so text after it is never taken for a language."""
    if text[line.start : at].count(FENCE) % 2 == 0:
        return line.before
    return text[line.start : line.end].strip() if line.before is None else None


def _balanced(segment: str) -> bool:
    """Whether a cut after ``segment`` (a line's start) leaves no inline markup open."""
    segment = segment.replace(FENCE, "")
    if segment.count("`") % 2:
        return False
    return all(segment.count(mark) % 2 == 0 for mark in _INLINE_MARKS)
