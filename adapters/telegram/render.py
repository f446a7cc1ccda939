"""Reply text -> Telegram messages: HTML with escaping, split below the length limit.

Persona backends write plain text with a little Markdown (``**bold**``, ``*italic*``,
`` `code` ``, fenced code blocks, ``[text](https://…)``, ``# headings``). That becomes
Telegram HTML (``parse_mode=HTML``): everything else is escaped, so nothing a
persona writes can inject markup, and links are only ever ``http(s)``.

Telegram counts a message's length after parsing entities, in UTF-16 code units. A
longer reply is split on a paragraph break, else a line break, else a sentence end,
else between words (a single word longer than a message is cut), taking the last such
boundary in the second half of the room, and preferring boundaries outside formatted
runs. A run that must be cut is closed at the end of one piece and reopened at the
start of the next, so every piece is valid HTML on its own.
"""

from __future__ import annotations

import bisect
import html
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

#: Shown after the text of a reply that is still being written.
CURSOR = " …"

_MARKDOWN = re.compile(
    r"```(?P<lang>[\w+#.-]*)[ \t]*\n?(?P<fence>[\s\S]*?)(?:\n?```|\Z)"
    r"|`(?P<code>[^`\n]+)`"
    r"|\[(?P<label>[^\]\n]+)\]\((?P<href>https?://[^\s()<>]+)\)"
    r"|\*\*(?=\S)(?P<bold>[^\n]+?)(?<=\S)\*\*"
    r"|(?<!\w)__(?=\S)(?P<bold2>[^\n]+?)(?<=\S)__(?!\w)"
    r"|~~(?=\S)(?P<strike>[^\n]+?)(?<=\S)~~"
    r"|(?<![\w*])\*(?=[^\s*])(?P<italic>[^*\n]+?)(?<=\S)\*(?![\w*])"
    r"|(?<!\w)_(?=[^\s_])(?P<italic2>[^_\n]+?)(?<=\S)_(?!\w)"
    r"|^[ \t]*\#{1,6}[ \t]+(?P<heading>[^\n]+?)[ \t#]*$",
    re.MULTILINE,
)
_GROUP_TAG = {
    "code": "code",
    "bold": "b",
    "bold2": "b",
    "strike": "s",
    "italic": "i",
    "italic2": "i",
    "heading": "b",
}
# Separators, best first. Each match is dropped at the cut; indentation after a line
# break is kept (it matters in code blocks).
_PARAGRAPH = re.compile(r"[ \t]*\n(?:[ \t]*\n)+")
_LINE = re.compile(r"[ \t]*\n")
# The closing quotes and brackets after a sentence's end stay with it: only the space
# after them is dropped at a cut.
_CLOSERS = "[\"'”’)\\]]"
_SENTENCE = re.compile(
    rf"(?:(?<=[.!?…])|(?<=[.!?…]{_CLOSERS})|(?<=[.!?…]{_CLOSERS}{_CLOSERS}))[ \t]+"
)
_WORD = re.compile(r"[ \t]+")
_SEPARATORS = (_PARAGRAPH, _LINE, _SENTENCE, _WORD)

#: Whether a position of the visible text lies strictly inside a formatted run.
_Inside = Callable[[int], bool]


@dataclass(frozen=True, slots=True)
class Span:
    """A run of visible text with at most one format: ``tag`` is None (plain), ``b``,
    ``i``, ``s``, ``code``, ``pre`` (``attr``: the language) or ``a`` (``attr``: the
    URL)."""

    text: str
    tag: str | None = None
    attr: str = ""


@dataclass(frozen=True, slots=True)
class Piece:
    """One message: its HTML, and its visible text (sent as plain text when Telegram
    refuses the entities)."""

    html: str
    plain: str


def tg_len(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def escape(text: str) -> str:
    return html.escape(text, quote=False)


def parse_markdown(text: str) -> list[Span]:
    """The spans of ``text``; an unclosed code fence runs to the end (so a code block
    still being streamed already shows as code)."""
    spans: list[Span] = []
    pos = 0
    for match in _MARKDOWN.finditer(text):
        if match.start() > pos:
            spans.append(Span(text[pos : match.start()]))
        group = match.lastgroup
        if match.group("fence") is not None:
            spans.append(Span(match.group("fence"), "pre", match.group("lang") or ""))
        elif match.group("label") is not None:
            spans.append(Span(match.group("label"), "a", match.group("href")))
        elif group is not None and group in _GROUP_TAG:
            spans.append(Span(match.group(group), _GROUP_TAG[group]))
        else:  # pragma: no cover - every alternative has a named group
            spans.append(Span(match.group(0)))
        pos = match.end()
    if pos < len(text):
        spans.append(Span(text[pos:]))
    return [span for span in spans if span.text]


def render_span(span: Span) -> str:
    body = escape(span.text)
    if span.tag is None:
        return body
    if span.tag == "a":
        return f'<a href="{html.escape(span.attr, quote=True)}">{body}</a>'
    if span.tag == "pre" and span.attr:
        language = html.escape(span.attr, quote=True)
        return f'<pre><code class="language-{language}">{body}</code></pre>'
    return f"<{span.tag}>{body}</{span.tag}>"


def render(text: str, limit: int, *, partial: bool = False) -> list[Piece]:
    """``text`` as messages of at most ``limit`` visible characters each; with
    ``partial``, the last one ends in :data:`CURSOR`. No pieces for blank text.

    The room for the cursor is kept in every split, partial or not, so a reply's
    pieces keep their boundaries when it completes (no needless edits at the end).
    """
    spans = parse_markdown(text)
    pieces = [
        Piece("".join(render_span(s) for s in part), "".join(s.text for s in part))
        for part in split_spans(spans, limit - tg_len(CURSOR))
    ]
    if partial and pieces:
        last = pieces[-1]
        pieces[-1] = Piece(last.html + CURSOR, last.plain + CURSOR)
    return pieces


def split_spans(spans: Sequence[Span], limit: int) -> list[list[Span]]:
    """Group ``spans`` into pieces of at most ``limit`` visible UTF-16 units, cutting
    runs where they must be cut; blank pieces are dropped."""
    visible = "".join(span.text for span in spans)
    bounds: list[tuple[int, int, Span]] = []
    at = 0
    for span in spans:
        bounds.append((at, at + len(span.text), span))
        at += len(span.text)
    inside = _inside_of([(start, end) for start, end, span in bounds if span.tag is not None])

    ends = [end for _, end, _ in bounds]
    pieces: list[list[Span]] = []
    for start, end in _cuts(visible, limit, inside):
        part = []
        # From the first span that ends after ``start``, to the last that starts before ``end``.
        for index in range(bisect.bisect_right(ends, start), len(bounds)):
            s, e, span = bounds[index]
            if s >= end:
                break
            part.append(Span(span.text[max(s, start) - s : min(e, end) - s], span.tag, span.attr))
        if "".join(p.text for p in part).strip():
            pieces.append(_trim([p for p in part if p.text]))
    return pieces


def _inside_of(runs: list[tuple[int, int]]) -> _Inside:
    """``inside`` for ``runs``, which follow each other without overlapping: a binary
    search, as a long reply has thousands of runs and each cut asks about hundreds of
    positions."""
    starts = [start for start, _ in runs]

    def inside(pos: int) -> bool:
        index = bisect.bisect_left(starts, pos) - 1  # the last run starting before pos
        return index >= 0 and pos < runs[index][1]

    return inside


def _trim(part: list[Span]) -> list[Span]:
    """Drop blank lines at the start and whitespace at the end of a piece (Telegram
    strips them anyway), keeping the indentation of a first code line."""
    first = part[0]
    text = first.text.lstrip("\r\n") if first.tag == "pre" else first.text.lstrip()
    part[0] = Span(text, first.tag, first.attr)
    last = part[-1]
    part[-1] = Span(last.text.rstrip(), last.tag, last.attr)
    return [p for p in part if p.text]


def _cuts(visible: str, limit: int, inside: _Inside) -> list[tuple[int, int]]:
    cuts: list[tuple[int, int]] = []
    start = 0
    while start < len(visible):
        hard = _advance(visible, start, limit)
        if hard >= len(visible):
            cuts.append((start, len(visible)))
            break
        end, start_next = _best_cut(visible, start, hard, inside)
        cuts.append((start, end))
        start = start_next
    return cuts


def _best_cut(visible: str, start: int, hard: int, inside: _Inside) -> tuple[int, int]:
    """Where to end the piece starting at ``start`` (it may not pass ``hard``) and
    where the next one starts."""
    low = start + max(1, (hard - start) // 2)
    for allow_inside in (False, True):
        for separator in _SEPARATORS:
            best = None
            for match in separator.finditer(visible, low, hard + 1):
                if match.start() <= start:
                    continue
                if allow_inside or not (inside(match.start()) or inside(match.end())):
                    best = match
            if best is not None:
                return best.start(), best.end()
    return hard, hard


def _advance(text: str, start: int, limit: int) -> int:
    """The furthest end such that ``text[start:end]`` fits ``limit`` UTF-16 units."""
    chunk = text[start : start + limit]
    if tg_len(chunk) <= limit:
        return start + len(chunk)
    used = 0
    end = start
    for ch in chunk:
        width = 2 if ord(ch) > 0xFFFF else 1
        if used + width > limit:
            break
        used += width
        end += 1
    return end
