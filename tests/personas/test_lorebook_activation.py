"""Lorebook activation: keys in recent messages, selective, constant, regex with a time
bound, ordering, placement, the token budget, recursion and V3 decorators."""

from __future__ import annotations

import re
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot import lorebook
from bot.card_model import Lorebook, LoreEntry
from bot.lorebook import Activation, ScanInput, activate, estimate_tokens


def entry(*keys: str, content: str = "", **settings: object) -> LoreEntry:
    return LoreEntry(keys=keys, content=content or f"about {keys[0] if keys else 'x'}", **settings)  # type: ignore[arg-type]


def run(
    entries: Sequence[LoreEntry],
    *messages: str,
    budget: int = 10_000,
    character_messages: int = 0,
    greeting_index: int | None = None,
    **book: object,
) -> Activation:
    return activate(
        Lorebook(entries=tuple(entries), **book),  # type: ignore[arg-type]
        ScanInput(messages, character_messages, greeting_index),
        budget_tokens=budget,
    )


def texts(activation: Activation) -> list[str]:
    return [e.text for e in activation.entries]


@pytest.mark.parametrize(
    ("key", "message", "hit"),
    [
        pytest.param("lamp", "Where is the LAMP?", True, id="case-insensitive"),
        pytest.param("lamp", "the lamps are lit", False, id="whole-words-only"),
        pytest.param("lamp", "a lamp-post", True, id="punctuation-is-a-boundary"),
        pytest.param("gull rock", "Is Gull  Rock far?", False, id="phrase-needs-its-spacing"),
        pytest.param("gull rock", "is gull rock far", True, id="phrase"),
        pytest.param("C++", "I code in C++ daily", True, id="symbols"),
        pytest.param("/lamps?/i", "LAMPS everywhere", True, id="sillytavern-regex-key"),
        pytest.param("/lamps?/", "LAMPS everywhere", False, id="regex-key-case-sensitive"),
        pytest.param("", "anything", False, id="empty-key"),
    ],
)
def test_key_matching(key: str, message: str, hit: bool) -> None:
    assert bool(run([entry(key)], message).entries) is hit


def test_case_sensitive_entries() -> None:
    assert run([entry("Storm", case_sensitive=True)], "a storm").entries == ()
    assert run([entry("Storm", case_sensitive=True)], "a Storm").entries != ()


def test_scans_only_the_last_scan_depth_messages() -> None:
    old = ["the lamp", "hello", "how are you"]
    assert run([entry("lamp")], *old).entries == ()  # default depth 2
    assert run([entry("lamp")], *old, scan_depth=3).entries != ()
    assert run([entry("lamp")], *old[:2]).entries != ()  # the greeting counts as a message
    assert run([entry("lamp")], "the lamp", scan_depth=0).entries == ()


def test_selective_needs_a_secondary_key() -> None:
    lamp = entry("lamp", selective=True, secondary_keys=("night", "dark"))
    assert run([lamp], "the lamp").entries == ()
    assert run([lamp], "the lamp at night").entries != ()
    no_secondary = entry("lamp", selective=True, secondary_keys=())
    assert run([no_secondary], "the lamp").entries != ()
    not_selective = entry("lamp", selective=False, secondary_keys=("night",))
    assert run([not_selective], "the lamp").entries != ()


def test_constant_always_disabled_never() -> None:
    book = [
        entry(content="always here", constant=True),
        entry("lamp", content="never here", enabled=False),
        entry("lamp", content="never either", enabled=False, constant=True),
    ]
    assert texts(run(book, "the lamp")) == ["always here"]
    assert texts(run(book)) == ["always here"]


def test_regex_entries() -> None:
    book = [entry(r"^keeper\b.*\?$", content="keepers", use_regex=True)]
    assert texts(run(book, "Keeper, where is it?")) == ["keepers"]
    assert run(book, "keeper says hi").entries == ()
    assert run([entry("(unclosed", use_regex=True)], "(unclosed").entries == ()  # invalid: no match
    assert run([entry("x", use_regex=True, constant=True)], "nothing").entries == ()  # V3


def test_catastrophic_regex_is_cut_off_and_counts_as_no_match(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lorebook, "REGEX_TIMEOUT", 0.01)
    monkeypatch.setattr(lorebook, "REGEX_BUDGET", 0.05)
    evil = entry(r"(\w*)*\d", content="evil", use_regex=True)  # backtracks for ages
    fine = entry("lamp", content="fine")
    result = run([evil] * 20, "a" * 5000, "the lamp")
    assert result.entries == () and 1 <= result.timeouts <= 20
    # once the activation's budget is spent, no more searches start
    assert texts(run([evil] * 20 + [fine], "a" * 5000, "the lamp")) == ["fine"]


def test_long_patterns_are_not_tried() -> None:
    long_key = "a" * (lorebook.MAX_PATTERN + 1)
    assert run([entry(long_key, use_regex=True)], long_key).entries == ()


def test_order_by_insertion_order() -> None:
    book = [
        entry("a", content="third", insertion_order=30),
        entry("a", content="first", insertion_order=1),
        entry("a", content="second", insertion_order=20),
    ]
    assert texts(run(book, "a")) == ["first", "second", "third"]


def test_budget_drops_the_lowest_order_first() -> None:
    body = "x" * 40  # 10 tokens each
    book = [
        entry("a", content=f"low {body}", insertion_order=1),
        entry("a", content=f"high {body}", insertion_order=100),
        entry("a", content=f"mid {body}", insertion_order=50),
    ]
    high, mid = estimate_tokens(f"high {body}"), estimate_tokens(f"mid {body}")
    assert [t.split()[0] for t in texts(run(book, "a", budget=high + mid))] == ["mid", "high"]
    assert [t.split()[0] for t in texts(run(book, "a", budget=high + mid - 1))] == ["high"]
    assert run(book, "a", budget=0).entries == ()


def test_priority_ranks_before_insertion_order_and_book_budget_wins() -> None:
    book = [
        entry("a", content="kept " + "x" * 36, insertion_order=1, priority=99),
        entry("a", content="lost " + "x" * 36, insertion_order=100, priority=1),
    ]
    assert [t.split()[0] for t in texts(run(book, "a", token_budget=12))] == ["kept"]


def test_placement() -> None:
    book = [
        entry("a", content="before", position="before_char"),
        entry("a", content="after", position="after_char"),
        entry("a", content="default"),
        entry("a", content="st-depth", extensions={"position": 4, "depth": 3, "role": 1}),
        entry("a", content="st-after", extensions={"position": 1}, position="before_char"),
        entry("a", content="@@position after_desc\ndesc"),
        entry("a", content="@@depth 0\n@@role assistant\nnow"),
    ]
    result = run(book, "a")
    assert result.texts("before_char") == ["before", "default"]
    assert result.texts("after_char") == ["after", "st-after"]
    assert result.texts("after_desc") == ["desc"]
    assert [(e.text, e.depth, e.role) for e in result.in_chat] == [
        ("st-depth", 3, "user"),
        ("now", 0, "assistant"),
    ]


def test_recursive_scanning_only_when_the_book_asks() -> None:
    book = [
        entry("lamp", content="The lamp is fed with whale oil."),
        entry("whale", content="Whales pass in spring."),
        entry("spring", content="{{// not scanned: winter}}{{hidden_key:winter}}Spring tides."),
        entry("winter", content="Winter storms."),
        entry("summer", content="Summer."),
    ]
    assert len(run(book, "the lamp").entries) == 1
    found = texts(run(book, "the lamp", recursive_scanning=True))
    assert "Winter storms." in found and "Summer." not in found and len(found) == 4


def test_decorators_activate_and_dont_activate() -> None:
    book = [
        entry("nothing", content="@@activate\nforced"),
        entry("lamp", content="@@dont_activate\nnever"),
        entry("lamp", content="@@dont_activate\n@@activate\nactivate wins"),
        entry("lamp", content="@@dont_activate\nconstant too", constant=True),
    ]
    assert texts(run(book, "the lamp")) == ["forced", "activate wins"]


def test_decorator_scan_depth_and_keys() -> None:
    book = [
        entry("lamp", content="@@scan_depth 4\ndeep"),
        entry("lamp", content="@@additional_keys night,dark\nat night"),
        entry("lamp", content="@@exclude_keys storm\ncalm"),
    ]
    msgs = ["the lamp", "one", "two", "three"]
    assert texts(run(book, *msgs)) == ["deep"]
    assert texts(run(book, "the lamp at night")) == ["deep", "at night", "calm"]
    assert texts(run(book, "the lamp in a storm")) == ["deep"]


def test_greeting_and_counting_decorators() -> None:
    book = [
        entry(content="@@is_greeting 1\nsecond greeting", constant=True),
        entry(content="@@activate_only_after 2\nlater", constant=True),
        entry(content="@@activate_only_every 3\nevery third", constant=True),
    ]
    assert texts(run(book, "hi", greeting_index=0, character_messages=1)) == []
    assert texts(run(book, "hi", greeting_index=1, character_messages=3)) == [
        "second greeting",
        "later",
        "every third",
    ]


def test_decorators_are_never_in_the_text() -> None:
    content = "@@depth 2\n@@unknown_thing 5\n@@@scan_depth 9\n\nThe text.\n@@role user"
    [active] = run([entry(content=content, constant=True)]).entries
    assert active.text == "The text." and "@@" not in active.text
    assert (active.placement, active.depth, active.role) == ("depth", 2, "user")


def test_empty_content_adds_nothing() -> None:
    assert run([entry("a", content="@@depth 1\n")], "a").entries == ()


ST = {"selectiveLogic": 0, "match_whole_words": None, "display_index": 0}


def test_sillytavern_entries_are_read_as_sillytavern_reads_them() -> None:
    # SillyTavern writes use_regex true on every entry and matches keys as words.
    wood = entry("wood", content="woods", use_regex=True, extensions=ST)
    assert run([wood], "a woodpecker").entries == ()
    assert run([wood], "into the wood").entries != ()
    always = entry(content="always", use_regex=True, constant=True, extensions=ST)
    assert texts(run([always])) == ["always"]
    parts = entry(
        "wood", content="parts", use_regex=True, extensions={**ST, "match_whole_words": False}
    )
    assert run([parts], "a woodpecker").entries != ()
    deep = entry("lamp", content="deep", extensions={**ST, "scan_depth": 4})
    assert run([deep], "the lamp", "a", "b", "c").entries != ()


@pytest.mark.parametrize(
    ("logic", "message", "hit"),
    [
        pytest.param(0, "lamp night", True, id="and-any"),
        pytest.param(0, "lamp", False, id="and-any-none"),
        pytest.param(1, "lamp night dark", False, id="not-all-all"),
        pytest.param(1, "lamp night", True, id="not-all-some"),
        pytest.param(2, "lamp night", False, id="not-any-some"),
        pytest.param(2, "lamp", True, id="not-any-none"),
        pytest.param(3, "lamp night", False, id="and-all-some"),
        pytest.param(3, "lamp night dark", True, id="and-all-all"),
    ],
)
def test_sillytavern_selective_logic(logic: int, message: str, hit: bool) -> None:
    lamp = entry(
        "lamp",
        selective=True,
        secondary_keys=("night", "dark"),
        extensions={**ST, "selectiveLogic": logic},
    )
    assert bool(run([lamp], message).entries) is hit


def test_sillytavern_recursion_settings() -> None:
    book = [
        entry(
            "lamp",
            content="The lamp burns whale oil.",
            extensions={**ST, "prevent_recursion": True},
        ),
        entry("whale", content="Whales."),
        entry("lamp", content="Lamps need oil.", extensions=ST),
        entry("oil", content="Oil is dear.", extensions={**ST, "exclude_recursion": True}),
    ]
    found = texts(run(book, "the lamp", recursive_scanning=True))
    assert found == ["The lamp burns whale oil.", "Lamps need oil."]


@settings(max_examples=300, database=None, deadline=None)
@given(
    key=st.from_regex(r"[A-Za-z0-9_éÉ]{1,6}", fullmatch=True),
    text=st.text(st.sampled_from("aAbBéÉ_0 -.\n"), max_size=30),
    case_sensitive=st.booleans(),
)
def test_one_word_keys_match_as_the_word_pattern_does(
    key: str, text: str, case_sensitive: bool
) -> None:
    """The fast path for one-word keys (a lookup in the text's words) agrees with
    searching for the key as a whole word."""
    fast = run([entry(key, case_sensitive=case_sensitive)], text).entries != ()
    flags = 0 if case_sensitive else re.IGNORECASE
    slow = re.search(rf"(?<!\w){re.escape(key)}(?!\w)", text, flags) is not None
    assert fast is slow
