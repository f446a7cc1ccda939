"""Terminal chat (``personabridge chat``) through the same engine as every platform.

Interactive on a terminal: a prompt, the reply streaming in as it is written. With
standard input from a pipe: each line is one message and its reply is printed, so
``printf 'hi\\nwho are you?\\n' | personabridge chat`` works in scripts. The history
lives in the store, so the next run continues it.
"""

from __future__ import annotations

import asyncio
import threading
from contextlib import aclosing
from typing import TextIO

from bot.engine import Engine
from bot.messages import Incoming, ReplyDone, ReplyKind, TextDelta

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
    ):
        self._engine = engine
        self._user_name = user_name
        self._stdin = stdin
        self._out = stdout
        self._interactive = interactive
        self._persona_name = "bot"

    def _incoming(self, text: str) -> Incoming:
        return Incoming(
            platform=PLATFORM,
            user_id=self._user_name.lower(),
            display_name=self._user_name,
            chat_id="terminal",
            private=True,
            text=text,
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
            if text:
                await self._send(text, show=True)
        if self._interactive:
            self._write("\n")

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
                self._write(f"{who}> {turn.text}\n")
        self._write("(/help for commands, /quit or Ctrl-D to leave)\n")

    async def _send(self, text: str, *, show: bool) -> None:
        streamed = False
        async with aclosing(self._engine.handle(self._incoming(text))) as events:
            async for event in events:
                if isinstance(event, TextDelta):
                    if show and self._interactive:
                        if not streamed:
                            self._write(f"{self._persona_name}> ")
                        self._write(event.text)
                        streamed = True
                elif isinstance(event, ReplyDone):
                    self._persona_name = event.persona_name or self._persona_name
                    if show:
                        self._finish(event, streamed)

    def _finish(self, done: ReplyDone, streamed: bool) -> None:
        if streamed and done.kind is ReplyKind.CHAT:
            self._write("\n")
        elif streamed:  # the stream broke off: say so on a line of its own
            self._write(f"\n{done.shown}\n")
        else:
            label = f"{self._persona_name}> " if self._interactive else ""
            self._write(f"{label}{done.shown}\n")

    def _write(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()


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
