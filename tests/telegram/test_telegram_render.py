"""Rendering replies for Telegram: Markdown to HTML, escaping, splitting (no I/O)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.telegram.render import CURSOR, Span, parse_markdown, render, tg_len
from tests.support.telegram_server import visible_text


@pytest.mark.parametrize(
    ("source", "html"),
    [
        pytest.param("a < b & c > d", "a &lt; b &amp; c &gt; d", id="escaping"),
        pytest.param("<b>x</b>", "&lt;b&gt;x&lt;/b&gt;", id="tags-are-text"),
        pytest.param("**bold** and __also__", "<b>bold</b> and <b>also</b>", id="bold"),
        pytest.param("*it* and _it_", "<i>it</i> and <i>it</i>", id="italic"),
        pytest.param("~~gone~~", "<s>gone</s>", id="strike"),
        pytest.param("use `a<b`", "use <code>a&lt;b</code>", id="inline-code"),
        pytest.param(
            "```python\nif a < b:\n    pass\n```",
            '<pre><code class="language-python">if a &lt; b:\n    pass</code></pre>',
            id="fenced-code",
        ),
        pytest.param("```\nopen", "<pre>open</pre>", id="unclosed-fence"),
        pytest.param(
            "[docs](https://example.org/a?b=1&c=2)",
            '<a href="https://example.org/a?b=1&amp;c=2">docs</a>',
            id="link",
        ),
        pytest.param("[x](javascript:alert(1))", "[x](javascript:alert(1))", id="no-js-links"),
        pytest.param("[me](tg://user?id=1)", "[me](tg://user?id=1)", id="no-tg-mentions"),
        pytest.param("## Heading\ntext", "<b>Heading</b>\ntext", id="heading"),
        pytest.param("snake_case_name and 2*3*4", "snake_case_name and 2*3*4", id="not-markup"),
        pytest.param("* bullet\n* list", "* bullet\n* list", id="bullets"),
        pytest.param("**unclosed", "**unclosed", id="unclosed-bold"),
    ],
)
def test_markdown_becomes_telegram_html(source: str, html: str) -> None:
    [piece] = render(source, 4096)
    assert piece.html == html
    assert visible_text(piece.html, "HTML") == piece.plain


def test_partial_text_ends_in_the_cursor() -> None:
    [piece] = render("still writing", 4096, partial=True)
    assert piece.html.endswith(CURSOR) and piece.plain == "still writing" + CURSOR


def test_blank_text_gives_no_pieces() -> None:
    assert render(" \n\n ", 4096) == []


def paragraphs(count: int, size: int) -> str:
    return "\n\n".join(f"{n:03d} " + "word " * ((size - 4) // 5) for n in range(count))


@pytest.mark.parametrize(
    ("text", "boundary"),
    [
        pytest.param(paragraphs(12, 500), r"d *\n\n", id="paragraphs"),
        pytest.param("\n".join("line of text " * 10 for _ in range(60)), r"t *\n", id="lines"),
        pytest.param("A sentence ends here! " * 400, r"! ", id="sentences"),
        pytest.param("words " * 2000, r"s ", id="words"),
    ],
)
def test_split_on_the_best_boundary(text: str, boundary: str) -> None:
    pieces = render(text, 4096)
    assert len(pieces) > 1
    squash = re.compile(r"\s+")
    rebuilt = " ".join(p.plain for p in pieces)
    assert squash.sub(" ", rebuilt).strip() == squash.sub(" ", text).strip()
    position = 0
    for piece in pieces[:-1]:
        assert 2000 < tg_len(piece.plain) <= 4096 - len(CURSOR), "the room is used"
        position = text.index(piece.plain, position) + len(piece.plain)
        # ``boundary`` matches from the last character of the piece on.
        assert re.match(boundary, text[position - 1 :])


def test_one_long_word_is_cut() -> None:
    pieces = render("x" * 9000, 4096)
    assert [len(p.plain) for p in pieces] == [4094, 4094, 812]


def test_length_counts_utf16_units() -> None:
    pieces = render("😀" * 3000, 4096)  # each emoji is 2 UTF-16 units
    assert all(tg_len(p.plain) <= 4096 for p in pieces)
    assert "".join(p.plain for p in pieces) == "😀" * 3000


def test_a_formatted_run_is_not_cut_when_a_boundary_outside_exists() -> None:
    text = "intro " * 500 + "**" + "bold words " * 150 + "end** outro"
    pieces = render(text, 4096)
    assert all(visible_text(p.html, "HTML") == p.plain for p in pieces)
    bold = [p for p in pieces if "<b>" in p.html]
    assert len(bold) == 1, "the bold run stays in one piece"


def test_a_run_longer_than_a_message_is_closed_and_reopened() -> None:
    code = "\n".join(f"    line_{n} = {n} < {n + 1}" for n in range(400))
    pieces = render(f"Here:\n```python\n{code}\n```\nDone.", 4096)
    assert len(pieces) >= 3
    for piece in pieces:
        assert visible_text(piece.html, "HTML") == piece.plain  # balanced, escaped
        assert tg_len(piece.plain) <= 4096
    code_pieces = [p for p in pieces if "<pre>" in p.html]
    assert len(code_pieces) >= 2
    assert all(p.html.count("<pre>") == p.html.count("</pre>") for p in code_pieces)
    assert code_pieces[1].plain.startswith("    line_"), "indentation kept at a cut"


def test_parse_markdown_spans() -> None:
    assert parse_markdown("a **b** `c`") == [
        Span("a "),
        Span("b", "b"),
        Span(" "),
        Span("c", "code"),
    ]


_TOKENS = [*"ab <>&*_`~[]()#\n. ", "😀", "é", "**", "```", "\n\n", "word ", "[l](https://x.y)"]
_TEXT = st.lists(st.sampled_from(_TOKENS), max_size=800).map("".join)


@settings(max_examples=150, deadline=None)
@given(text=_TEXT, limit=st.integers(min_value=100, max_value=600))
def test_every_piece_is_valid_and_nothing_is_lost(text: str, limit: int) -> None:
    pieces = render(text, limit)
    whole = render(text, 10**9)
    assert len(whole) <= 1
    for piece in pieces:
        assert visible_text(piece.html, "HTML") == piece.plain
        assert 0 < tg_len(piece.plain) <= limit
    squash = re.compile(r"\s+")
    joined = squash.sub("", "".join(p.plain for p in pieces))
    assert joined == squash.sub("", whole[0].plain if whole else "")
