"""``Backoff``: the pause before trying again, one formula for every retry loop.

The pause after the ``n``-th failure in a row is ``base * 2**(n - 1)``, at most ``cap``,
times a factor drawn uniformly from the ``jitter`` range:

* :data:`NO_JITTER` (exactly the pause) suits one caller waiting out one platform's
  hiccup, and is what tests can predict;
* :data:`FULL_JITTER` (anywhere from 0 to the pause) spreads out many callers that
  failed together (a store or an API that was down for everyone), so they do not come
  back together;
* :data:`EQUAL_JITTER` (from half the pause to all of it) spreads them too, but never
  retries at once.

As discord.py's ``ExponentialBackoff``, but stateless: each retry loop counts its own
failures, and the random source can be injected for tests.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

#: The range of the factor a pause is multiplied by (see the module doc).
Jitter = tuple[float, float]
NO_JITTER: Jitter = (1.0, 1.0)
FULL_JITTER: Jitter = (0.0, 1.0)
EQUAL_JITTER: Jitter = (0.5, 1.0)
#: The exponent stops growing here: a long outage must not overflow a float, and
#: ``base * 2**62`` is past any sensible cap anyway.
_MAX_EXPONENT = 62


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential pauses from ``base`` seconds, doubling, capped at ``cap``."""

    base: float
    cap: float = math.inf
    jitter: Jitter = NO_JITTER
    #: ``uniform(low, high)``: the random source of the jitter.
    uniform: Callable[[float, float], float] = field(default=random.uniform, compare=False)

    def __post_init__(self) -> None:
        if self.base < 0 or self.cap < 0:
            raise ValueError("a backoff's base and cap must not be negative")
        low, high = self.jitter
        if not 0 <= low <= high:
            raise ValueError("a backoff's jitter must be a range of factors from 0 up")

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failure in a row (1 for the first)."""
        exponent = min(max(failures, 1) - 1, _MAX_EXPONENT)
        ceiling = min(self.cap, self.base * 2.0**exponent)
        low, high = self.jitter
        if low == high:
            return ceiling * low
        return self.uniform(ceiling * low, ceiling * high)
