"""Lorebook activation, as SillyTavern's World Info does it for a character book.

An entry goes into the prompt when one of its keys is in the last ``scan_depth``
messages (the book's value, else 2; the greeting counts as a message):

* keys match whole words, case-insensitively unless the entry is ``case_sensitive``;
  ``use_regex`` entries (and SillyTavern's ``/pattern/flags`` keys) are regular
  expressions, each search bounded in time (below);
* a ``selective`` entry with ``secondary_keys`` also needs one of those;
* ``constant`` entries are always in, disabled ones never (``constant`` is ignored
  for ``use_regex`` entries, as V3 says);
* an entry SillyTavern wrote (its extensions carry SillyTavern's own settings) is read
  as SillyTavern reads it: SillyTavern marks every entry ``use_regex`` but matches its
  keys as words, so its ``match_whole_words``, ``case_sensitive``, ``scan_depth``,
  ``selectiveLogic`` (AND ANY, NOT ALL, NOT ANY, AND ALL) and recursion settings rule
  instead (the author tested the card that way);
* V3 decorators: ``@@activate`` (always), ``@@dont_activate`` (never, unless
  ``@@activate``), ``@@scan_depth N``, ``@@additional_keys a,b`` (one of them is
  needed too), ``@@exclude_keys a,b`` (none of them may be there), ``@@is_greeting N``,
  ``@@activate_only_after N`` and ``@@activate_only_every N`` (counting the
  character's messages), ``@@position`` and ``@@depth``/``@@role`` (placement);
* with ``recursive_scanning``, the text of activated entries is scanned too (with
  ``{{hidden_key:...}}`` text, without ``{{// ...}}`` comments), until nothing new.

The activated entries then fit a token budget (the book's ``token_budget``, else the
caller's share of the context): the most important first (``priority``, else
``insertion_order``: higher is more important), and once one does not fit, it and
every less important entry are dropped. What is left is returned in
``insertion_order`` (lower first), each with its placement.

Why the time bound: a card is untrusted input, and a pattern like ``(a+)+$`` can
backtrack for minutes on a short message. Python's ``re`` cannot be interrupted, so
we use the ``regex`` package, whose searches take a ``timeout``: each one is bounded
(:data:`REGEX_TIMEOUT`), one activation spends at most :data:`REGEX_BUDGET` on them
all, and a pattern or text past the length caps is not tried. A search that times out
counts as no match, as an invalid pattern does (V3 says so).
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import regex  # type: ignore[import-untyped]

from bot.card_model import Lorebook, LoreEntry
from bot.lore_decorators import Decorators, parse_decorators

#: Messages scanned when the book does not say.
DEFAULT_SCAN_DEPTH = 2
#: The longest one regular-expression search may take, in seconds.
REGEX_TIMEOUT = 0.05
#: The most all the searches of one activation may take, in seconds.
REGEX_BUDGET = 0.5
MAX_PATTERN = 1000
MAX_SCANNED = 100_000
_MAX_RECURSION = 10

Placement = Literal[
    "before_char",
    "after_char",
    "before_desc",
    "after_desc",
    "personality",
    "scenario",
    "before_examples",
    "after_examples",
    "depth",
]
Role = Literal["system", "user", "assistant"]
_PLACEMENTS = frozenset(Placement.__args__)  # type: ignore[attr-defined]
# SillyTavern keeps its own position number in the entry's extensions.
_ST_POSITIONS: dict[int, Placement] = {
    0: "before_char",
    1: "after_char",
    2: "before_char",  # top of the author's note: we have none, so with the card
    3: "after_char",  # bottom of the author's note
    4: "depth",
    5: "before_examples",
    6: "after_examples",
}
_ST_ROLES: dict[int, Role] = {0: "system", 1: "user", 2: "assistant"}
_ONE_WORD = re.compile(r"\w+")
_WORDS = re.compile(r"\w+")
_JS_REGEX = re.compile(r"^/(.+)/([a-z]*)$", re.DOTALL)
_COMMENTS = re.compile(r"\{\{\s*(?://|comment\s*:)(?:(?!\}\}).)*\}\}", re.DOTALL | re.IGNORECASE)
_HIDDEN = re.compile(r"\{\{\s*hidden_key\s*:((?:(?!\}\}).)*)\}\}", re.DOTALL | re.IGNORECASE)


def estimate_tokens(text: str) -> int:
    """About how many tokens ``text`` is (4 characters a token, rounded up): the
    models' tokenizers differ, and SillyTavern's own fallback is the same kind of guess."""
    return (len(text) + 3) // 4


@dataclass(frozen=True, slots=True)
class ActiveEntry:
    """An activated entry: its text (decorators removed, macros not yet expanded) and
    where it goes; ``depth`` and ``role`` for entries placed in the chat history."""

    text: str
    placement: Placement
    order: float
    depth: int = 0
    role: Role = "system"
    entry: LoreEntry | None = None


@dataclass(frozen=True, slots=True)
class Activation:
    """The entries that made it into the prompt, in insertion order; ``timeouts``:
    how many regular-expression searches were cut off (counted as no match)."""

    entries: tuple[ActiveEntry, ...] = ()
    timeouts: int = 0

    def texts(self, placement: Placement) -> list[str]:
        """The texts placed at ``placement``, in order."""
        return [e.text for e in self.entries if e.placement == placement]

    @property
    def in_chat(self) -> list[ActiveEntry]:
        """The entries placed in the chat history, at their depth."""
        return [e for e in self.entries if e.placement == "depth"]


@dataclass(frozen=True, slots=True)
class ScanInput:
    """What the scan reads: the chat's messages, oldest first (the greeting included),
    how many of them are the character's, and which greeting opened the chat (0 the
    first message, 1.. the alternates; ``None``: not known)."""

    messages: Sequence[str]
    character_messages: int = 0
    greeting_index: int | None = None


@dataclass(frozen=True, slots=True)
class _Rules:
    """How one entry matches, from its V3 fields, or from SillyTavern's own settings in
    its extensions when SillyTavern wrote it (see :func:`_rules`)."""

    regex: bool = False
    case_sensitive: bool = False
    whole_words: bool = True
    constant: bool = False
    scan_depth: int | None = None
    #: SillyTavern's selectiveLogic: 0 AND ANY, 1 NOT ALL, 2 NOT ANY, 3 AND ALL.
    logic: int = 0
    #: Not activated by other entries' text / its text activates no other entry.
    no_recursion_in: bool = False
    no_recursion_out: bool = False


@dataclass(frozen=True, slots=True)
class _Candidate:
    index: int
    entry: LoreEntry
    decorators: Decorators
    text: str
    rules: _Rules


# Keys only SillyTavern writes in an entry's extensions: such an entry says use_regex
# true whatever its keys are (SillyTavern writes it on every entry and reads its keys
# as plain words, or /pattern/flags), so its own settings are what its author tested.
_SILLYTAVERN_KEYS = frozenset(("selectiveLogic", "match_whole_words", "display_index"))


def _rules(entry: LoreEntry) -> _Rules:
    ext = entry.extensions
    if not _SILLYTAVERN_KEYS & ext.keys():
        return _Rules(
            regex=bool(entry.use_regex),
            case_sensitive=bool(entry.case_sensitive),
            constant=bool(entry.constant) and not entry.use_regex,  # V3: ignored with regex
        )
    case = ext.get("case_sensitive")
    whole = ext.get("match_whole_words")
    depth = ext.get("scan_depth")
    logic = ext.get("selectiveLogic")
    return _Rules(
        regex=False,
        case_sensitive=bool(entry.case_sensitive) or case is True,
        whole_words=whole is not False,
        constant=bool(entry.constant),
        scan_depth=depth if isinstance(depth, int) and not isinstance(depth, bool) else None,
        logic=logic if logic in (0, 1, 2, 3) else 0,
        no_recursion_in=ext.get("exclude_recursion") is True,
        no_recursion_out=ext.get("prevent_recursion") is True,
    )


def activate(book: Lorebook | None, scan: ScanInput, *, budget_tokens: int) -> Activation:
    """The entries of ``book`` that the chat activates, within the budget."""
    if book is None or not book.entries:
        return Activation()
    matcher = _Matcher()
    candidates = [
        _Candidate(i, entry, *parse_decorators(entry.content), _rules(entry))
        for i, entry in enumerate(book.entries)
        if entry.enabled
    ]
    candidates = [c for c in candidates if c.text.strip() and _allowed(c, scan)]
    depth = book.scan_depth if book.scan_depth is not None else DEFAULT_SCAN_DEPTH
    chosen: dict[int, _Candidate] = {}
    for candidate in candidates:
        scan_depth = candidate.decorators.scan_depth
        if scan_depth is None:
            scan_depth = candidate.rules.scan_depth
        window = _recent(scan.messages, depth if scan_depth is None else scan_depth)
        if _forced(candidate) or (
            not candidate.decorators.dont_activate and matcher.matches(candidate, window)
        ):
            chosen[candidate.index] = candidate
    if book.recursive_scanning:
        for _ in range(_MAX_RECURSION):
            found = "\n".join(
                _recursable(c.text) for c in chosen.values() if not c.rules.no_recursion_out
            )
            new = [
                c
                for c in candidates
                if c.index not in chosen
                and not c.decorators.dont_activate
                and not c.rules.no_recursion_in
                and matcher.matches(c, [found])
            ]
            if not new:
                break
            chosen |= {c.index: c for c in new}
    budget = book.token_budget if book.token_budget is not None else budget_tokens
    placed = tuple(_place(c) for c in _fit(chosen.values(), budget))
    return Activation(placed, matcher.timeouts)


def _allowed(candidate: _Candidate, scan: ScanInput) -> bool:
    """The decorators that rule an entry out whatever the chat says."""
    deco = candidate.decorators
    if deco.is_greeting is not None and scan.greeting_index not in (None, deco.is_greeting):
        return False
    if deco.activate_only_after is not None and scan.character_messages < deco.activate_only_after:
        return False
    every = deco.activate_only_every
    return not (every is not None and every > 0 and scan.character_messages % every)


def _forced(candidate: _Candidate) -> bool:
    if candidate.decorators.activate:
        return True
    return candidate.rules.constant and not candidate.decorators.dont_activate


def _recent(messages: Sequence[str], depth: int) -> list[str]:
    return list(messages[-depth:]) if depth > 0 else []


def _recursable(text: str) -> str:
    return _HIDDEN.sub(lambda m: f" {m[1]} ", _COMMENTS.sub(" ", text))


def _importance(candidate: _Candidate) -> float:
    entry = candidate.entry
    if entry.priority is not None:
        return entry.priority
    return entry.insertion_order if entry.insertion_order is not None else 0


def _fit(chosen: Iterable[_Candidate], budget: int) -> list[_Candidate]:
    ranked = sorted(chosen, key=lambda c: (-_importance(c), c.index))
    kept, used = [], 0
    for candidate in ranked:
        cost = estimate_tokens(candidate.text)
        if used + cost > budget:
            break
        kept.append(candidate)
        used += cost
    return sorted(kept, key=lambda c: (c.entry.insertion_order or 0, c.index))


def _place(candidate: _Candidate) -> ActiveEntry:
    entry, deco = candidate.entry, candidate.decorators
    order = entry.insertion_order or 0
    role: Role = deco.role if deco.role in ("system", "user", "assistant") else "system"  # type: ignore[assignment]
    if deco.position in _PLACEMENTS and deco.position != "depth":
        return ActiveEntry(candidate.text, deco.position, order, entry=entry)  # type: ignore[arg-type]
    if deco.depth is not None:
        return ActiveEntry(candidate.text, "depth", order, max(deco.depth, 0), role, entry)
    st_position = entry.extensions.get("position")
    if isinstance(st_position, int) and st_position in _ST_POSITIONS:
        st_placement = _ST_POSITIONS[st_position]
        if st_placement == "depth":
            depth = entry.extensions.get("depth", 4)
            st_role = entry.extensions.get("role", 0)
            return ActiveEntry(
                candidate.text,
                "depth",
                order,
                depth if isinstance(depth, int) and depth >= 0 else 4,
                _ST_ROLES.get(st_role, "system") if isinstance(st_role, int) else "system",
                entry,
            )
        return ActiveEntry(candidate.text, st_placement, order, entry=entry)
    placement: Placement = "after_char" if entry.position == "after_char" else "before_char"
    return ActiveEntry(candidate.text, placement, order, entry=entry)


class _Matcher:
    """Key matching for one activation (it owns the time budget of the regexes)."""

    def __init__(self) -> None:
        self._deadline = time.monotonic() + REGEX_BUDGET
        self.timeouts = 0
        self._words: dict[str, tuple[frozenset[str], frozenset[str]]] = {}

    def matches(self, candidate: _Candidate, texts: Sequence[str]) -> bool:
        entry, deco, rules = candidate.entry, candidate.decorators, candidate.rules
        if not texts or not self.any_key(entry.keys, texts, rules, rules.regex):
            return False
        selective = entry.selective and entry.secondary_keys and not rules.regex
        if selective and not self.secondary(entry.secondary_keys or (), texts, rules):
            return False
        if deco.additional_keys and not self.any_key(
            deco.additional_keys, texts, rules, rules.regex
        ):
            return False
        return not (
            deco.exclude_keys
            and not rules.regex
            and self.any_key(deco.exclude_keys, texts, rules, False)
        )

    def secondary(self, keys: Sequence[str], texts: Sequence[str], rules: _Rules) -> bool:
        """Whether the secondary keys allow the entry (SillyTavern's four logics)."""
        keys = [k for k in keys if k.strip()]
        if not keys:
            return True
        if rules.logic == 0:  # AND ANY
            return self.any_key(keys, texts, rules, False)
        found = [self.any_key([key], texts, rules, False) for key in keys]
        if rules.logic == 1:  # NOT ALL
            return not all(found)
        if rules.logic == 2:  # NOT ANY
            return not any(found)
        return all(found)  # AND ALL

    def any_key(
        self, keys: Iterable[str], texts: Sequence[str], rules: _Rules, as_regex: bool
    ) -> bool:
        for key in keys:
            if not key.strip():
                continue
            if as_regex:
                found = self.search(key, "", texts, rules)
            elif (js := _JS_REGEX.match(key.strip())) is not None:
                found = self.search(js[1], js[2], texts, rules)
            else:
                found = self.word_match(key.strip(), texts, rules)
            if found:
                return True
        return False

    def word_match(self, key: str, texts: Sequence[str], rules: _Rules) -> bool:
        """``key`` in one of ``texts``, as whole words unless the entry says otherwise.
        A one-word key is looked up in the texts' words (the common case, and a big
        book has thousands of keys); other keys are searched for."""
        if rules.whole_words and _ONE_WORD.fullmatch(key):
            return any(self._has_word(key, text, rules.case_sensitive) for text in texts)
        return _word_match(key, texts, rules)

    def _has_word(self, key: str, text: str, case_sensitive: bool) -> bool:
        words = self._words.get(text)
        if words is None:
            exact = frozenset(_WORDS.findall(text))
            words = self._words[text] = (exact, frozenset(w.casefold() for w in exact))
        return key in words[0] if case_sensitive else key.casefold() in words[1]

    def search(self, pattern: str, js_flags: str, texts: Sequence[str], rules: _Rules) -> bool:
        if len(pattern) > MAX_PATTERN:
            return False
        flags = regex.V0
        if "i" in js_flags or (not js_flags and not rules.case_sensitive and rules.regex):
            flags |= regex.IGNORECASE
        if "s" in js_flags:
            flags |= regex.DOTALL
        if "m" in js_flags:
            flags |= regex.MULTILINE
        try:
            compiled = regex.compile(pattern, flags)
        except (regex.error, RecursionError, OverflowError, ValueError):
            return False  # an invalid pattern is no match (V3)
        for text in texts:
            left = self._deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                if compiled.search(text[-MAX_SCANNED:], timeout=min(REGEX_TIMEOUT, left)):
                    return True
            except TimeoutError:
                self.timeouts += 1
                return False
        return False


def _word_match(key: str, texts: Sequence[str], rules: _Rules) -> bool:
    """``key`` in one of ``texts``: as whole words (not inside a longer word) unless the
    entry says otherwise."""
    pattern = _word_pattern(key, rules.case_sensitive, rules.whole_words)
    return any(pattern.search(text) for text in texts)


@functools.lru_cache(maxsize=8192)
def _word_pattern(key: str, case_sensitive: bool, whole_words: bool) -> re.Pattern[str]:
    # A book's keys are matched on every reply: compile each once (re's own cache
    # holds 512 patterns, fewer than a big book has keys).
    escaped = re.escape(key)
    flags = 0 if case_sensitive else re.IGNORECASE
    return re.compile(rf"(?<!\w){escaped}(?!\w)" if whole_words else escaped, flags)
