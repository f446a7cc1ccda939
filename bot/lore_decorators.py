"""V3 lorebook decorators: the ``@@name value`` lines at the head of an entry's content.

They steer the entry (where it goes, when it may activate) and are never sent to a
model: :func:`parse_decorators` returns them and the content without them. A
decorator we do not know is dropped; its ``@@@`` fallback, on the next line, is used
instead when there is one. Of two decorators with one name, the first counts.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

_LINE = re.compile(r"^(@{2,3})([A-Za-z_][A-Za-z0-9_]*)(?:[ \t]+(.*?))?[ \t]*$")
_NUMBER = re.compile(r"[+-]?\d+")
_VALUELESS = frozenset(("activate", "dont_activate"))
_NUMERIC = frozenset(
    ("depth", "scan_depth", "is_greeting", "activate_only_after", "activate_only_every")
)
_LISTS = frozenset(("additional_keys", "exclude_keys"))
_TEXTS = frozenset(("position", "role"))
KNOWN = _VALUELESS | _NUMERIC | _LISTS | _TEXTS


@dataclass(frozen=True, slots=True)
class Decorators:
    """The decorators of one entry; ``None``/empty: not given."""

    depth: int | None = None
    position: str | None = None
    role: str | None = None
    scan_depth: int | None = None
    is_greeting: int | None = None
    activate_only_after: int | None = None
    activate_only_every: int | None = None
    activate: bool = False
    dont_activate: bool = False
    additional_keys: tuple[str, ...] = ()
    exclude_keys: tuple[str, ...] = ()
    unknown: tuple[str, ...] = field(default=(), compare=False)


@functools.lru_cache(maxsize=4096)
def parse_decorators(content: str) -> tuple[Decorators, str]:
    """The decorators of ``content``, and the content with them (and the blank lines
    around them) removed. (Cached: a book's entries are read on every reply.)"""
    values: dict[str, object] = {}
    unknown: list[str] = []
    kept: list[str] = []
    chain_done = False  # the decorator before this fallback was understood
    for line in content.splitlines():
        match = _LINE.match(line.strip())
        if match is None:
            kept.append(line)
            continue
        ats, name, raw = match[1], match[2].lower(), (match[3] or "").strip()
        if len(ats) == 3 and chain_done:
            continue
        value = _value(name, raw)
        if value is None:
            unknown.append(name)
            chain_done = False
            continue
        chain_done = True
        values.setdefault(name, value)
    text = "\n".join(kept).strip("\n")
    return Decorators(**values, unknown=tuple(unknown)), text  # type: ignore[arg-type]


def _value(name: str, raw: str) -> object | None:
    """The decorator's value, or ``None`` when the name or the value is not understood."""
    if name in _VALUELESS:
        return True
    if name in _NUMERIC:
        return int(raw) if _NUMBER.fullmatch(raw) else None
    if name in _LISTS:
        keys = tuple(k.replace("\\,", ",").strip() for k in re.split(r"(?<!\\),", raw))
        return tuple(k for k in keys if k) or None
    if name == "role":
        return raw.lower() if raw.lower() in ("system", "user", "assistant") else None
    if name == "position":
        return raw.lower() or None
    return None
