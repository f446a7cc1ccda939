"""Accounts, password hashing (argon2id), web sessions, login throttling and link codes.

:class:`AccountService` is the entry point; it depends on ``bot`` only (never on an
adapter), so any front end can use it.
"""

from auth.errors import (
    AuthError,
    InvalidUsername,
    LoginFailed,
    LoginThrottled,
    WeakPassword,
)
from auth.passwords import OWASP_PARAMS, TEST_PARAMS, Argon2Params, PasswordHasher
from auth.service import AccountService
from auth.sessions import SESSION_TTL, NewSession, SessionManager, hash_token
from auth.throttle import LoginThrottle

__all__ = [
    "OWASP_PARAMS",
    "SESSION_TTL",
    "TEST_PARAMS",
    "AccountService",
    "Argon2Params",
    "AuthError",
    "InvalidUsername",
    "LoginFailed",
    "LoginThrottle",
    "LoginThrottled",
    "NewSession",
    "PasswordHasher",
    "SessionManager",
    "WeakPassword",
    "hash_token",
]
