"""Example dialogue as blocks: char-only blocks, You:/<USER>: speakers, narration."""

from __future__ import annotations

import pytest

from bot.dialogue import ExampleLine, exchanges, parse_example_blocks

U, C = "user", "char"


@pytest.mark.parametrize(
    ("text", "blocks"),
    [
        pytest.param("", (), id="empty"),
        pytest.param(
            "<START>\n{{char}}: I only talk.\n<START>\n{{char}}: Me too.",
            (((C, "I only talk."),), ((C, "Me too."),)),
            id="char-only-blocks-kept",
        ),
        pytest.param(
            "You: hi\nNell: hello\n<user>: bye\n<bot>: bye now",
            (((U, "hi"), (C, "hello"), (U, "bye"), (C, "bye now")),),
            id="you-and-angle-speakers",
        ),
        pytest.param(
            "<START>\n*The wind howls.*\n{{user}}: Cold?\n{{char}}: Always.",
            (((C, "*The wind howls.*"), (U, "Cold?"), (C, "Always.")),),
            id="narration-before-a-speaker",
        ),
        pytest.param(
            "<START>\n{{user}}: a\n<START>\n\n<START>\n{{char}}: b",
            (((U, "a"),), ((C, "b"),)),
            id="empty-blocks-drop",
        ),
        pytest.param(
            "{{char}}: line one\nline two\n\n{{char}}: again",
            (((C, "line one\nline two\n\nagain"),),),
            id="merge-and-continuation",
        ),
    ],
)
def test_blocks(text: str, blocks: tuple[tuple[tuple[str, str], ...], ...]) -> None:
    expected = tuple(tuple(ExampleLine(r, t) for r, t in block) for block in blocks)  # type: ignore[arg-type]
    assert parse_example_blocks(text, ["Nell"]) == expected


def test_exchanges_pair_a_user_line_with_the_answer() -> None:
    blocks = parse_example_blocks("<START>\n{{char}}: hi\n{{user}}: q\n{{char}}: a\n{{user}}: left")
    assert exchanges(blocks) == (("q", "a"),)
