"""``coalesced``: a text stream read in bursts, its pieces joined between two bursts.

A model streams a word every few tens of milliseconds, and every word read on its own
costs a trip through the whole stack: a socket read, the HTTP client, the SSE decoder,
the guard, the engine, the adapter. No platform shows it that fast: Telegram and
Discord are written at most once a second, a web page is read by eye. So after passing
a piece on, the stream is left unread for ``interval`` seconds; what the model sent
meanwhile waits in the socket, is then read in one go and passed on as one piece.

The first piece passes at once (the time to the first words is what a person notices),
and nothing is lost or reordered: the pieces joined are exactly the pieces read. A
reply that arrives all at once (a fast model) becomes one or two pieces.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing

#: Seconds a stream is left unread after a piece is passed on.
INTERVAL = 0.2
#: After a pause, the pieces read within this many seconds came from what waited in
#: the socket; the first read that takes longer had to wait for the model, and ends
#: the burst.
BURST = 0.005


async def coalesced(
    pieces: AsyncGenerator[str, None],
    *,
    interval: float = INTERVAL,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> AsyncGenerator[str, None]:
    """The text of ``pieces``, the first piece at once and then at most one joined
    piece per burst (see the module docstring). Empty pieces are dropped. Closing
    this stream closes ``pieces``."""
    parts: list[str] = []
    due = float("-inf")  # the first piece passes at once
    async with aclosing(pieces):
        async for piece in pieces:
            if piece:
                parts.append(piece)
            if not parts or clock() < due:
                continue
            yield "".join(parts)
            parts.clear()
            await sleep(interval)
            due = clock() + BURST
    if parts:
        yield "".join(parts)
