"""Where a form may send the browser next: same-site relative paths only.

``next=`` comes from the address bar, so an attacker can set it; an open redirect
after login would lend our domain to a phishing page. A target is accepted only when
it is a path on this site: it starts with a single ``/``, has no scheme or host (also
not in the browser-tolerated forms ``//host``, ``/\\host`` or with control characters
that browsers strip), and is of sane length.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

MAX_NEXT = 512


def safe_next(target: str | None, default: str = "/chat") -> str:
    """``target`` when it is a safe local path, else ``default``."""
    if not target or len(target) > MAX_NEXT:
        return default
    if not target.startswith("/") or target.startswith(("//", "/\\")):
        return default
    if any(ord(ch) < 0x20 or ch in "\\\x7f" for ch in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


def login_url(next_path: str) -> str:
    """The login page, coming back to ``next_path`` afterwards."""
    return f"/login?next={quote(safe_next(next_path), safe='/')}"
