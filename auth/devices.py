"""Device cookies: a browser that logged in to an account is let in past its lock-out.

The per-account login limit stops guessing one account's password from many addresses,
but on its own it lets anyone lock the real owner out by typing wrong passwords in their
name. Following OWASP's "device cookie" advice, a successful login gives the browser a
token bound to that account; a later login to the same account that presents it is
counted against that device alone (its own limit, for a stolen laptop), not against the
account's limit, which only strangers' guesses fill.

The token is ``<account id>-<expiry>-<mac>``, the mac an HMAC-SHA256 keyed with the
account's password hash: it needs no new secret shared between processes, nobody
without the hash can make one, and changing the password revokes every device token.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from bot.store.base import Account

DEVICE_TTL = 30 * 24 * 3600.0
_SHAPE = re.compile(r"([0-9A-Za-z_]{1,64})-([0-9]{1,12})-([0-9a-f]{64})")


def _mac(account: Account, expires: int) -> str:
    message = f"pb-device|{account.id}|{expires}".encode()
    return hmac.new(account.password_hash.encode(), message, hashlib.sha256).hexdigest()


def device_token(account: Account, now: float, ttl: float = DEVICE_TTL) -> str:
    """A device token for ``account``, valid for ``ttl`` seconds."""
    expires = int(now + ttl)
    return f"{account.id}-{expires}-{_mac(account, expires)}"


def device_id(token: str | None, account: Account, now: float) -> str | None:
    """A short id of the device when ``token`` is a live token of this account, else
    None (no token, another account's, expired, forged, or from before a password
    change)."""
    match = _SHAPE.fullmatch(token or "")
    if match is None or match.group(1) != account.id:
        return None
    expires = int(match.group(2))
    if expires <= now or not hmac.compare_digest(match.group(3), _mac(account, expires)):
        return None
    return match.group(3)[:32]
