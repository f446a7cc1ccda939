"""The clock tests move by hand: wall time or monotonic, as its owner uses it."""

from __future__ import annotations

import time


class Clock:
    """Reads ``now``; ``advance`` moves it. Starts at ``start``, or at the real time."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
