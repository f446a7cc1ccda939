"""Splitting replies into Discord messages: limits, boundaries, code fences."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.discord.render import LIMIT, close_open_fence, split_message

FENCE = "```"


def words(n: int, word: str = "lorem") -> str:
    return " ".join(f"{word}{i}" for i in range(n))


def code_block(lines: int, language: str = "python") -> str:
    body = "\n".join(f"    value_{i} = compute({i})  # keep indentation" for i in range(lines))
    return f"{FENCE}{language}\n{body}\n{FENCE}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", [], id="empty"),
        pytest.param("  \n ", [], id="blank"),
        pytest.param("hello", ["hello"], id="short"),
        pytest.param("x" * LIMIT, ["x" * LIMIT], id="exactly-the-limit"),
        pytest.param("see:\n```py\nprint(1)", ["see:\n```py\nprint(1)\n```"], id="dangling-fence"),
    ],
)
def test_short_texts(text: str, expected: list[str]) -> None:
    assert split_message(text) == expected


def test_prose_is_cut_at_a_paragraph_break_when_one_is_late_enough() -> None:
    first, second = words(200), words(200, "ipsum")  # about 1,500 characters each
    pieces = split_message(f"{first}\n\n{second}")
    assert pieces == [first, second]


def test_one_long_paragraph_is_cut_between_words() -> None:
    text = words(700)
    pieces = split_message(text)
    assert all(len(p) <= LIMIT for p in pieces)
    assert " ".join(pieces) == text


def test_a_cut_avoids_open_inline_markup() -> None:
    text = "a" * 1000 + " **" + " ".join(["bold"] * 300) + "** tail"
    pieces = split_message(text)
    assert all(p.count("**") % 2 == 0 for p in pieces), pieces
    assert " ".join(pieces).split() == text.split()


def test_a_code_block_that_fits_moves_whole_to_the_next_message() -> None:
    prose, block = words(180), code_block(20)  # about 1,300 and 1,000 characters
    pieces = split_message(f"{prose}\n{block}\nafter")
    assert pieces == [prose, f"{block}\nafter"]


def test_a_code_block_too_long_for_one_message_is_closed_and_reopened() -> None:
    block = code_block(120)  # about 6,000 characters
    pieces = split_message(f"Here:\n{block}")
    assert len(pieces) >= 4
    assert pieces[0] == "Here:"
    for piece in pieces[1:]:
        assert len(piece) <= LIMIT
        assert piece.startswith(f"{FENCE}python\n")
        assert piece.endswith(f"\n{FENCE}")
        assert piece.count(FENCE) == 2
    lines = [line for p in pieces[1:] for line in p.split("\n")[1:-1]]
    assert lines == block.split("\n")[1:-1], "every line once, in order, indentation kept"


def test_a_single_huge_word_is_cut_hard() -> None:
    pieces = split_message("x" * 4500)
    assert "".join(pieces) == "x" * 4500
    assert all(len(p) <= LIMIT for p in pieces)


def test_close_open_fence() -> None:
    assert close_open_fence("```py\nx") == "```py\nx\n```"
    assert close_open_fence("```py\nx\n```") == "```py\nx\n```"


# Content never starts with a character a fence's language may hold, so the only
# language in a text is the one of "```py": closing and reopening adds only that.
_ALPHABET = st.sampled_from(
    ["!word", "x" * 70, " ", "\n", "\n\n", "  indented", "**", "`", "``", "```", "```py\n", "—é"]
)


@settings(max_examples=200, deadline=None)
@given(parts=st.lists(_ALPHABET, max_size=400), limit=st.integers(min_value=64, max_value=400))
def test_pieces_fit_balance_their_fences_and_keep_every_word(parts: list[str], limit: int) -> None:
    text = "".join(parts)
    pieces = split_message(text, limit)
    assert all(0 < len(p) <= limit for p in pieces)
    assert all(p.count(FENCE) % 2 == 0 for p in pieces), pieces

    # Apart from whitespace and the fences (and languages) added to close and reopen
    # code blocks, the pieces are the text, in order.
    def letters(value: str) -> str:
        return "".join(value.replace("`", "").replace("py", "").split())

    assert letters("".join(pieces)) == letters(text)
