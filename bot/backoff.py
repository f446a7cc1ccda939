"""``Backoff``: the pause before trying again, one formula for every retry loop.

The pause after the ``n``-th failure in a row is ``base * 2**(n - 1)``, at most ``cap``.
With ``jitter`` it is drawn uniformly from ``[0, that]`` ("full jitter"), so that many
callers that failed together (a store or an API that was down for everyone) do not come
back together; without it the pause is exact, which suits a single caller waiting out
one platform's hiccup. As discord.py's ``ExponentialBackoff``, but stateless: each
retry loop counts its own failures, and the random source can be injected for tests.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

#: The exponent stops growing here: a long outage must not overflow a float, and
#: ``base * 2**62`` is past any sensible cap anyway.
_MAX_EXPONENT = 62


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential pauses from ``base`` seconds, doubling, capped at ``cap``."""

    base: float
    cap: float = math.inf
    #: Full jitter: a pause is random in ``[0, the exponential pause]``.
    jitter: bool = False
    #: ``uniform(low, high)``: the random source of the jitter.
    uniform: Callable[[float, float], float] = field(default=random.uniform, compare=False)

    def __post_init__(self) -> None:
        if self.base < 0 or self.cap < 0:
            raise ValueError("a backoff's base and cap must not be negative")

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failure in a row (1 for the first)."""
        exponent = min(max(failures, 1) - 1, _MAX_EXPONENT)
        ceiling = min(self.cap, self.base * 2.0**exponent)
        return self.uniform(0.0, ceiling) if self.jitter else ceiling
