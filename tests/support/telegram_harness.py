"""What the Telegram tests share: an engine over fakes, update builders, and the real
adapter running against :class:`~tests.support.telegram_server.FakeBotApi` (polling, or webhook on
the real web adapter's server)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from pydantic import SecretStr

from adapters.telegram import SECRET_HEADER, TelegramAdapter, TelegramOptions
from adapters.telegram.settings import TelegramSettings
from adapters.web import WebAdapter, create_app
from auth import TEST_PARAMS, AccountService, PasswordHasher
from bot.backends.base import Backend
from bot.backends.guard import GuardPolicy
from bot.config import RateLimitSettings, WebSettings
from bot.engine import Engine
from bot.store.base import Store
from tests.support import engine as engine_support
from tests.support.engine import UNLIMITED
from tests.support.fakes import WindowEcho
from tests.support.telegram_server import BOT, TOKEN, FakeBotApi

SECRET = "test-secret_123"
#: Short intervals keep the tests fast; the pacing itself is what the limits test checks.
FAST_SETTINGS: dict[str, Any] = {
    "private_edit_interval": 0.05,
    "group_edit_interval": 0.1,
    "first_message_delay": 0.0,
}
FAST = TelegramOptions(
    typing_interval=0.5,
    poll_timeout=1,
    retry_backoff=0.01,
    network_retries=2,
)
POLICY = GuardPolicy(first_delta_timeout=2.0, total_timeout=10.0, retries=0, retry_backoff=0)


def build_engine(
    store: Store, backend: Backend | None = None, *, rate_limit: RateLimitSettings | None = None
) -> Engine:
    """The engine of the Telegram tests: a slow echo unless told; the engine's own limit
    is the engine's tests' business, here it would only refuse."""
    return engine_support.build_engine(
        store, backend or WindowEcho(pause=0.01), policy=POLICY, rate_limit=rate_limit or UNLIMITED
    )


def accounts(store: Store) -> AccountService:
    return AccountService(store, hasher=PasswordHasher(TEST_PARAMS))


# -- updates ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    id: int
    first_name: str
    is_bot: bool = False

    def user(self) -> dict[str, Any]:
        return {"id": self.id, "is_bot": self.is_bot, "first_name": self.first_name}


ALICE = Person(11, "Alice")
BOB = Person(12, "Bob")
GROUP_ID = -100_500


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def entities_of(text: str) -> list[dict[str, Any]]:
    """The entities Telegram would mark: a leading /command and @mentions."""
    found: list[dict[str, Any]] = []
    if text.startswith("/"):
        command = text.split(maxsplit=1)[0]
        found.append({"type": "bot_command", "offset": 0, "length": _utf16(command)})
    position = 0
    for word in text.split(" "):
        if word.startswith("@") and len(word) > 1 and not found_at(found, position):
            mention = word.rstrip(",:.!?")
            found.append(
                {"type": "mention", "offset": _utf16(text[:position]), "length": _utf16(mention)}
            )
        position += len(word) + 1
    return found


def found_at(found: list[dict[str, Any]], position: int) -> bool:
    return any(e["offset"] == position for e in found)


def message(
    person: Person,
    text: str | None = None,
    *,
    chat_id: int | None = None,
    message_id: int = 1,
    reply_to: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A Message from ``person``: in their private chat unless ``chat_id`` is a group."""
    chat_id = person.id if chat_id is None else chat_id
    if chat_id > 0:
        chat: dict[str, Any] = {"id": chat_id, "type": "private", "first_name": person.first_name}
    else:
        chat = {"id": chat_id, "type": "supergroup", "title": "The Group"}
    body: dict[str, Any] = {
        "message_id": message_id,
        "date": int(time.time()),
        "chat": chat,
        "from": person.user(),
        **extra,
    }
    if text is not None:
        body["text"] = text
        entities = entities_of(text)
        if entities:
            body["entities"] = entities
    if reply_to is not None:
        body["reply_to_message"] = reply_to
    return body


def bot_message(chat_id: int, message_id: int, text: str = "earlier reply") -> dict[str, Any]:
    """A message the bot sent, as it appears in ``reply_to_message``."""
    chat_type = "private" if chat_id > 0 else "supergroup"
    return {
        "message_id": message_id,
        "date": int(time.time()),
        "chat": {"id": chat_id, "type": chat_type, "title": "The Group"},
        "from": dict(BOT),
        "text": text,
    }


def update(body: dict[str, Any], kind: str = "message") -> dict[str, Any]:
    return {kind: body}


STICKER: dict[str, Any] = {
    "sticker": {
        "file_id": "s1",
        "file_unique_id": "u1",
        "width": 512,
        "height": 512,
        "is_animated": False,
        "is_video": False,
        "type": "regular",
    }
}
PHOTO: dict[str, Any] = {
    "photo": [{"file_id": "p1", "file_unique_id": "pu1", "width": 90, "height": 90}]
}
VOICE: dict[str, Any] = {"voice": {"file_id": "v1", "file_unique_id": "vu1", "duration": 2}}


# -- the adapter ------------------------------------------------------------------------


def settings(
    fake: FakeBotApi, mode: str = "polling", secret: str | None = SECRET, **overrides: Any
) -> TelegramSettings:
    """Settings for the adapter on ``fake``: ``FAST_SETTINGS``, then ``overrides``."""
    return TelegramSettings(
        token=SecretStr(TOKEN),
        mode=mode,  # type: ignore[arg-type]
        api_base_url=fake.url,
        webhook_secret=SecretStr(secret) if secret else None,
        **(FAST_SETTINGS | overrides),
    )


@asynccontextmanager
async def polling(
    engine: Engine, fake: FakeBotApi, options: TelegramOptions = FAST, **overrides: Any
) -> AsyncIterator[TelegramAdapter]:
    """The adapter polling ``fake`` (``overrides``: settings)."""
    telegram = settings(fake, **overrides)
    async with TelegramAdapter(engine, telegram, WebSettings(), options) as adapter:
        yield adapter


@dataclass
class Webhook:
    """A running adapter in webhook mode behind the real web adapter."""

    adapter: TelegramAdapter
    web: WebAdapter
    session: aiohttp.ClientSession

    @property
    def url(self) -> str:
        return self.web.url + self.adapter.settings.webhook_path

    async def post(self, payload: Any, secret: str | None = SECRET) -> int:
        headers = {SECRET_HEADER: secret} if secret is not None else {}
        async with self.session.post(self.url, json=payload, headers=headers) as response:
            await response.read()
            return response.status


@asynccontextmanager
async def webhook(
    engine: Engine,
    fake: FakeBotApi,
    options: TelegramOptions = FAST,
    *,
    store: Store,
    **overrides: Any,
) -> AsyncIterator[Webhook]:
    """The adapter in webhook mode behind the web adapter (``overrides``: settings), on
    ``store``, the store ``engine`` was built on."""
    web_settings = WebSettings(port=0, public_url="https://bot.example.org")
    adapter = TelegramAdapter(
        engine, settings(fake, "webhook", **overrides), web_settings, options, events=store
    )
    app = create_app(
        engine,
        accounts(store),
        upkeep=store,
        settings=web_settings.model_copy(update={"public_url": None}),
        extra_routes=adapter.web_routes(),
    )
    web = WebAdapter(app, access_log=False)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(web)  # the web adapter is entered first
        await stack.enter_async_context(adapter)
        session = await stack.enter_async_context(aiohttp.ClientSession())
        yield Webhook(adapter, web, session)


class Chat:
    """One person's conversation with the bot over polling: ``await chat.say(text)``
    sends a message and returns the bot's complete answer (its new messages joined)."""

    def __init__(self, fake: FakeBotApi, person: Person, chat_id: int | None = None):
        self.fake = fake
        self.person = person
        self.chat_id = person.id if chat_id is None else chat_id
        self._next_message_id = 1

    async def send(self, text: str | None = None, **extra: Any) -> dict[str, Any]:
        body = message(
            self.person, text, chat_id=self.chat_id, message_id=self._next_message_id, **extra
        )
        self._next_message_id += 1
        return await self.fake.push_update(update(body))

    async def press(self, label: str, timeout: float = 5.0) -> str:
        """Press the button ``label`` under the bot's newest message that has it (as
        Telegram sends it: a callback query); returns the bot's answer."""
        shown = self.fake.shown(self.chat_id)
        pressed = next(s for s in reversed(shown) if any(b[0] == label for b in s.buttons))
        data = next(b[1] for b in pressed.buttons if b[0] == label)
        before = len(shown)
        query = {
            "id": f"q{self.fake.new_update_id()}",
            "from": self.person.user(),
            "chat_instance": "ci",
            "data": data,
            "message": bot_message(self.chat_id, pressed.message_id, pressed.text),
        }
        await self.fake.push_update({"callback_query": query})

        def answered() -> bool:
            now = self.fake.shown(self.chat_id)
            return len(now) > before and not now[-1].text.endswith(" …")

        await self.fake.wait_for(answered, timeout)
        return "\n".join(s.text for s in self.fake.shown(self.chat_id)[before:])

    async def say(self, text: str | None = None, timeout: float = 5.0, **extra: Any) -> str:
        before = len(self.fake.shown(self.chat_id))
        await self.send(text, **extra)

        def answered() -> bool:
            shown = self.fake.shown(self.chat_id)
            return len(shown) > before and not shown[-1].text.endswith(" …")

        await self.fake.wait_for(answered, timeout)
        return "\n".join(s.text for s in self.fake.shown(self.chat_id)[before:])
