"""Sessions this worker checked a moment ago, so a web chat message skips the store.

Every request of a logged-in browser needs its account: without this, that is two
reads (the session, then the account) before the message itself. A session found live
is remembered here for ``seconds`` (``WEB__SESSION_CACHE_SECONDS``, default 5 s), never
past its own expiry. So a session revoked on another worker (logout, account deleted)
stops working here within ``seconds`` at most; on this worker at once (:meth:`drop`,
:meth:`drop_account`). Zero turns the cache off. Bounded: the least recently used
sessions go first.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from bot.store.base import Account

#: Sessions remembered at most.
CAPACITY = 10_000


@dataclass(frozen=True, slots=True)
class _Known:
    account: Account
    until: float  # the earlier of: checked + seconds, the session's expiry


class SessionCache:
    """Session token hashes -> their account, for a few seconds (see the module doc)."""

    def __init__(self, seconds: float, capacity: int = CAPACITY) -> None:
        self.seconds = seconds
        self._capacity = capacity
        self._known: OrderedDict[str, _Known] = OrderedDict()

    def get(self, token_hash: str, now: float) -> Account | None:
        known = self._known.get(token_hash)
        if known is None:
            return None
        if known.until <= now:
            del self._known[token_hash]
            return None
        self._known.move_to_end(token_hash)
        return known.account

    def put(self, token_hash: str, account: Account, now: float, expires_at: float) -> None:
        if self.seconds <= 0:
            return
        self._known[token_hash] = _Known(account, min(now + self.seconds, expires_at))
        self._known.move_to_end(token_hash)
        while len(self._known) > self._capacity:
            self._known.popitem(last=False)

    def drop(self, token_hash: str) -> None:
        self._known.pop(token_hash, None)

    def drop_account(self, account_id: str) -> None:
        for token_hash in [h for h, k in self._known.items() if k.account.id == account_id]:
            del self._known[token_hash]
