"""Macros in card text: the Character Card V3 set, plus what SillyTavern users expect.

===========================  ================================================
``{{char}}``, ``<char>``,    the character: its V3 nickname if it has one,
``<bot>``, ``<BOT>``         else its name
``{{user}}``, ``<user>``,    the user's display name (their persona's name)
``<USER>``
``{{original}}``             the default text a card's prompt replaces
``{{random:a,b,c}}``         one of the values, anew each time (``\\,`` escapes
                             a comma; SillyTavern's ``{{random::a::b}}`` too)
``{{pick:a,b,c}}``           one of the values, the same for the whole
                             conversation (it depends on ``seed``)
``{{roll:N}}``,              a number from 1 to N (``{{roll:2d6}}``: the sum
``{{roll:dN}}``              of two rolls)
``{{reverse:text}}``         the text backwards
``{{// ...}}``,              nothing (``hidden_key``'s text still counts when a
``{{comment:...}}``,         lorebook scans recursively: :mod:`bot.lorebook`)
``{{hidden_key:...}}``
``{{time}}``, ``{{date}}``,  the clock's time ("3:05 PM"), date ("December 6,
``{{weekday}}``              2026") and day ("Sunday")
===========================  ================================================

Names are case-insensitive; a macro may hold another (``{{reverse:{{char}}}}``);
anything else in ``{{...}}`` is left as written. Values put in are never expanded
again, so a user named ``{{char}}`` stays that. Macros apply to the card's text only,
never to what a user typed.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

_INNERMOST = re.compile(r"\{\{((?:(?!\{\{|\}\}).)*)\}\}", re.DOTALL)
_ANGLE = re.compile(r"<(char|bot|user)>", re.IGNORECASE)
_ROLL = re.compile(r"\s*(?:(\d{1,3})?\s*d\s*)?(\d{1,9})\s*", re.IGNORECASE)
# Values already put in are parked behind private-use characters until the end, so
# that no pass expands them again.
_PARK_OPEN, _PARK_CLOSE = "\ue000", "\ue001"
_PARKED = re.compile(f"{_PARK_OPEN}(\\d+){_PARK_CLOSE}")
_MAX_PASSES = 8
_MAX_DICE = 100


def _now() -> datetime:
    return datetime.now().astimezone()


@dataclass(frozen=True, slots=True)
class MacroContext:
    """What the macros stand for in one conversation.

    ``seed`` names the conversation (``{{pick}}`` is stable for one seed); ``rng``
    draws ``{{random}}`` and ``{{roll}}``; ``clock`` gives the time macros.
    """

    char: str
    user: str
    original: str = ""
    seed: str = ""
    rng: random.Random = field(default_factory=random.Random, compare=False)
    clock: Callable[[], datetime] = field(default=_now, compare=False)

    def with_original(self, original: str) -> MacroContext:
        """The same context with ``{{original}}`` standing for ``original``."""
        return MacroContext(self.char, self.user, original, self.seed, self.rng, self.clock)


def expand_macros(text: str, ctx: MacroContext) -> str:
    """``text`` with every known macro replaced (see the module docstring)."""
    if "{{" not in text and "<" not in text:
        return text
    parked: list[str] = []

    def park(value: str) -> str:
        parked.append(value)
        return f"{_PARK_OPEN}{len(parked) - 1}{_PARK_CLOSE}"

    text = text.replace(_PARK_OPEN, "").replace(_PARK_CLOSE, "")
    text = _ANGLE.sub(lambda m: park(ctx.user if m[1].lower() == "user" else ctx.char), text)
    picks = 0
    for _ in range(_MAX_PASSES):
        changed = False

        def one(match: re.Match[str]) -> str:
            nonlocal changed, picks
            value = _macro(match[1], ctx, picks, lambda s: _unpark(s, parked))
            if value is None:
                return match[0].replace("{{", "\ue002").replace("}}", "\ue003")
            changed = True
            if match[1].strip().lower().startswith("pick"):
                picks += 1
            return park(value)

        text = _INNERMOST.sub(one, text)
        if not changed:
            break
    text = text.replace("\ue002", "{{").replace("\ue003", "}}")
    return _unpark(text, parked)


def _unpark(text: str, parked: list[str]) -> str:
    for _ in range(_MAX_PASSES):  # a parked value may hold others (reverse of a name)
        if _PARK_OPEN not in text:
            break
        text = _PARKED.sub(lambda m: parked[int(m[1])], text)
    return text


def _macro(body: str, ctx: MacroContext, picks: int, unpark: Callable[[str], str]) -> str | None:
    """The value of one macro, or ``None`` to leave it as written."""
    name, sep, arg = body.partition(":")
    key = name.strip().lower()
    if not sep:
        if key.startswith("//"):
            return ""
        simple = {
            "char": ctx.char,
            "user": ctx.user,
            "original": ctx.original,
        }
        if key in simple:
            return simple[key]
        if key in ("time", "date", "weekday"):
            now = ctx.clock()
            if key == "time":
                return now.strftime("%I:%M %p").lstrip("0")
            if key == "date":
                return f"{now:%B} {now.day}, {now.year}"
            return now.strftime("%A")
        return None
    if key.startswith("//") or key in ("comment", "hidden_key"):
        return ""
    if key == "reverse":
        return unpark(arg)[::-1]
    if key == "roll":
        return _roll(arg, ctx.rng)
    if key in ("random", "pick"):
        choices = _choices(arg)
        if not choices:
            return ""
        if key == "random":
            return ctx.rng.choice(choices)
        digest = hashlib.sha256(f"{ctx.seed}\0{picks}\0{arg}".encode()).digest()
        return choices[int.from_bytes(digest[:8], "big") % len(choices)]
    return None


def _choices(arg: str) -> list[str]:
    if arg.startswith(":"):  # SillyTavern's {{random::a::b}}
        return arg[1:].split("::")
    parts = re.split(r"(?<!\\),", arg)
    return [part.replace("\\,", ",") for part in parts]


def _roll(arg: str, rng: random.Random) -> str | None:
    match = _ROLL.fullmatch(arg)
    if match is None:
        return None
    count, sides = int(match[1] or 1), int(match[2])
    if sides < 1 or not 1 <= count <= _MAX_DICE:
        return None
    return str(sum(rng.randint(1, sides) for _ in range(count)))
