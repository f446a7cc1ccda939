"""Telegram albums: several photos (or files) sent together arrive as one update each,
sharing a ``media_group_id``; they are answered once, as one message with every file.

:meth:`AlbumCollector.arrived` notes each part the moment its update comes in (the
update processor calls it before the part waits for its turn in the chat). The handler
of an album's first part then waits, :attr:`quiet` seconds after the latest part and
at most :attr:`longest` in all, and answers the whole album; the handlers of the other
parts, run after it, find they were answered with it and do nothing. A part that comes
later than that starts an album of its own.

The parts are collected in one process: in webhook mode with several workers, parts
that reach different workers are answered separately.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field

from telegram import Update

AlbumKey = tuple[int, int, str]
#: Update ids of parts answered with their album, remembered until their handler runs.
_REMEMBERED = 4096


def album_key(update: object) -> AlbumKey | None:
    """``(chat id, user id, media group id)`` of an album's part, else None."""
    if not isinstance(update, Update) or update.message is None:
        return None
    message = update.message
    group, user = message.media_group_id, message.from_user
    if not isinstance(group, str) or not group or user is None:
        return None
    chat_id, user_id = message.chat.id, user.id
    if type(chat_id) is not int or type(user_id) is not int:
        return None
    return chat_id, user_id, group


@dataclass
class _Album:
    parts: list[Update] = field(default_factory=list)
    grew: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False


class AlbumCollector:
    """Gathers the parts of Telegram albums (see the module doc)."""

    def __init__(self, *, quiet: float = 1.0, longest: float = 5.0) -> None:
        self.quiet = quiet
        self.longest = longest
        self._albums: dict[AlbumKey, _Album] = {}
        self._answered: OrderedDict[int, None] = OrderedDict()

    def arrived(self, update: object) -> None:
        """Note an update as it comes in (before it waits for its chat's turn)."""
        key = album_key(update)
        if key is None:
            return
        assert isinstance(update, Update)
        album = self._albums.get(key)
        if album is None or album.closed:
            album = self._albums[key] = _Album()
        album.parts.append(update)
        album.grew.set()

    async def gather(self, update: Update) -> list[Update]:
        """The updates to answer as one message for ``update``: the whole album for its
        first part, nothing for a part answered with its album, else ``[update]``."""
        if update.update_id in self._answered:
            del self._answered[update.update_id]
            return []
        key = album_key(update)
        album = self._albums.get(key) if key is not None else None
        if key is None or album is None or album.closed or album.parts[0] is not update:
            return [update]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.longest
        while (wait := min(self.quiet, deadline - loop.time())) > 0:
            album.grew.clear()
            try:
                async with asyncio.timeout(wait):
                    await album.grew.wait()
            except TimeoutError:
                break
        album.closed = True
        if self._albums.get(key) is album:
            del self._albums[key]
        for part in album.parts[1:]:
            self._answered[part.update_id] = None
            if len(self._answered) > _REMEMBERED:
                self._answered.popitem(last=False)
        return list(album.parts)
