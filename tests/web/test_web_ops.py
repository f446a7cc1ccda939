"""Operations: /healthz, /metrics, the WebAdapter's lifecycle, and SQLite underneath."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from adapters.web import PrometheusMetrics, WebAdapter, create_app
from auth import TEST_PARAMS, AccountService, PasswordHasher
from bot.config import WebSettings
from bot.engine import Engine
from bot.errors import StoreUnavailable
from bot.store.memory import MemoryStore
from bot.store.sqlite import SqliteStore
from tests.support.web_client import (
    Client,
    MakeClient,
    build_engine,
    log_in,
    log_out,
    page_token,
    parse_sse,
    sign_up,
)


class Switch:
    """A MemoryStore fault hook: every operation fails while it is on."""

    def __init__(self) -> None:
        self.down = False

    def __call__(self, operation: str) -> BaseException | None:
        return StoreUnavailable("the disk is on fire") if self.down else None


@pytest.fixture
def switch() -> Switch:
    return Switch()


@pytest.fixture
async def flaky_store(switch: Switch) -> AsyncIterator[MemoryStore]:
    async with MemoryStore(fail=switch) as store:
        yield store


async def flaky_client(make_client: MakeClient, store: MemoryStore) -> Client:
    return await make_client(
        engine=build_engine(store),
        accounts=AccountService(store, hasher=PasswordHasher(TEST_PARAMS)),
        upkeep=store,
        health_ttl=0,  # every /healthz probes: the switch flips between two requests
    )


async def test_healthz_follows_the_store(
    make_client: MakeClient, flaky_store: MemoryStore, switch: Switch
) -> None:
    client = await flaky_client(make_client, flaky_store)
    ok = await client.get("/healthz")
    assert ok.status == 200 and (await ok.json())["status"] == "ok"
    switch.down = True
    down = await client.get("/healthz")
    assert down.status == 503 and (await down.json())["status"] == "unavailable"
    assert "fire" not in await down.text()


async def test_pages_say_unavailable_when_the_store_is_down(
    make_client: MakeClient, flaky_store: MemoryStore, switch: Switch
) -> None:
    client = await flaky_client(make_client, flaky_store)
    await sign_up(client, "ada")
    switch.down = True
    page = await client.get("/account")
    body = await page.text()
    assert page.status == 503 and "reach its storage" in body
    assert "fire" not in body and "Traceback" not in body


async def test_metrics_count_messages_logins_and_requests(
    client: Client, metrics: PrometheusMetrics
) -> None:
    await sign_up(client, "ada")
    await log_out(client)
    await log_in(client, "ada", "wrong password!")
    await log_in(client, "ada")
    token = await page_token(client, "/chat")
    response = await client.post(
        "/chat/send",
        json={"text": "hi"},
        headers={"Accept": "text/event-stream", "X-CSRF-Token": token},
    )
    assert parse_sse(await response.text())[-1][0] == "done"
    exposed = await client.get("/metrics")
    assert exposed.status == 200
    assert exposed.headers["Content-Type"].startswith("text/plain")
    text = await exposed.text()
    for line in (
        'personabridge_logins_total{result="failed"} 1.0',
        'personabridge_logins_total{result="ok"} 1.0',
        'personabridge_http_request_duration_seconds_count{method="GET",route="/chat",status="200"}',
    ):
        assert line in text


def test_the_engine_side_of_the_metrics() -> None:
    metrics = PrometheusMetrics()
    metrics.message_in("telegram")
    metrics.message_out("telegram", "chat")
    metrics.backend_latency("offline", 0.02)
    metrics.error("backend")
    metrics.rate_limited("discord")
    text = metrics.render().decode()
    for line in (
        'personabridge_messages_in_total{platform="telegram"} 1.0',
        'personabridge_messages_out_total{kind="chat",platform="telegram"} 1.0',
        'personabridge_backend_latency_seconds_count{backend="offline"} 1.0',
        'personabridge_errors_total{kind="backend"} 1.0',
        'personabridge_rate_limited_total{platform="discord"} 1.0',
    ):
        assert line in text
    assert "telegram" not in PrometheusMetrics().render().decode(), "own registry each"


async def test_the_adapter_serves_on_a_port_and_stops(
    store: MemoryStore, engine: Engine, accounts: AccountService
) -> None:
    app = create_app(engine, accounts, upkeep=store, settings=WebSettings(host="127.0.0.1", port=0))
    adapter = WebAdapter(app, access_log=False)
    assert adapter.name == "web"
    async with adapter, aiohttp.ClientSession() as session:
        assert adapter.port
        async with session.get(adapter.url + "/healthz") as response:
            assert response.status == 200
        url = adapter.url
    assert adapter.port is None
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(url + "/healthz")


async def test_the_whole_flow_on_sqlite(make_client: MakeClient, tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "web.db") as store:
        client = await make_client(
            engine=build_engine(store),
            accounts=AccountService(store, hasher=PasswordHasher(TEST_PARAMS)),
            upkeep=store,
        )
        await sign_up(client, "Ada")
        token = await page_token(client, "/chat")
        response = await client.post(
            "/chat/send",
            json={"text": "on disk"},
            headers={"Accept": "text/event-stream", "X-CSRF-Token": token},
        )
        assert parse_sse(await response.text())[-1][1]["text"] == "re:on disk saw:[]"
        await log_out(client)
        assert (await log_in(client, "ada")).status == 303
        assert "re:on disk saw:[]" in await (await client.get("/chat")).text()
        exported = await (await client.get("/account/export")).json(content_type=None)
        turns = exported["conversations"][0]["turns"]
        assert [t["text"] for t in turns][1:2] == ["on disk"]  # after the greeting
