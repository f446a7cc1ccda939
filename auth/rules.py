"""The rules for usernames and passwords.

Usernames: 3 to 32 characters of ``A-Z a-z 0-9 _ . -``; kept as typed, unique in any
letter case (the store enforces uniqueness and raises UsernameTaken).

Passwords follow NIST SP 800-63B rather than composition rules: at least 10
characters, at most 256 (argon2 takes any length, the bound only limits abuse), and
not on the bundled list of common passwords. Passwords are NFKC-normalised before
they are checked or hashed, so the same passphrase typed on two keyboards (composed or
decomposed accents, full-width digits) is the same password.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from importlib import resources

from auth.errors import InvalidUsername, WeakPassword

USERNAME_MIN, USERNAME_MAX = 3, 32
PASSWORD_MIN, PASSWORD_MAX = 10, 256
USERNAME_ALPHABET = "letters A–Z, digits, '_', '.' and '-'"
_USERNAME = re.compile(r"[A-Za-z0-9_.-]+")
_COMMON_FILE = "common_passwords.txt"


def check_username(username: str) -> str:
    """The username, stripped of surrounding spaces, or InvalidUsername saying why."""
    name = username.strip()
    if not USERNAME_MIN <= len(name) <= USERNAME_MAX:
        raise InvalidUsername(f"A username has {USERNAME_MIN} to {USERNAME_MAX} characters.")
    if not _USERNAME.fullmatch(name):
        raise InvalidUsername(f"A username may use only {USERNAME_ALPHABET}.")
    return name


def normalise_password(password: str) -> str:
    return unicodedata.normalize("NFKC", password)


@functools.cache
def common_passwords() -> frozenset[str]:
    """The bundled list, casefolded (read once per process, at first use)."""
    text = resources.files("auth").joinpath(_COMMON_FILE).read_text(encoding="utf-8")
    return frozenset(
        line.strip().casefold()
        for line in text.splitlines()
        if line.strip() and not line.startswith("#")
    )


def check_password(password: str, *, username: str = "") -> str:
    """The normalised password, or WeakPassword saying why it is refused."""
    normal = normalise_password(password)
    if len(normal) < PASSWORD_MIN:
        raise WeakPassword(f"A password needs at least {PASSWORD_MIN} characters.")
    if len(normal) > PASSWORD_MAX:
        raise WeakPassword(f"A password has at most {PASSWORD_MAX} characters.")
    folded = normal.casefold()
    if folded in common_passwords():
        raise WeakPassword("That password is too common: it is among the first ones guessed.")
    if username and username.casefold() in folded:
        raise WeakPassword("A password must not contain the username.")
    if len(set(folded)) < 4:
        raise WeakPassword("That password repeats too few characters to be safe.")
    return normal
