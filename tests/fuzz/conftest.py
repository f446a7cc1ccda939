"""The fuzz tests of the platform boundaries drive the real adapters through the
harnesses of ``tests/telegram`` and ``tests/discord``: this makes their helper modules
(``tg_fake_server``, ``tg_harness``, ``dc_fake_server``, ``dc_helpers``) importable
here, as they are in their own folders."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

_TESTS = Path(__file__).resolve().parent.parent
for _folder in ("telegram", "discord"):
    _path = str(_TESTS / _folder)
    if _path not in sys.path:
        sys.path.append(_path)

with warnings.catch_warnings():
    # As in tests/discord/conftest.py: discord.py imports the standard library's
    # audioop (voice, unused here), which warns on import since Python 3.11.
    warnings.filterwarnings(
        "ignore", message="'audioop' is deprecated", category=DeprecationWarning
    )
    import discord  # noqa: F401
