"""V3 decorator lines: values, fallbacks, first-wins, and removal from the text."""

from __future__ import annotations

import pytest

from bot.lore_decorators import Decorators, parse_decorators


@pytest.mark.parametrize(
    ("content", "decorators", "text"),
    [
        pytest.param("plain", Decorators(), "plain", id="none"),
        pytest.param("@@depth 0\ntext", Decorators(depth=0), "text", id="depth"),
        pytest.param("@@depth x\ntext", Decorators(), "text", id="bad-value-ignored"),
        pytest.param("@@depth 1\n@@depth 5\nt", Decorators(depth=1), "t", id="first-wins"),
        pytest.param(
            "@@risu_thing 4\n@@@scan_depth 4\nt", Decorators(scan_depth=4), "t", id="fallback-used"
        ),
        pytest.param("@@depth 2\n@@@depth 9\nt", Decorators(depth=2), "t", id="fallback-skipped"),
        pytest.param(
            "@@a 1\n@@@b 2\n@@@position after_desc\nt",
            Decorators(position="after_desc"),
            "t",
            id="fallback-chain",
        ),
        pytest.param(
            "@@additional_keys a, b\\,c ,\nt",
            Decorators(additional_keys=("a", "b,c")),
            "t",
            id="list",
        ),
        pytest.param("@@role robot\nt", Decorators(), "t", id="bad-role"),
        pytest.param(
            "@@activate\n\n\nt\n", Decorators(activate=True), "t", id="blank-lines-trimmed"
        ),
        pytest.param("email me @@ home\nt", Decorators(), "email me @@ home\nt", id="not-a-line"),
    ],
)
def test_parse(content: str, decorators: Decorators, text: str) -> None:
    assert parse_decorators(content) == (decorators, text)
