"""The tests' fake Telegram and Discord servers, in a process of their own, with a load
generator: people chatting with the bot in private chats, each waiting for the reply
before the next message, many at once.

Run by :mod:`bench.e2e` (``serve``): it starts one platform's fake, sends the settings
that point the bot at it, then obeys commands on its pipe (``("load", first_user, users,
per_user)``: returns the number of replies seen complete and the seconds they took).
The fake servers are the tests' own (``tests/``), so what the bot talks to is what the
test suite checks it against.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
_TAGS = itertools.count(1)
_CHANNEL_MESSAGES = re.compile(r"/channels/(\d+)/messages")


def _import_fakes() -> tuple[Any, Any, Any, dict[str, Any]]:
    """The tests' fake servers (``tests/support``)."""
    sys.path.insert(0, str(ROOT))
    from tests.support.discord_server import BOT, FakeDiscord
    from tests.support.telegram_server import TOKEN, FakeBotApi

    return FakeBotApi, FakeDiscord, TOKEN, BOT


def question(tag: int) -> str:
    return f"Professor, how would you speed up a slow web service? q{tag}x"


class TelegramLoad:
    """The fake Bot API (long polls held as Telegram holds them) and its people."""

    def __init__(self) -> None:
        fake_bot_api, _, self.token, _ = _import_fakes()
        self.fake = fake_bot_api(poll_cap=30.0)
        self._message_ids = itertools.count(1)
        self.waiting: dict[int, str] = {}

    async def __aenter__(self) -> TelegramLoad:
        await self.fake.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.fake.__aexit__(*exc_info)

    def env(self) -> dict[str, str]:
        return {
            "PERSONABRIDGE_TELEGRAM__TOKEN": self.token,
            "PERSONABRIDGE_TELEGRAM__API_BASE_URL": self.fake.url,
            "PERSONABRIDGE_TELEGRAM__MODE": "polling",
        }

    async def connected(self) -> None:
        await self.fake.wait_for(lambda: bool(self.fake.calls_to("getUpdates")), timeout=60)

    def _last_text(self, chat_id: int) -> str:
        shown = self.fake.chats.get(chat_id)
        return shown[max(shown)].text if shown else ""

    def stuck(self) -> list[tuple[int, str]]:
        return [
            (c, self._last_text(c)[-30:])
            for c, end in self.waiting.items()
            if not self._last_text(c).endswith(end)
        ]

    async def person(self, user_id: int, messages: int) -> int:
        person = {"id": user_id, "is_bot": False, "first_name": f"user{user_id}"}
        chat = {"id": user_id, "type": "private", "first_name": f"user{user_id}"}
        done = 0
        for _ in range(messages):
            tag = next(_TAGS)
            body = {
                "message_id": next(self._message_ids),
                "date": int(time.time()),
                "chat": chat,
                "from": person,
                "text": question(tag),
            }
            await self.fake.push_update({"message": body})
            end = self.waiting[user_id] = f"a{tag}z."
            await self.fake.wait_for(lambda e=end: self._last_text(user_id).endswith(e), 120)
            done += 1
        return done


class DiscordLoad:
    """The fake Discord (REST and gateway) and its people, each in a DM channel."""

    def __init__(self) -> None:
        _, fake_discord, _, self.bot = _import_fakes()

        class Tracked(fake_discord):
            """Notes the newest message of each channel, so a person finds the reply
            without scanning every message, and wakes whoever waits on the channel."""

            last: dict[str, str]
            changed: dict[str, asyncio.Event]

            def _post_in_channel(self, channel_id: str, body: dict[str, Any]) -> dict[str, Any]:
                posted: dict[str, Any] = super()._post_in_channel(channel_id, body)
                self.last[channel_id] = posted["id"]
                return posted

            def _answer(self, method: str, path: str, body: Any) -> Any:
                response = super()._answer(method, path, body)
                if match := _CHANNEL_MESSAGES.match(path):
                    self.changed.setdefault(match.group(1), asyncio.Event()).set()
                return response

        self.fake = Tracked()
        self.fake.last = {}
        self.fake.changed = {}
        self.waiting: dict[str, str] = {}
        self._ids = itertools.count(10**15)

    async def __aenter__(self) -> DiscordLoad:
        await self.fake.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.fake.__aexit__(*exc_info)

    def env(self) -> dict[str, str]:
        return {
            "PERSONABRIDGE_DISCORD__TOKEN": "bench-token",
            "PERSONABRIDGE_DISCORD__API_BASE_URL": self.fake.api_url,
            "PERSONABRIDGE_DISCORD__GATEWAY_URL": self.fake.gateway_url,
        }

    async def connected(self) -> None:
        def synced() -> bool:
            return bool(self.fake.gateways) and bool(self.fake.find("PUT", "/commands$"))

        await self.fake.wait_for(synced, timeout=60)

    def _last_text(self, channel: str) -> str:
        message_id = self.fake.last.get(channel)
        return str(self.fake.messages[message_id]["content"]) if message_id else ""

    def stuck(self) -> list[tuple[str, str]]:
        return [
            (c, self._last_text(c)[-30:])
            for c, end in self.waiting.items()
            if not self._last_text(c).endswith(end)
        ]

    async def person(self, user_id: int, messages: int) -> int:
        author = {
            "id": str(user_id),
            "username": f"user{user_id}",
            "discriminator": "0",
            "global_name": None,
            "avatar": None,
        }
        channel = str(5_000_000 + user_id)
        done = 0
        for _ in range(messages):
            tag = next(_TAGS)
            data = {
                "id": str(next(self._ids)),
                "channel_id": channel,
                "author": author,
                "content": question(tag),
                "timestamp": "2025-01-01T00:00:00+00:00",
                "edited_timestamp": None,
                "tts": False,
                "mention_everyone": False,
                "mentions": [],
                "mention_roles": [],
                "attachments": [],
                "embeds": [],
                "pinned": False,
                "type": 0,
                "flags": 0,
            }
            await self.fake.dispatch("MESSAGE_CREATE", data)
            end = self.waiting[channel] = f"a{tag}z."
            changed = self.fake.changed.setdefault(channel, asyncio.Event())
            async with asyncio.timeout(120):
                while not self._last_text(channel).endswith(end):
                    changed.clear()
                    await changed.wait()
            done += 1
        return done


def serve(platform: str, conn: Connection) -> None:
    """Entry point of the platform's process (see the module docstring)."""
    asyncio.run(_serve(platform, conn))


async def _serve(platform: str, conn: Connection) -> None:
    load: TelegramLoad | DiscordLoad = TelegramLoad() if platform == "telegram" else DiscordLoad()
    async with load:
        conn.send(load.env())
        while True:
            command = await asyncio.to_thread(conn.recv)
            if command[0] == "connected":
                await load.connected()
                conn.send(True)
            elif command[0] == "load":
                _, first, users, per_user = command
                started = time.perf_counter()
                try:
                    counts = await asyncio.gather(
                        *(load.person(first + n, per_user) for n in range(users))
                    )
                except Exception as exc:  # told to the bench, which stops the run
                    conn.send(
                        f"the load failed: {type(exc).__name__} {exc}; chats still waiting"
                        f" for their reply, and the end of what they show: {load.stuck()}"
                    )
                    continue
                conn.send((sum(counts), time.perf_counter() - started))
            else:
                break
