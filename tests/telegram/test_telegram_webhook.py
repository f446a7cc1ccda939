"""Webhook mode on the real web adapter's server: the secret header, setWebhook, and
200 users x 5 messages at once."""

from __future__ import annotations

import asyncio
import json

import pytest
from pydantic import SecretStr

from adapters.telegram import SECRET_HEADER, TelegramAdapter, build_telegram_adapter
from adapters.telegram.adapter import MAX_UPDATE_BYTES
from adapters.telegram.settings import TelegramSettings
from bot.config import RateLimitSettings, WebSettings
from bot.errors import ConfigError
from bot.store.memory import MemoryStore
from tests.support.fakes import WindowEcho
from tests.support.telegram_harness import (
    ALICE,
    FAST,
    SECRET,
    Person,
    build_engine,
    message,
    settings,
    update,
    webhook,
)
from tests.support.telegram_server import FakeBotApi


async def test_set_webhook_with_public_url_and_secret(store: MemoryStore, fake: FakeBotApi) -> None:
    async with webhook(build_engine(store), fake, store=store) as hook:
        assert hook.adapter.username == "persona_bot"
        assert fake.webhook["url"] == "https://bot.example.org/telegram/webhook"
        assert fake.webhook["secret_token"] == SECRET
        assert fake.webhook["allowed_updates"] == ["message", "callback_query"]
        assert not fake.calls_to("getUpdates"), "no polling in webhook mode"


@pytest.mark.parametrize(
    ("secret", "status"),
    [
        pytest.param(SECRET, 200, id="right-secret"),
        pytest.param("not-the-secret", 403, id="wrong-secret"),
        pytest.param(None, 403, id="no-secret"),
        pytest.param(SECRET + "x", 403, id="secret-with-suffix"),
    ],
)
async def test_webhook_checks_the_secret_header(
    store: MemoryStore, fake: FakeBotApi, secret: str | None, status: int
) -> None:
    async with webhook(build_engine(store), fake, store=store) as hook:
        payload = {"update_id": 1, **update(message(ALICE, "hello"))}
        assert await hook.post(payload, secret=secret) == status
        if status == 200:
            await fake.wait_for_text(ALICE.id, "re:hello saw:[]")
        else:
            await asyncio.sleep(0.2)
            assert fake.transcript(ALICE.id) == []


@pytest.mark.parametrize(
    "payload",
    [pytest.param("not json", id="not-json"), pytest.param([1, 2], id="not-an-object")],
)
async def test_webhook_refuses_what_is_not_an_update(
    store: MemoryStore, fake: FakeBotApi, payload: object
) -> None:
    async with webhook(build_engine(store), fake, store=store) as hook:
        assert await hook.post(payload) == 400


async def test_a_secret_is_generated_when_none_is_set(store: MemoryStore, fake: FakeBotApi) -> None:
    engine = build_engine(store)
    one = TelegramAdapter(
        engine, settings(fake, "webhook", secret=None), WebSettings(), FAST, events=store
    )
    two = TelegramAdapter(
        engine, settings(fake, "webhook", secret=None), WebSettings(), FAST, events=store
    )
    async with one:
        generated = fake.webhook["secret_token"]
    assert len(generated) >= 32
    async with two:
        assert fake.webhook["secret_token"] != generated


@pytest.mark.parametrize(
    "telegram",
    [
        pytest.param(TelegramSettings(), id="no-token"),
        pytest.param(
            TelegramSettings(token=SecretStr("1:x"), webhook_secret=SecretStr("has space")),
            id="bad-secret",
        ),
    ],
)
def test_factory_refuses_unusable_settings(store: MemoryStore, telegram: TelegramSettings) -> None:
    with pytest.raises(ConfigError):
        build_telegram_adapter(build_engine(store), telegram, WebSettings(), events=store)


async def test_200_users_5_messages_each_concurrently(store: MemoryStore, fake: FakeBotApi) -> None:
    users, per_user = 200, 5
    engine = build_engine(
        store, WindowEcho(pause=0), rate_limit=RateLimitSettings(per_minute=1e6, burst=1000)
    )
    people = [Person(10_000 + n, f"user{n}") for n in range(users)]
    async with webhook(engine, fake, store=store, private_edit_interval=0.01) as hook:

        async def talk(person: Person) -> None:
            for k in range(per_user):  # Telegram delivers one chat's updates in order
                body = message(person, f"u{person.id} m{k}", message_id=k + 1)
                payload = {"update_id": fake.new_update_id(), **update(body)}
                assert await hook.post(payload) == 200

        await asyncio.gather(*(talk(p) for p in people))

        def all_answered() -> bool:
            return all(
                len(fake.transcript(p.id)) == per_user
                and not fake.transcript(p.id)[-1].endswith(" …")
                for p in people
            )

        await fake.wait_for(all_answered, timeout=40)
    for person in people:
        said = [f"u{person.id} m{k}" for k in range(per_user)]
        expected = [f"re:{said[k]} saw:[{'|'.join(said[:k])}]" for k in range(per_user)]
        assert fake.transcript(person.id) == expected


async def test_an_update_over_64_kib_is_taken_once_the_secret_is_right(
    store: MemoryStore, fake: FakeBotApi
) -> None:
    """A full-length text with many entities, quoting a reply of as much, JSON-escaped,
    passes the web server's 64 KiB limit for other bodies: the webhook takes it once the
    secret is right, and answers it; a stranger's body of that size is still refused."""
    text = "漢" * 4096  # Telegram's limit: 4,096 UTF-16 code units
    entities = [{"type": "bold", "offset": 10 * n, "length": 5} for n in range(400)]
    quoted = message(ALICE, text, message_id=1, entities=entities)
    big = message(ALICE, text, message_id=2, entities=entities, reply_to=quoted)
    body = json.dumps({"update_id": 1, **update(big)}).encode()
    assert 64 * 1024 < len(body) < MAX_UPDATE_BYTES
    async with webhook(build_engine(store), fake, store=store) as hook:
        headers = {"Content-Type": "application/json"}
        async with hook.session.post(
            hook.url, data=body, headers={**headers, SECRET_HEADER: "not-the-secret"}
        ) as stranger:
            assert stranger.status in (403, 413)
        async with hook.session.post(
            hook.url, data=body, headers={**headers, SECRET_HEADER: SECRET}
        ) as taken:
            assert taken.status == 200
        await fake.wait_for(lambda: bool(fake.writes(ALICE.id)), timeout=10)
