"""Terminal chat (``personabridge chat``) through the same engine as every platform.

Interactive on a terminal: a prompt, the reply streaming in as it is written. With
standard input from a pipe: each line is one message and its reply is printed, so
``printf 'hi\\nwho are you?\\n' | personabridge chat`` works in scripts. Replies are
separated by a blank line (a reply may have several lines); with ``json_lines`` each
reply is one JSON object on one line instead (``personabridge chat --json``). The history
lives in the store, so the next run continues it.

``/attach PATH [text]`` sends a local file (an image, a voice note, a text file) with
the text, the way a photo with a caption arrives from a platform.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import threading
from contextlib import aclosing
from pathlib import Path
from typing import TextIO

from bot.engine import Engine
from bot.errors import MediaRefused
from bot.messages import Incoming, IncomingFile, ReplyDone, ReplyKind, TextDelta

PLATFORM = "console"


class ConsoleChat:
    """One person at one terminal."""

    def __init__(
        self,
        engine: Engine,
        *,
        user_name: str,
        stdin: TextIO,
        stdout: TextIO,
        interactive: bool,
        json_lines: bool = False,
    ):
        self._engine = engine
        self._user_name = user_name
        self._stdin = stdin
        self._out = stdout
        self._interactive = interactive and not json_lines
        self._json = json_lines
        self._persona_name = "bot"
        self._replies_shown = 0

    def _incoming(self, text: str, files: tuple[IncomingFile, ...] = ()) -> Incoming:
        return Incoming(
            platform=PLATFORM,
            user_id=self._user_name.lower(),
            display_name=self._user_name,
            chat_id="terminal",
            private=True,
            text=text,
            files=files,
        )

    async def run(self, persona_id: str | None = None) -> None:
        if persona_id:
            await self._send(f"/persona {persona_id}", show=self._interactive)
        if self._interactive and not persona_id:
            await self._show_resume()
        lines = _line_reader(self._stdin)
        while True:
            if self._interactive:
                self._write("you> ")
            line = await lines.get()
            if line is None:
                break
            text = line.strip()
            if text in ("/quit", "/exit"):
                break
            if text.startswith("/attach"):
                await self._attach(text.removeprefix("/attach"))
            elif text:
                await self._send(text, show=True)
                if text.startswith("/"):  # /persona, /link, /forget...: who answers next?
                    await self._refresh_persona()
        if self._interactive:
            self._write("\n")

    async def _refresh_persona(self) -> None:
        speaker = await self._engine.resolve(self._incoming(""))
        self._persona_name = speaker.persona.name

    async def _show_resume(self) -> None:
        speaker = await self._engine.resolve(self._incoming(""))
        # an empty conversation starts with the greeting, stored as its first turn
        persona, turns = await self._engine.open_conversation(
            speaker.owner, "direct", self._user_name
        )
        self._persona_name = persona.name
        if not turns:
            self._write(f"{persona.name}> Hello, I am {persona.name}.\n")
        elif len(turns) == 1 and turns[0].role == "assistant":
            self._write(f"{persona.name}> {turns[0].text}\n")
        else:
            self._write(f"(continuing your conversation with {persona.name}; /reset starts over)\n")
            for turn in turns[-4:]:
                who = "you" if turn.role == "user" else persona.name
                files = " ".join(f"📎 {item.filename}" for item in turn.attachments)
                self._write(f"{who}> {' '.join(p for p in (turn.text, files) if p)}\n")
        self._write("(/help for commands, /quit or Ctrl-D to leave)\n")

    async def _attach(self, args: str) -> None:
        """``/attach PATH [text]``: the file at PATH with the text as its caption."""
        try:
            words = shlex.split(args)
        except ValueError as exc:
            words, problem = [], str(exc)
        else:
            problem = "usage: /attach PATH [text]"
        if not words:
            self._write(f"{problem}\n")
            return
        path = Path(words[0])
        size = await asyncio.to_thread(_file_size, path)
        if size is None:
            self._write(f"No such file: {path}\n")
            return
        await self._send(" ".join(words[1:]), show=True, files=(local_file(path, size),))

    async def _send(self, text: str, *, show: bool, files: tuple[IncomingFile, ...] = ()) -> None:
        streamed = False
        async with aclosing(self._engine.handle(self._incoming(text, files))) as events:
            async for event in events:
                if isinstance(event, TextDelta):
                    if show and self._interactive:
                        if not streamed:
                            self._write(f"{self._persona_name}> ")
                        self._write(event.text)
                        streamed = True
                elif isinstance(event, ReplyDone):
                    self._persona_name = event.persona_name or self._persona_name
                    if show and self._json:
                        self._write_json(text, event)
                    elif show:
                        self._finish(event, streamed)

    def _write_json(self, message: str, done: ReplyDone) -> None:
        record = {
            "message": message,
            "reply": done.shown,
            "kind": str(done.kind),
            "persona": done.persona_name or self._persona_name,
        }
        self._write(json.dumps(record, ensure_ascii=False) + "\n")

    def _finish(self, done: ReplyDone, streamed: bool) -> None:
        if not self._interactive and self._replies_shown:
            self._write("\n")  # piped: a blank line between two replies
        if streamed and done.kind is ReplyKind.CHAT:
            self._write("\n")
        elif streamed:  # the stream broke off: say so on a line of its own
            self._write(f"\n{done.shown}\n")
        else:
            label = f"{self._persona_name}> " if self._interactive else ""
            self._write(f"{label}{done.shown}\n")
        self._replies_shown += 1

    def _write(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()


def _file_size(path: Path) -> int | None:
    path = path.expanduser()
    return path.stat().st_size if path.is_file() else None


def local_file(path: Path, size: int) -> IncomingFile:
    """A file on this machine, read off the event loop and never beyond the limit."""

    def read(max_bytes: int) -> bytes:
        with path.expanduser().open("rb") as stream:
            data = stream.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise MediaRefused.too_large(path.name, max_bytes)
        return data

    async def fetch(max_bytes: int) -> bytes:
        return await asyncio.to_thread(read, max_bytes)

    return IncomingFile(path.name, fetch, size=size)


def _line_reader(stream: TextIO) -> asyncio.Queue[str | None]:
    """Lines of ``stream`` as they arrive, read in a daemon thread (so the event loop
    never blocks, and Ctrl-C never waits for a pending read); None at the end."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def pump() -> None:
        try:
            for line in stream:
                loop.call_soon_threadsafe(queue.put_nowait, line)
            loop.call_soon_threadsafe(queue.put_nowait, None)
        except RuntimeError:  # the loop closed first: the chat has ended anyway
            return

    threading.Thread(target=pump, name="console-stdin", daemon=True).start()
    return queue
