"""Macros: the V3 set, {{original}}, V1 forms, time macros; unknown ones left alone."""

from __future__ import annotations

import random
from datetime import datetime

import pytest

from bot.macros import MacroContext, expand_macros

NOW = datetime(2026, 12, 6, 15, 5)


def ctx(seed: str = "conv-1", rng_seed: int = 1, original: str = "") -> MacroContext:
    return MacroContext(
        char="Iris",
        user="Sam",
        original=original,
        seed=seed,
        rng=random.Random(rng_seed),
        clock=lambda: NOW,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("{{char}} and {{user}}", "Iris and Sam", id="names"),
        pytest.param("{{CHAR}} {{ User }}", "Iris Sam", id="case-and-spaces"),
        pytest.param("<char>, <bot>, <user>", "Iris, Iris, Sam", id="v3-angle"),
        pytest.param("<BOT> meets <USER>", "Iris meets Sam", id="v1-angle"),
        pytest.param("a{{// a note, with {{char}} }}b", "ab", id="comment-slashes"),
        pytest.param("a{{comment: shown to editors}}b", "ab", id="comment"),
        pytest.param("a{{hidden_key:lamp}}b", "ab", id="hidden-key"),
        pytest.param("{{reverse:abc}}", "cba", id="reverse"),
        pytest.param("{{reverse:{{char}}}}", "sirI", id="nested"),
        pytest.param(
            "{{time}} on {{weekday}}, {{date}}", "3:05 PM on Sunday, December 6, 2026", id="clock"
        ),
        pytest.param(
            "{{unknown}} {{getvar::x}} {{", "{{unknown}} {{getvar::x}} {{", id="unknown-kept"
        ),
        pytest.param("{{roll:abc}}", "{{roll:abc}}", id="bad-roll-kept"),
        pytest.param("no macros", "no macros", id="plain"),
    ],
)
def test_expand(text: str, expected: str) -> None:
    assert expand_macros(text, ctx()) == expected


def test_original_is_the_default_text() -> None:
    assert expand_macros("{{original}} Be brief.", ctx(original="Be Iris.")) == "Be Iris. Be brief."


def test_values_are_not_expanded_again() -> None:
    sneaky = MacroContext(char="Iris", user="{{char}} <bot> {{roll:6}}")
    assert expand_macros("Hi {{user}}", sneaky) == "Hi {{char}} <bot> {{roll:6}}"


def test_random_draws_from_the_list_with_escaped_commas() -> None:
    seen = {expand_macros("{{random:a\\,b,c,d}}", ctx(rng_seed=i)) for i in range(60)}
    assert seen == {"a,b", "c", "d"}


def test_random_sillytavern_double_colon_form() -> None:
    seen = {expand_macros("{{random::x::y}}", ctx(rng_seed=i)) for i in range(40)}
    assert seen == {"x", "y"}


def test_pick_is_stable_per_conversation() -> None:
    text = "{{pick:north,south,east,west,up,down}}"
    once = expand_macros(text, ctx("conv-1", rng_seed=1))
    assert all(expand_macros(text, ctx("conv-1", rng_seed=i)) == once for i in range(20))
    others = {expand_macros(text, ctx(f"conv-{i}")) for i in range(40)}
    assert len(others) > 1  # another conversation may pick another


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [
        pytest.param("{{roll:6}}", 1, 6, id="n"),
        pytest.param("{{roll:d20}}", 1, 20, id="dn"),
        pytest.param("{{roll:D4}}", 1, 4, id="upper-d"),
        pytest.param("{{roll:2d6}}", 2, 12, id="sum"),
        pytest.param("{{roll:1}}", 1, 1, id="one"),
    ],
)
def test_roll(text: str, low: int, high: int) -> None:
    values = {int(expand_macros(text, ctx(rng_seed=i))) for i in range(80)}
    assert min(values) >= low and max(values) <= high
    assert len(values) == min(high - low + 1, len(values)) and (high == low or len(values) > 1)


def test_deep_nesting_is_bounded() -> None:
    text = "{{reverse:" * 30 + "x" + "}}" * 30
    assert expand_macros(text, ctx()).endswith("}}")  # past the bound, left as written
