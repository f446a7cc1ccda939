"""Link codes: how a logged-in web user binds a Discord or Telegram identity.

A code is short enough to type (8 characters from an alphabet without look-alikes,
shown as ``ABCD-EFGH``), single use, valid for :data:`LINK_CODE_TTL` seconds, and
stored only as a hash. 32**8 codes and a per-identity attempt limit make guessing
hopeless. An account holds at most :data:`MAX_LIVE_CODES` (``LINKING__MAX_LIVE_CODES``)
live codes, so making codes in a loop fills nothing. A code alone never binds: see
:mod:`bot.link_consent`.
"""

from __future__ import annotations

import hashlib
import secrets

from bot.store.base import LinkCodeStore

LINK_CODE_TTL = 600.0
_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I
_LENGTH = 8


def new_link_code() -> str:
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(_LENGTH))
    return f"{raw[:4]}-{raw[4:]}"


def normalise_link_code(code: str) -> str:
    """Upper-case, without spaces or dashes: what users type varies, the code doesn't."""
    return "".join(ch for ch in code.upper() if ch.isalnum())


def hash_link_code(code: str) -> str:
    return hashlib.sha256(normalise_link_code(code).encode()).hexdigest()


def looks_like_link_code(code: str) -> bool:
    normal = normalise_link_code(code)
    return len(normal) == _LENGTH and all(ch in _ALPHABET for ch in normal)


#: The most live codes an account holds by default: making another replaces the oldest.
MAX_LIVE_CODES = 5


async def create_link_code(
    store: LinkCodeStore, account_id: str, now: float, *, max_live: int = MAX_LIVE_CODES
) -> str:
    """Make a new code for the account, store its hash, and return the code. The
    account keeps at most ``max_live`` live codes: the oldest goes to make room."""
    code = new_link_code()
    await store.put_link_code(
        hash_link_code(code), account_id, now + LINK_CODE_TTL, max_live=max_live
    )
    return code
