"""Server-sent events split a read at a time: every complete event in what one read of
the socket brought, in one pass.

A model streams a word per event, and the openai SDK decodes events line by line in
Python, handing each on its own through several generators: per word, more CPU than
everything else a word costs. :class:`EventSplitter` takes what a read brought and
returns the complete events in it at once (split with ``bytes`` methods, decoded
once), keeping the unfinished rest for the next read.

The lines are read as the SSE specification and the SDK read them: ending in LF, CRLF
or CR (a CR at the end of a read may be followed by the LF of its CRLF in the next);
``field: value`` with one space after the colon dropped; ``data`` lines joined with
LF; ``event`` kept; comments (``:``) and other fields (``id``, ``retry``) ignored; a
blank line ends an event. An event with no ``data`` line is no event, as the
specification says (the SDK would hand on an empty one, which no JSON reader takes),
and an event the stream ends before finishing is dropped, as in the SDK.
"""

from __future__ import annotations

#: One event: its type (``event:``; None when it names none) and its data.
Event = tuple[str | None, str]

_PREFIX = "data: "


class EventSplitter:
    """The events of one stream, fed the bytes of each read in turn."""

    __slots__ = ("_rest", "_skip_lf")

    def __init__(self) -> None:
        self._rest = b""  # the unfinished event, its line ends made LF already
        self._skip_lf = False  # the last read ended in CR: an LF first ends no line

    def feed(self, chunk: bytes) -> list[Event]:
        """The events ``chunk`` completes, in order."""
        if self._skip_lf and chunk:
            self._skip_lf = False
            if chunk[0] == 10:  # the LF of a CRLF split between two reads
                chunk = chunk[1:]
        if b"\r" in chunk:
            self._skip_lf = chunk.endswith(b"\r")
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        buffer = self._rest + chunk if self._rest else chunk
        end = buffer.rfind(b"\n\n")
        if end < 0:
            self._rest = buffer
            return []
        self._rest = buffer[end + 2 :]
        # Cut at a blank line, never inside a character: the complete part decodes.
        return _events(buffer[:end].decode())


def _events(text: str) -> list[Event]:
    """The events of ``text``: whole events, the blank line after the last cut off."""
    events: list[Event] = []
    for block in text.split("\n\n"):
        if block.startswith(_PREFIX) and "\n" not in block:  # what servers send
            events.append((None, block[6:]))
        elif block:
            events.extend(_block_events(block))
    return events


def _block_events(block: str) -> list[Event]:
    """The events of a block of lines (a blank line inside ends one)."""
    events: list[Event] = []
    data: list[str] = []
    kind: str | None = None
    for line in block.split("\n"):
        if not line:
            if data:
                events.append((kind, "\n".join(data)))
            data, kind = [], None
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            kind = value or None
    if data:
        events.append((kind, "\n".join(data)))
    return events
