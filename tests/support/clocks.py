"""Helpers the accounts tests share."""

from __future__ import annotations


class Clock:
    """A clock tests move by hand (wall time for sessions, monotonic for throttling)."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
