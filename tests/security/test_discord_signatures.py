"""Discord HTTP interactions: only what Discord signed runs, and only once.

The interactions endpoint is mounted in the real web app (as in production) with the
real Discord adapter behind it, replying over REST to the fake Discord on loopback.
"Runs nothing" is checked four ways: no message reached the engine (its metrics), the
backend was never asked, the fake Discord got no REST call, and the SQLite file is
byte-for-byte what it was.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from adapters.discord import INTERACTIONS_PATH, DiscordAdapter
from adapters.discord.interactions import InteractionEndpoint, ReplayGuard
from adapters.discord.settings import DiscordSettings
from adapters.discord.tasks import TaskTracker
from bot.engine import Engine
from bot.store.sqlite import SqliteStore
from tests.support.clocks import Clock
from tests.support.discord_harness import fast_adapter, slash, user
from tests.support.discord_server import FakeDiscord
from tests.support.fakes import WindowEcho
from tests.support.web_site import (
    DISCORD_KEY,
    DISCORD_PUBLIC_KEY,
    CountingMetrics,
    MakeSite,
    Reply,
    Site,
    db_snapshot,
    discord_signed,
)

MAX_AGE = DiscordSettings().signature_max_age
MALLORY = user(66, "mallory")


@dataclass
class Endpoint:
    site: Site
    adapter: DiscordAdapter
    fake: FakeDiscord

    async def post(self, body: bytes, headers: dict[str, str]) -> Reply:
        return await self.site.browser().post(INTERACTIONS_PATH, data=body, headers=headers)

    async def reply_to(self, payload: dict[str, Any]) -> list[str]:
        """Send a correctly signed interaction and wait for its complete reply."""
        body = json.dumps(payload).encode()
        answer = await self.post(body, discord_signed(body))
        assert answer.status == 200 and answer.json()["type"] == 5, answer.text

        def finished() -> list[str] | None:
            pieces = self.fake.transcript(token=payload["token"])
            busy = self.adapter.replies_in_flight or any("▌" in p for p in pieces)
            return None if busy or not pieces else pieces

        result: list[str] = await self.fake.wait_for(finished, timeout=10)
        return result


@pytest.fixture
async def endpoint(
    make_site: MakeSite, store: SqliteStore, engine: Engine
) -> AsyncIterator[Endpoint]:
    async with FakeDiscord() as fake:
        settings = fake.settings(token=None, public_key=DISCORD_PUBLIC_KEY)
        adapter = fast_adapter(engine, settings, events=store)
        async with adapter, make_site(extra_routes=adapter.web_routes()) as site:
            yield Endpoint(site, adapter, fake)


def chat(text: str, **where: Any) -> dict[str, Any]:
    return slash("chat", message=text, guild=False, **where)


Spoil = Callable[[dict[str, Any]], tuple[bytes, dict[str, str]]]


def _signed_then(change: Callable[[bytes], bytes]) -> Spoil:
    def spoil(payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(payload).encode()
        return change(body), discord_signed(body)

    return spoil


def _headers_changed(**changes: str | None) -> Spoil:
    def spoil(payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(payload).encode()
        headers = discord_signed(body)
        for name, value in changes.items():
            header = {"signature": "X-Signature-Ed25519", "timestamp": "X-Signature-Timestamp"}[
                name
            ]
            if value is None:
                del headers[header]
            else:
                headers[header] = value
        return body, headers

    return spoil


def _signed_at(offset: float, key: SigningKey = DISCORD_KEY) -> Spoil:
    def spoil(payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(payload).encode()
        return body, discord_signed(body, key=key, timestamp=time.time() + offset)

    return spoil


def _timestamp_changed_after_signing(payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    headers = discord_signed(body)
    headers["X-Signature-Timestamp"] = str(int(headers["X-Signature-Timestamp"]) - 1)
    return body, headers


def _signed_empty_body(payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    return json.dumps(payload).encode(), discord_signed(b"")


def _truncated_signature(payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    headers = discord_signed(body)
    headers["X-Signature-Ed25519"] = headers["X-Signature-Ed25519"][:-2]  # 63 bytes
    return body, headers


def _impersonate(body: bytes) -> bytes:
    """Someone else's id put into an interaction after Discord signed it."""
    payload = json.loads(body)
    payload["user"] = MALLORY
    return json.dumps(payload).encode()


FORGERIES: dict[str, Spoil] = {
    "forged-signature": _headers_changed(signature="ab" * 64),
    "signed-by-another-key": _signed_at(0, key=SigningKey(bytes(range(1, 33)))),
    "body-tampered-after-signing": _signed_then(lambda b: b.replace(b"hello", b"HACKD")),
    "user-swapped-after-signing": _signed_then(_impersonate),
    "trailing-byte-after-signing": _signed_then(lambda b: b + b" "),
    "timestamp-changed-after-signing": _timestamp_changed_after_signing,
    "stale-timestamp": _signed_at(-(MAX_AGE + 30)),
    "future-timestamp": _signed_at(MAX_AGE + 30),
    "no-signature": _headers_changed(signature=None),
    "no-timestamp": _headers_changed(timestamp=None),
    "empty-signature": _headers_changed(signature=""),
    "signature-not-hex": _headers_changed(signature="zz" * 64),
    "signature-truncated": _truncated_signature,
    "timestamp-not-a-number": _headers_changed(timestamp="yesterday"),
    "signature-of-an-empty-body": _signed_empty_body,
}


@pytest.mark.parametrize("forgery", list(FORGERIES))
async def test_a_request_discord_did_not_sign_runs_nothing(
    endpoint: Endpoint,
    metrics: CountingMetrics,
    backend: WindowEcho,
    db_path: Path,
    forgery: str,
) -> None:
    before = db_snapshot(db_path)
    body, headers = FORGERIES[forgery](chat("hello"))
    reply = await endpoint.post(body, headers)
    assert reply.status == 401, reply.text
    # A correctly signed message afterwards is the barrier: had the forgery been taken,
    # its reply would have been written first (and been in the window).
    assert await endpoint.reply_to(chat("barrier")) == ["re:barrier saw:[]"]
    assert metrics.messages_in == ["discord"], "only the barrier reached the engine"
    assert backend.calls == 1
    tokens = {c.path.split("/")[3] for c in endpoint.fake.calls if c.path.startswith("/webhooks/")}
    assert len(tokens) == 1, "follow-ups for the barrier only"
    after = repr(db_snapshot(db_path))
    assert "hello" not in after and "HACKD" not in after, "no turn of the forgery kept"
    assert repr(before) != after, "(the barrier did write: the snapshot sees writes)"


async def test_a_replayed_interaction_does_not_run_twice(
    endpoint: Endpoint, metrics: CountingMetrics, backend: WindowEcho
) -> None:
    payload = chat("hello")
    body = json.dumps(payload).encode()
    headers = discord_signed(body)
    first = await endpoint.post(body, headers)
    assert first.status == 200

    replay = await endpoint.post(body, headers)  # the same bytes, seconds later
    assert replay.status == 401
    assert "replay" in replay.json()["error"]

    assert await endpoint.reply_to(chat("barrier")) == ["re:barrier saw:[hello]"], (
        "exactly one 'hello' was stored"
    )
    assert backend.calls == 2
    assert metrics.messages_in == ["discord", "discord"]
    assert endpoint.fake.transcript(token=payload["token"]) == ["re:hello saw:[]"]


async def test_a_burst_of_the_same_interaction_runs_once(
    endpoint: Endpoint, backend: WindowEcho
) -> None:
    body = json.dumps(chat("hello")).encode()
    headers = discord_signed(body)
    replies = await asyncio.gather(*(endpoint.post(body, headers) for _ in range(8)))
    assert sorted(r.status for r in replies) == [200] + [401] * 7
    assert await endpoint.reply_to(chat("barrier")) == ["re:barrier saw:[hello]"]
    assert backend.calls == 2


async def test_a_replay_with_a_re_encoded_signature_is_still_a_replay(
    endpoint: Endpoint, backend: WindowEcho
) -> None:
    """The guard keys on what was signed, not on the signature's spelling."""
    body = json.dumps(chat("hello")).encode()
    headers = discord_signed(body)
    assert (await endpoint.post(body, headers)).status == 200
    upper = {**headers, "X-Signature-Ed25519": headers["X-Signature-Ed25519"].upper()}
    assert (await endpoint.post(body, upper)).status == 401
    assert await endpoint.reply_to(chat("barrier")) == ["re:barrier saw:[hello]"]


async def test_a_replay_is_refused_until_the_age_check_takes_over(
    make_site: MakeSite, store: SqliteStore, engine: Engine
) -> None:
    """No gap between the replay memory forgetting a request and the age check
    refusing it, and the memory empties as requests age out."""
    clock = Clock(float(int(time.time())))  # signed timestamps are whole seconds
    tasks = TaskTracker()
    endpoint = InteractionEndpoint(
        engine,
        DiscordSettings(public_key=DISCORD_PUBLIC_KEY),
        tasks,
        events=store,
        clock=clock,
    )
    async with endpoint, make_site(extra_routes=[endpoint.route()]) as site:
        ping = b'{"type": 1, "id": "1", "application_id": "1000"}'
        headers = discord_signed(ping, timestamp=clock.now)
        browser = site.browser()

        async def send() -> Reply:
            return await browser.post(INTERACTIONS_PATH, data=ping, headers=headers)

        assert (await send()).json() == {"type": 1}
        assert len(endpoint.replays) == 1
        clock.advance(MAX_AGE)  # the last moment the signature is valid
        last = await send()
        assert last.status == 401 and "replay" in last.json()["error"]
        clock.advance(1)
        stale = await send()
        assert stale.status == 401 and "signature" in stale.json()["error"]
        fresh = discord_signed(ping, timestamp=clock.now)
        assert (await browser.post(INTERACTIONS_PATH, data=ping, headers=fresh)).status == 200
        assert len(endpoint.replays) == 1, "the aged-out request was forgotten"


def test_the_replay_memory_is_bounded() -> None:
    clock = Clock()
    guard = ReplayGuard(MAX_AGE, clock=clock, capacity=50)
    for n in range(500):
        assert guard.first_time(clock.now, f"{n}".encode())
        assert len(guard) <= 50
    assert not guard.first_time(clock.now, b"499"), "the newest are remembered"
