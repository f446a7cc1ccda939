"""Streamed chunks are read as the JSON they are (the SDK's chunk models are skipped for
their cost): text and usage where a server puts them, nothing where it puts nothing."""

from __future__ import annotations

from typing import Any

import pytest

from bot.backends.base import TokenUsage
from bot.backends.openai import read_chunk


def chunk(delta: Any = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"id": "c", "object": "chat.completion.chunk", "model": "m"}
    if delta is not None:
        body["choices"] = [{"index": 0, "delta": delta, "finish_reason": None}]
    return body | extra


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(chunk({"content": "Hello"}), ("Hello", None), id="text"),
        pytest.param(chunk({"role": "assistant", "content": ""}), ("", None), id="role-only"),
        pytest.param(chunk({"content": None}), ("", None), id="null-content"),
        pytest.param(chunk({}), ("", None), id="finish"),
        pytest.param(
            chunk(choices=[], usage={"prompt_tokens": 11, "completion_tokens": 3}),
            ("", TokenUsage(11, 3)),
            id="usage-chunk",
        ),
        pytest.param(
            chunk({"content": "x"}, usage={"prompt_tokens": 2, "completion_tokens": 1}),
            ("x", TokenUsage(2, 1)),
            id="text-and-usage",
        ),
        pytest.param(chunk(usage=None), ("", None), id="usage-null"),
        pytest.param(chunk(usage={"prompt_tokens": "11"}), ("", None), id="usage-odd"),
        pytest.param(chunk(choices="nope"), ("", None), id="choices-not-a-list"),
        pytest.param(chunk(choices=["nope"]), ("", None), id="choice-not-an-object"),
        pytest.param(chunk("nope"), ("", None), id="delta-not-an-object"),
        pytest.param(chunk({"content": ["a"]}), ("", None), id="content-not-text"),
        pytest.param(["not", "a", "chunk"], ("", None), id="not-an-object"),
    ],
)
def test_a_chunk_gives_its_text_and_usage(raw: Any, expected: tuple[str, Any]) -> None:
    assert read_chunk(raw) == expected
