"""retry_transient when the caller made the first try itself (the engine's fast path)."""

from __future__ import annotations

import pytest

from bot.errors import StoreUnavailable
from bot.retrying import StoreRetry, retry_transient

NO_PAUSE = StoreRetry(attempts=3, backoff=0.0)


async def test_a_first_try_made_by_the_caller_counts_among_the_attempts() -> None:
    calls: list[int] = []
    retried: list[str] = []

    async def always_down() -> int:
        calls.append(1)
        raise StoreUnavailable(f"down {len(calls) + 1}")

    with pytest.raises(StoreUnavailable, match="down 3"):
        await retry_transient(
            always_down, NO_PAUSE, on_retry=lambda e: retried.append(str(e)),
            failed=StoreUnavailable("down 1"),
        )  # fmt: skip
    assert len(calls) == NO_PAUSE.attempts - 1  # three tries in all, the caller's first
    assert retried == ["down 1", "down 2"]


async def test_a_failed_first_try_is_tried_again_and_can_succeed() -> None:
    async def back_up() -> str:
        return "read"

    assert await retry_transient(back_up, NO_PAUSE, failed=StoreUnavailable("blip")) == "read"


async def test_with_one_attempt_the_callers_failure_is_final() -> None:
    async def never_called() -> None:
        raise AssertionError("tried again")

    with pytest.raises(StoreUnavailable, match="only try"):
        await retry_transient(
            never_called, StoreRetry(attempts=1), failed=StoreUnavailable("only try")
        )
