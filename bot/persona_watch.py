"""Reloading persona cards while the process runs: cards imported, edited or removed
after the start are served within seconds, with no restart.

The personas directory is polled (a ``stat`` of each card file, off the event loop,
every ``PERSONAS_RELOAD_INTERVAL`` seconds): cheap, with no dependency, and it works the
same on every file system, container volume and platform, which file-system events do
not. Only cards whose file, or options file beside it (``<id>.personabridge.toml``),
changed in size or modification time are read again.

- A new or edited card that loads replaces what came from that file.
- A card that does not load is logged (its file and field) and the version loaded
  before keeps serving; a new file that never loaded is simply not offered.
- A removed card stops being offered. Conversations on it are not deleted: their owners
  talk to the default persona, with a note saying so, until they choose another (or
  the card comes back).
- The default persona cannot go away: removing or breaking its card keeps the old one.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from bot.errors import PersonaError
from bot.personas import Persona, PersonaLibrary, card_files, load_card, sidecar_path

log = logging.getLogger(__name__)

#: What tells that a card changed: (modification time in ns, size) of the card file and
#: of its options file ((-1, -1) when it has none).
Stamp = tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class _Loaded:
    stamp: Stamp
    persona: Persona | None  # None: this version of the file did not load


class PersonaWatcher:
    """Keeps a :class:`PersonaLibrary` in step with the card files of its directory."""

    def __init__(
        self, library: PersonaLibrary, directory: Path, *, default_backend: str = "offline"
    ):
        self.library = library
        self.directory = Path(directory)
        self._default_backend = default_backend
        self._files: dict[Path, _Loaded] = {}
        self.reloads = 0  # how many times a changed set of cards was put in service

    async def start(self) -> None:
        """Note what the library was loaded from, so only later changes count."""
        stamps = await asyncio.to_thread(self._stamps)
        by_source = {persona.source: persona for persona in self.library}
        self._files = {
            path: _Loaded(stamp, by_source.get(str(path))) for path, stamp in stamps.items()
        }

    async def check(self) -> bool:
        """Look once; put a changed set of cards in service. True when it changed."""
        stamps = await asyncio.to_thread(self._stamps)
        changed = [p for p, s in stamps.items() if self._files.get(p, _NEVER).stamp != s]
        removed = [p for p in self._files if p not in stamps]
        if not changed and not removed:
            return False
        files = {p: loaded for p, loaded in self._files.items() if p not in removed}
        for path in changed:
            files[path] = _Loaded(stamps[path], await asyncio.to_thread(self._load, path))
        for path in removed:
            log.info("persona card removed: %s", path)
        personas = [loaded.persona for _, loaded in sorted(files.items()) if loaded.persona]
        try:
            self.library.replace_with(_keep_default(personas, self.library))
        except PersonaError as exc:
            log.warning("persona cards not reloaded, the loaded ones keep serving: %s", exc)
            return False
        finally:
            self._files = files
        self.reloads += 1
        log.info("persona cards reloaded: %s", ", ".join(p.id for p in self.library))
        return True

    async def run(self, interval: float) -> None:
        """Check every ``interval`` seconds until cancelled; a failed round is logged."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.check()
            except Exception:  # a bug: logged, but reloading must not stop for good
                log.exception("checking the persona cards failed")

    def _stamps(self) -> dict[Path, Stamp]:
        try:
            files = card_files(self.directory)
        except PersonaError as exc:
            log.warning("persona cards not reloaded: %s", exc)
            return {path: loaded.stamp for path, loaded in self._files.items()}
        stamps: dict[Path, Stamp] = {}
        for path in files:
            try:
                info = path.stat()
            except OSError:  # removed between the listing and now
                continue
            try:
                options = sidecar_path(path).stat()
                beside = (options.st_mtime_ns, options.st_size)
            except OSError:  # no options file: a card of its own
                beside = (-1, -1)
            stamps[path] = (info.st_mtime_ns, info.st_size, *beside)
        return stamps

    def _load(self, path: Path) -> Persona | None:
        """The card, or — when it does not load — the version served before (logged)."""
        try:
            persona = load_card(path, default_backend=self._default_backend)
        except PersonaError as exc:
            previous = self._files.get(path, _NEVER).persona
            keeping = f"; {previous.id} keeps its loaded version" if previous else ""
            log.warning("persona card not loaded: %s%s", exc, keeping)
            return previous
        log.info("persona card loaded: %s (%s)", path, persona.id)
        return persona


_NEVER = _Loaded((-1, -1, -1, -1), None)


def _keep_default(personas: list[Persona], library: PersonaLibrary) -> list[Persona]:
    """The default persona stays offered even when its card went away."""
    default = library.default
    if any(p.id == default.id for p in personas):
        return personas
    log.warning(
        "the default persona's card (%s) is gone: its loaded version keeps serving",
        default.source or default.id,
    )
    return [*personas, default]
