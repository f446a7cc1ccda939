"""``Backoff``: doubling pauses, the cap, full jitter from an injected random source, and
the pauses of the retry loops that use it."""

from __future__ import annotations

import math
from typing import Any

import pytest

from bot.backoff import EQUAL_JITTER, FULL_JITTER, Backoff
from bot.leases import LeasePolicy
from bot.retrying import StoreRetry


class Draws:
    """A random source that notes each range it was asked for and answers a fixed
    fraction of it."""

    def __init__(self, fraction: float):
        self.fraction = fraction
        self.ranges: list[tuple[float, float]] = []

    def __call__(self, low: float, high: float) -> float:
        self.ranges.append((low, high))
        return low + (high - low) * self.fraction


@pytest.mark.parametrize(
    ("backoff", "expected"),
    [
        pytest.param(Backoff(0.5), [0.5, 1.0, 2.0, 4.0, 8.0, 16.0], id="doubling"),
        pytest.param(Backoff(0.5, cap=3.0), [0.5, 1.0, 2.0, 3.0, 3.0, 3.0], id="capped"),
        pytest.param(Backoff(0.0), [0.0] * 6, id="zero-base"),
    ],
)
def test_pauses_double_up_to_the_cap(backoff: Backoff, expected: list[float]) -> None:
    assert [backoff.delay(failures) for failures in range(1, 7)] == expected


def test_full_jitter_draws_between_zero_and_the_exponential_pause() -> None:
    draws = Draws(0.25)
    backoff = Backoff(0.1, cap=0.3, jitter=FULL_JITTER, uniform=draws)
    pauses = [backoff.delay(failures) for failures in range(1, 5)]
    assert draws.ranges == [(0.0, 0.1), (0.0, 0.2), (0.0, 0.3), (0.0, 0.3)]
    assert pauses == pytest.approx([0.025, 0.05, 0.075, 0.075])


def test_equal_jitter_draws_between_half_the_pause_and_all_of_it() -> None:
    draws = Draws(0.0)
    backoff = Backoff(1.0, cap=3.0, jitter=EQUAL_JITTER, uniform=draws)
    assert [backoff.delay(failures) for failures in range(1, 4)] == [0.5, 1.0, 1.5]
    assert draws.ranges == [(0.5, 1.0), (1.0, 2.0), (1.5, 3.0)]


def test_without_jitter_the_random_source_is_never_asked() -> None:
    draws = Draws(0.5)
    assert Backoff(1.0, uniform=draws).delay(3) == 4.0
    assert draws.ranges == []


def test_a_long_outage_neither_overflows_nor_passes_the_cap() -> None:
    assert Backoff(0.5, cap=30.0).delay(100_000) == 30.0
    assert math.isfinite(Backoff(1.0).delay(100_000))


def test_the_first_failure_is_never_below_the_base() -> None:
    assert Backoff(0.5).delay(0) == Backoff(0.5).delay(1) == 0.5


@pytest.mark.parametrize(
    "arguments",
    [
        pytest.param({"base": -1.0}, id="negative-base"),
        pytest.param({"base": 1, "cap": -1}, id="negative-cap"),
        pytest.param({"base": 1, "jitter": (1.0, 0.5)}, id="jitter-upside-down"),
        pytest.param({"base": 1, "jitter": (-0.5, 1.0)}, id="negative-jitter"),
    ],
)
def test_nonsense_is_refused(arguments: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="backoff"):
        Backoff(**arguments)


def test_the_store_retry_keeps_its_full_jitter_and_cap() -> None:
    policy = StoreRetry(attempts=5, backoff=0.05, max_backoff=0.15)
    for failures, ceiling in [(1, 0.05), (2, 0.1), (3, 0.15), (4, 0.15)]:
        pauses = [policy.pause(failures) for _ in range(200)]
        assert all(0 <= pause <= ceiling for pause in pauses)
        assert len(set(pauses)) > 1, "random, so that callers failing together spread out"


def test_a_lease_wait_keeps_to_its_deadline() -> None:
    policy = LeasePolicy(backoff=0.05, max_backoff=0.5)
    for tries, remaining, ceiling in [(1, 9.0, 0.05), (3, 9.0, 0.2), (9, 9.0, 0.5), (9, 0.1, 0.1)]:
        pause = policy.pause(tries, remaining)
        assert ceiling / 2 <= pause <= ceiling
    assert policy.pause(2, -1.0) == 0.0, "past the deadline: no pause"
