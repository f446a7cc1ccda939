"""Telegram's webhook: only Telegram (who knows the secret) gets updates processed.

The real Telegram adapter in webhook mode, behind the real web adapter, against the
fake Bot API on loopback. A forged update would let anyone speak as any Telegram user
(``/link`` their identity, read their ``/whoami``, fill their history), so each forged
call must be a 403 that reaches neither the engine nor the store nor the Bot API.
"""

from __future__ import annotations

import ast
import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from pydantic import SecretStr

import adapters.telegram.adapter as telegram_adapter
from adapters.telegram import SECRET_HEADER, TelegramAdapter
from adapters.telegram.settings import TelegramSettings
from adapters.web import WebAdapter, create_app
from auth import TEST_PARAMS, AccountService, PasswordHasher
from bot.config import WebSettings
from bot.engine import Engine
from bot.store.sqlite import SqliteStore
from tests.support.fakes import WindowEcho
from tests.support.telegram_harness import ALICE, FAST, SECRET, Webhook, message, update, webhook
from tests.support.telegram_server import TOKEN, FakeBotApi
from tests.support.web_site import CountingMetrics, db_snapshot


def forged_update(text: str = "forged hello") -> dict[str, object]:
    """An update claiming to come from Alice, in her private chat."""
    return {"update_id": 9_000, **update(message(ALICE, text))}


async def post_raw(hook: Webhook, headers: dict[str, str], query: str = "") -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.post(hook.url + query, json=forged_update(), headers=headers) as response,
    ):
        return response.status


FORGED_HEADERS = {
    "no-header": {},
    "empty": {SECRET_HEADER: ""},
    "wrong-same-length": {SECRET_HEADER: "x" * len(SECRET)},
    "prefix-of-the-secret": {SECRET_HEADER: SECRET[:-1]},
    "secret-plus-suffix": {SECRET_HEADER: SECRET + "0"},
    "other-case": {SECRET_HEADER: SECRET.upper()},
    "very-long": {SECRET_HEADER: SECRET * 400},
    "in-another-header": {"Authorization": f"Bearer {SECRET}"},
    "bot-token-instead": {SECRET_HEADER: TOKEN.replace(":", "_")},
}


@pytest.fixture
async def hook(store: SqliteStore, engine: Engine) -> AsyncIterator[tuple[Webhook, FakeBotApi]]:
    async with FakeBotApi() as fake, webhook(engine, fake, store=store) as running:
        yield running, fake


async def barrier(hook: Webhook, fake: FakeBotApi) -> str:
    """A genuine update from Alice's chat, answered in order after anything queued
    before it: once it is answered, a forged update would have been too."""
    genuine = {"update_id": 10_000, **update(message(ALICE, "barrier"))}
    assert await hook.post(genuine) == 200
    return await fake.wait_for_text(ALICE.id, "re:barrier", timeout=10)


async def test_a_forged_webhook_call_runs_nothing(
    hook: tuple[Webhook, FakeBotApi],
    metrics: CountingMetrics,
    backend: WindowEcho,
    db_path: Path,
) -> None:
    running, fake = hook
    before = db_snapshot(db_path)
    for name, headers in FORGED_HEADERS.items():
        assert await post_raw(running, headers) == 403, name
        assert db_snapshot(db_path) == before, f"{name}: no store write"
        assert metrics.messages_in == [], f"{name}: no engine call"
    assert await barrier(running, fake) == "re:barrier saw:[]", "no forged text was kept"
    assert metrics.messages_in == ["telegram"]
    assert backend.calls == 1
    assert fake.transcript(ALICE.id) == ["re:barrier saw:[]"], "nothing sent for a forgery"
    assert not fake.calls_to("sendMessage", ALICE.id)[1:]


async def test_the_secret_in_the_query_string_is_not_accepted(
    hook: tuple[Webhook, FakeBotApi], metrics: CountingMetrics
) -> None:
    running, _ = hook
    assert await post_raw(running, {}, f"?secret_token={SECRET}") == 403
    assert await post_raw(running, {}, f"?{SECRET_HEADER}={SECRET}") == 403
    assert metrics.messages_in == []


async def test_a_secret_header_of_invalid_utf8_is_403_not_500(
    hook: tuple[Webhook, FakeBotApi], metrics: CountingMetrics
) -> None:
    running, _ = hook
    host, port = running.web.url.removeprefix("http://").split(":")
    body = b'{"update_id": 1, "message": {}}'
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST " + running.adapter.settings.webhook_path.encode() + b" HTTP/1.1\r\n"
        b"Host: "
        + host.encode()
        + b"\r\n"
        + SECRET_HEADER.encode()
        + b": "
        + SECRET.encode()
        + b"\xff\xfe\r\n"
        b"Content-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n"
        b"Connection: close\r\n\r\n" + body
    )
    await writer.drain()
    status_line = (await asyncio.wait_for(reader.read(), 10)).split(b"\r\n", 1)[0]
    writer.close()
    await writer.wait_closed()
    assert status_line.split()[1] == b"403"
    assert metrics.messages_in == []


def test_the_secret_is_compared_in_constant_time() -> None:
    """A ``==`` on the secret leaks, byte by byte, how much of a guess is right."""
    tree = ast.parse(Path(telegram_adapter.__file__).read_text())
    receive = next(
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.AsyncFunctionDef) and node.name == "_receive"
    )
    digests = [
        call
        for call in ast.walk(receive)
        if isinstance(call, ast.Call)
        and isinstance(call.func, ast.Attribute)
        and call.func.attr == "compare_digest"
        and isinstance(call.func.value, ast.Name)
        and call.func.value.id in ("hmac", "secrets")
    ]
    assert len(digests) == 1, "the header is checked with hmac.compare_digest"
    assert "_secret" in ast.unparse(digests[0])
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            assert "_secret" not in ast.unparse(node), ast.unparse(node)
            assert "SECRET_HEADER" not in ast.unparse(node), ast.unparse(node)


async def test_neither_the_secret_nor_message_text_reaches_the_logs_at_info(
    store: SqliteStore, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """Also when the secret is generated (no WEBHOOK_SECRET set)."""
    web_settings = WebSettings(port=0, public_url="https://bot.example.org")
    async with FakeBotApi() as fake:
        settings = TelegramSettings(token=SecretStr(TOKEN), mode="webhook", api_base_url=fake.url)
        adapter = TelegramAdapter(engine, settings, web_settings, FAST, events=store)
        app = create_app(
            engine,
            AccountService(store, hasher=PasswordHasher(TEST_PARAMS)),
            upkeep=store,
            settings=web_settings.model_copy(update={"public_url": None}),
            extra_routes=adapter.web_routes(),
        )
        server = WebAdapter(app, access_log=False)
        with caplog.at_level(logging.DEBUG):
            async with server, adapter, aiohttp.ClientSession() as session:
                secret = fake.webhook["secret_token"]
                assert len(secret) >= 32, "a generated secret is long and random"
                url = server.url + adapter.settings.webhook_path
                text = "my private words"
                for sent in ("wrong", secret):
                    payload = {"update_id": 5, **update(message(ALICE, text))}
                    async with session.post(
                        url, json=payload, headers={SECRET_HEADER: sent}
                    ) as response:
                        assert response.status == (200 if sent == secret else 403)
                await fake.wait_for_text(ALICE.id, f"re:{text}", timeout=10)
    loud = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert loud, "(the adapter does log at INFO: the check has something to look at)"
    for record in loud:
        line = record.getMessage() + (record.exc_text or "")
        assert secret not in line, record.getMessage()
        assert text not in line, record.getMessage()
        assert TOKEN not in line, record.getMessage()
