"""The login throttle: failures per key in a sliding window."""

from __future__ import annotations

import pytest

from auth import LoginThrottle, LoginThrottled
from tests.support.clocks import Clock


def fail_once(throttle: LoginThrottle, *keys: str) -> None:
    with throttle.attempt(keys) as fail:
        fail()


def test_the_limit_refuses_with_a_retry_after(clock: Clock) -> None:
    throttle = LoginThrottle(limit=3, window=900, clock=clock)
    for _ in range(3):
        fail_once(throttle, "account:ada")
        clock.advance(10)
    with pytest.raises(LoginThrottled) as refused, throttle.attempt(["account:ada"]):
        pass
    # the oldest failure leaves the window 900 s after it happened, 30 s ago
    assert refused.value.retry_after == 870
    clock.advance(871)
    with throttle.attempt(["account:ada"]):
        pass


def test_successes_do_not_count(clock: Clock) -> None:
    throttle = LoginThrottle(limit=2, clock=clock)
    for _ in range(10):
        with throttle.attempt(["account:ada"]):
            pass
    assert throttle.failures("account:ada") == 0


@pytest.mark.parametrize(
    ("keys", "blocked"),
    [
        pytest.param(["account:ada", "address:1.2.3.4"], True, id="same-account"),
        pytest.param(["account:bob", "address:1.2.3.4"], False, id="other-account"),
    ],
)
def test_every_key_of_an_attempt_must_be_clear(
    clock: Clock, keys: list[str], blocked: bool
) -> None:
    throttle = LoginThrottle(limits={"account": 2, "address": 5}, clock=clock)
    for _ in range(2):
        fail_once(throttle, "account:ada", "address:1.2.3.4")
    assert (throttle.retry_after(keys) > 0) is blocked


def test_attempts_in_flight_count_so_a_burst_cannot_pass_together(clock: Clock) -> None:
    throttle = LoginThrottle(limit=2, clock=clock)
    with (
        throttle.attempt(["account:ada"]),
        throttle.attempt(["account:ada"]),
        pytest.raises(LoginThrottled),
        throttle.attempt(["account:ada"]),
    ):
        pass
    with throttle.attempt(["account:ada"]):  # settled without failures: free again
        pass


def test_memory_stays_bounded(clock: Clock) -> None:
    throttle = LoginThrottle(limit=3, clock=clock, max_keys=100)
    for n in range(1000):
        fail_once(throttle, f"address:{n}")
    assert len(throttle._entries) <= 100
