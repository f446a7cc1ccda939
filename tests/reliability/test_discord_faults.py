"""Discord under platform faults: the real adapter (real discord.py on the fake gateway,
and HTTP interactions on the real web app) against the fake REST API while it answers a
share of the bot's requests with 429 (small ``retry_after``) and 5xx; a real engine.

Each run prints its counts (messages sent, replies delivered, turns stored, lost,
leaked) and asserts that nothing was lost or leaked and that faults were injected.

Who retries what: discord.py waits out a 429 and retries a 500, 502, 504 (and 524) on
its own, sending the same body, so a channel message repeated after a 5xx that took
effect carries the same ``nonce`` with ``enforce_nonce`` and Discord (like the fake)
returns the message already made instead of a second one. discord.py raises a 503 at
once: the adapter's final show tries it again (``adapters/discord/streaming.py``).
HTTP interactions go through our own client (``adapters/discord/rest.py``), which waits
out 429s and retries 5xx with backoff. A follow-up (a webhook message) has no nonce,
so faults that take effect are injected on edits and channel messages only.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.platform_faults import (
    FaultPlan,
    Sent,
    Tally,
    Visible,
    answered,
    count,
    private_text_in,
    settle,
    token,
    words,
)

# isort: split

from aiohttp import web
from aiohttp.test_utils import TestClient
from nacl.signing import SigningKey

from adapters.discord import INTERACTIONS_PATH, DiscordAdapter
from adapters.discord.render import split_message
from adapters.discord.streaming import FINAL_ATTEMPTS
from adapters.web import create_app
from auth import TEST_PARAMS, AccountService, PasswordHasher
from bot.messages import Identity, OwnerId, Turn, guest_owner
from bot.personas import Persona
from bot.store.base import BackendState, Store
from bot.store.memory import MemoryStore
from tests.support.discord_harness import (
    CHANNEL_ID,
    build_engine,
    fast_adapter,
    guild_create,
    message,
    running,
    slash,
)
from tests.support.discord_server import BOT, TIMESTAMP, FakeDiscord, user
from tests.support.fakes import TextBackend

CURSOR = "▌"
MESSAGES_EACH = 3
SETTLE_TIMEOUT = 60.0
KEY = SigningKey(bytes(range(32)))
Client = TestClient[web.Request, web.Application]


@dataclass(frozen=True)
class Speaker:
    number: int
    person: dict[str, Any]
    kind: str  # "dm", "mention", "slash-guild", "slash-dm"

    @property
    def dm_channel(self) -> int:
        return 7_000 + self.number

    @property
    def owner(self) -> OwnerId:
        return guest_owner(Identity("discord", self.person["id"]))


KINDS = ("dm",) * 8 + ("mention",) * 6 + ("slash-guild",) * 3 + ("slash-dm",) * 3


def speakers() -> list[Speaker]:
    return [Speaker(n, user(80_000 + n, f"user{n:02d}"), kind) for n, kind in enumerate(KINDS)]


def guild_with(people: Sequence[Speaker]) -> dict[str, Any]:
    """The test guild, with every speaker a member."""
    guild = guild_create()
    member = {"roles": [], "joined_at": TIMESTAMP, "deaf": False, "mute": False, "flags": 0}
    guild["members"] = [{"user": p, **member} for p in [BOT, *(s.person for s in people)]]
    guild["member_count"] = len(guild["members"])
    return guild


def event_for(speaker: Speaker, index: int) -> tuple[str, dict[str, Any], Sent]:
    """The gateway event that carries message ``index`` of ``speaker``, and what the
    engine should keep of it and where its reply must show."""
    text = f"{token(speaker.number, index)} hello number {index}"
    owner = speaker.owner
    if speaker.kind == "dm":
        payload = message(text, guild=False, person=speaker.person)
        payload["channel_id"] = str(speaker.dm_channel)
        place = f"channel:{speaker.dm_channel}"
        return "MESSAGE_CREATE", payload, Sent(speaker.number, index, text, owner, "direct", place)
    if speaker.kind == "mention":
        payload = message(f"<@{BOT['id']}> {text}", person=speaker.person, mentions=[BOT])
        sent = Sent(
            speaker.number,
            index,
            text,
            owner,
            f"discord:{CHANNEL_ID}",
            f"channel:{CHANNEL_ID}",
            payload["id"],
        )
        return "MESSAGE_CREATE", payload, sent
    guild = speaker.kind == "slash-guild"
    payload = slash("chat", guild=guild, person=speaker.person, message=text)
    # Ids of its own, not the next from a counter the other tests share: the faults an
    # interaction meets are drawn by its token (see same_draws).
    payload["id"] = f"{speaker.person['id']}{index:03d}"
    payload["token"] = f"itoken-{payload['id']}"
    scope = f"discord:{CHANNEL_ID}" if guild else "direct"
    sent = Sent(speaker.number, index, text, owner, scope, f"token:{payload['token']}")
    return "INTERACTION_CREATE", payload, sent


def visible_replies(fake: FakeDiscord) -> list[Visible]:
    """Every message of the bot as users see it now: in channels, and in interactions."""
    shown = [
        Visible(
            f"channel:{m['channel_id']}",
            m["content"],
            answered(m["content"]),
            quoted(m),
        )
        for m in sorted(fake.messages.values(), key=lambda m: int(m["id"]))
    ]
    for interaction, messages in fake.webhook_messages.items():
        shown += [Visible(f"token:{interaction}", t, answered(t)) for t in messages.values()]
    return shown


def quoted(posted: dict[str, Any]) -> str | None:
    """The id of the message a channel message replies to (discord.py sends ints)."""
    reference = posted.get("message_reference") or {}
    return None if reference.get("message_id") is None else str(reference["message_id"])


def same_draws(key: str) -> str:
    """The random stream a request draws its fault from: by route, channel and
    interaction, not by message id (the fake hands those out in whatever order the
    requests came), so a run meets the same faults whatever the interleaving."""
    return re.sub(r"/messages/\d+", "/messages/#", key)


def many_faults(seed: str) -> FaultPlan:
    return FaultPlan(
        seed=seed,
        subject=same_draws,
        rate_limited=0.15,
        server_errors=0.10,
        statuses=(500, 502, 503),
        retry_after=(0.1, 0.5),
        only=r"^(POST|PATCH|DELETE) ",
        # Channel messages (nonce) and edits are safe to repeat; follow-ups are not.
        applied=1.0,
        applied_to=r"^(POST /channels/\d+/messages$|PATCH )",
    )


async def settled(
    label: str, adapter: DiscordAdapter, store: Store, fake: FakeDiscord, sent: list[Sent]
) -> None:
    """Until every reply is delivered and stored, no reply is in flight, or the timeout."""

    async def measure() -> Tally:
        tally = await count(label, store, sent, visible_replies(fake))
        if adapter.replies_in_flight:
            tally.lose(f"{adapter.replies_in_flight} replies still in flight")
        return tally

    await settle(measure, timeout=SETTLE_TIMEOUT)


async def test_twenty_users_lose_and_leak_nothing_under_429s_and_5xx(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    plan = many_faults("discord-many")
    people = speakers()
    async with FakeDiscord() as fake, MemoryStore() as store:
        fake.guilds.append(guild_with(people))
        async with running(fake, build_engine(store)) as adapter:
            fake.faults = plan  # armed once connected: start-up is not under test
            sent: list[Sent] = []
            for index in range(MESSAGES_EACH):
                for speaker in people:
                    event, payload, expected = event_for(speaker, index)
                    await fake.dispatch(event, payload)
                    sent.append(expected)

            await settled("discord", adapter, store, fake, sent)
        tally = await count("discord", store, sent, visible_replies(fake))

    print(tally.line(plan))
    assert tally.lost == 0, tally.problems[:5]
    assert tally.leaked == 0, tally.problems[:5]
    assert tally.sent == len(people) * MESSAGES_EACH == tally.delivered
    assert tally.stored == 2 * tally.sent
    assert tally.duplicated == 0, "a repeated send carries its nonce"
    assert plan.count("429") >= 10 and plan.count("5") >= 10, plan.injected
    assert plan.count("503") >= 1 and plan.count("502 applied") + plan.count("500 applied") >= 1
    assert not any(CURSOR in v.text for v in visible_replies(fake))
    assert not private_text_in(caplog.text, ["bot-token"])
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def numbered_text(count: int) -> str:
    """``count`` numbered words in sentences and paragraphs (about 6,100 characters
    for 1,000: four Discord messages)."""
    sentences = [
        " ".join(f"w{n:04d}" for n in range(start, min(start + 10, count))) + "."
        for start in range(0, count, 10)
    ]
    return "\n\n".join(" ".join(sentences[i : i + 5]) for i in range(0, len(sentences), 5))


async def test_a_long_reply_arrives_whole_and_in_order_under_faults() -> None:
    text = numbered_text(1000)
    pieces = split_message(text, 2000)
    assert len(pieces) >= 4
    plan = many_faults("discord-long")
    plan.rate_limited, plan.server_errors = 0.2, 0.15
    people = [Speaker(n, user(81_000 + n, f"reader{n}"), "dm") for n in range(2)]
    people.append(Speaker(2, user(81_002, "reader2"), "slash-dm"))
    backend = TextBackend(text, chunk=500, pause=0.02)
    async with FakeDiscord() as fake, MemoryStore() as store:
        async with running(fake, build_engine(store, backend)) as adapter:
            fake.faults = plan
            sent = []
            for speaker in people:
                event, payload, expected = event_for(speaker, 0)
                await fake.dispatch(event, payload)
                sent.append(expected)

            def visible() -> list[Visible]:
                # One reply per place: its messages, oldest first, joined.
                return [
                    Visible(s.place, "\n".join(shown_in(fake, s.place)), s.key)
                    for s in sent
                    if shown_in(fake, s.place)
                ]

            async def measure() -> Tally:
                tally = await count("discord long", store, sent, visible(), same=words)
                if adapter.replies_in_flight:
                    tally.lose(f"{adapter.replies_in_flight} replies still in flight")
                return tally

            await settle(measure, timeout=SETTLE_TIMEOUT)
        tally = await measure()

    print(tally.line(plan))
    assert tally.lost == 0, tally.problems[:5]
    assert tally.leaked == 0 and tally.delivered == len(people)
    for s in sent:
        assert shown_in(fake, s.place) == pieces, "every piece once, in order"
    assert plan.total >= 5, plan.injected


def shown_in(fake: FakeDiscord, place: str) -> list[str]:
    kind, _, where = place.partition(":")
    if kind == "channel":
        return [m["content"] for m in fake.channel_messages(where)]
    return list(fake.webhook_messages.get(where, {}).values())


class PausingBackend:
    """Writes its text at once, then takes ``pause`` seconds to finish: the reply is
    previewed (with the cursor) before its final text replaces the preview."""

    name = "pausing"

    def __init__(self, text: str, pause: float):
        self.text = text
        self._pause = pause

    async def reply(
        self, persona: Persona, window: Sequence[Turn], message: Turn, state: BackendState
    ) -> AsyncIterator[str]:
        yield self.text
        await asyncio.sleep(self._pause)

    async def aclose(self) -> None:
        pass


async def test_a_final_edit_answered_503_is_tried_again() -> None:
    """discord.py raises a 503 at once; the final text is still shown."""
    plan = FaultPlan(
        seed="discord-503",
        rate_limited=0.0,
        server_errors=1.0,
        statuses=(503,),
        only=r"^PATCH /channels/",
        max_in_a_row=2,  # every edit fails twice before it goes through
    )
    person = user(82_000, "patient")
    payload = message("hello", guild=False, person=person)
    async with FakeDiscord() as fake, MemoryStore() as store:
        engine = build_engine(store, PausingBackend("the whole answer", pause=0.3))
        async with running(fake, engine, edit_interval=0.05) as adapter:
            fake.faults = plan
            await fake.dispatch("MESSAGE_CREATE", payload)
            await fake.wait_for(lambda: adapter.replies_in_flight == 0 and plan.total, 10)
    channel = payload["channel_id"]
    assert [m["content"] for m in fake.channel_messages(channel)] == ["the whole answer"]
    edits = fake.find("PATCH", rf"^/channels/{channel}/messages/\d+$")
    assert [c.response is not None for c in edits][-3:] == [False, False, True]


async def test_a_final_edit_failing_past_its_attempts_is_given_up_and_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every edit answered 503: the final show is tried FINAL_ATTEMPTS times, the
    failure is logged without the text, and both turns are kept for ``/retry``."""
    caplog.set_level(logging.INFO)
    person = user(82_002, "unlucky")
    payload = message("my secret diary", guild=False, person=person)
    route = rf"^/channels/{payload['channel_id']}/messages/\d+$"
    async with FakeDiscord() as fake, MemoryStore() as store:
        for _ in range(FINAL_ATTEMPTS + 5):
            fake.fail_next("PATCH", route, status=503)
        engine = build_engine(store, PausingBackend("the reply", pause=0.3))
        async with running(fake, engine) as adapter:
            await fake.dispatch("MESSAGE_CREATE", payload)
            await fake.wait_for(lambda: "could not answer" in caplog.text, timeout=15)
            assert adapter.replies_in_flight == 0
        [record] = await store.export_owner(guest_owner(Identity("discord", person["id"])))
    assert len(fake.find("PATCH", route)) == FINAL_ATTEMPTS
    assert [t.text for t in record.turns] == ["my secret diary", "the reply"]
    assert "secret diary" not in caplog.text


@pytest.mark.parametrize(
    ("status", "person_id"),
    [
        # discord.py sends it again itself, with the same payload and so the same nonce
        pytest.param(502, 82_001, id="502-repeated-by-discord.py"),
        # discord.py gives up on a 503; our retry of the final text keeps the nonce
        pytest.param(503, 82_003, id="503-repeated-by-us"),
    ],
)
async def test_a_message_repeated_after_an_applied_5xx_is_not_duplicated(
    status: int, person_id: int
) -> None:
    """Every channel message is made, then answered 5xx: it is sent again with the same
    nonce, and the message already made comes back instead of a second one."""
    plan = FaultPlan(
        seed=f"discord-nonce-{status}",
        rate_limited=0.0,
        server_errors=1.0,
        statuses=(status,),
        only=r"^POST /channels/\d+/messages$",
        applied=1.0,
        applied_to=r".",
        applied_statuses=frozenset({status}),
        max_in_a_row=1,  # every send: made and answered 5xx, then repeated
    )
    person = user(person_id, f"once-{status}")
    payload = message("hello", guild=False, person=person)
    async with FakeDiscord() as fake, MemoryStore() as store:
        engine = build_engine(store, PausingBackend("said once", pause=0.0))
        async with running(fake, engine) as adapter:
            fake.faults = plan
            await fake.dispatch("MESSAGE_CREATE", payload)
            await fake.wait_for(lambda: adapter.replies_in_flight == 0 and plan.total, 10)
    channel = payload["channel_id"]
    sends = fake.find("POST", rf"^/channels/{channel}/messages$")
    assert len(sends) == 2 and sends[0].body["nonce"] == sends[1].body["nonce"]
    assert [m["content"] for m in fake.channel_messages(channel)] == ["said once"]
    assert plan.injected == {f"{status} applied": 1}


# -- HTTP interactions: our own REST client ----------------------------------------------


def signed(body: bytes) -> dict[str, str]:
    stamp = str(int(time.time()))
    signature = KEY.sign(stamp.encode() + body).signature.hex()
    return {
        "X-Signature-Ed25519": signature,
        "X-Signature-Timestamp": stamp,
        "Content-Type": "application/json",
    }


async def test_http_interactions_lose_and_leak_nothing_under_429s_and_5xx(
    aiohttp_client: Callable[..., Awaitable[Client]],
) -> None:
    plan = many_faults("discord-http")
    plan.server_errors = 0.2  # fewer requests here: more of them fail
    people = [
        Speaker(n, user(83_000 + n, f"web{n:02d}"), "slash-guild" if n % 2 else "slash-dm")
        for n in range(8)
    ]
    async with FakeDiscord() as fake, MemoryStore() as store:
        fake.faults = plan
        engine = build_engine(store)
        settings = fake.settings(token=None, public_key=KEY.verify_key.encode().hex())
        adapter = fast_adapter(engine, settings, events=store)
        accounts = AccountService(store, hasher=PasswordHasher(TEST_PARAMS))
        async with adapter:
            client = await aiohttp_client(
                create_app(engine, accounts, upkeep=store, extra_routes=adapter.web_routes())
            )
            sent: list[Sent] = []
            for index, speaker in itertools.product(range(MESSAGES_EACH), people):
                _, payload, expected = event_for(speaker, index)
                body = json.dumps(payload).encode()
                response = await client.post(INTERACTIONS_PATH, data=body, headers=signed(body))
                assert response.status == 200 and (await response.json())["type"] == 5
                sent.append(expected)

            await settled("discord http", adapter, store, fake, sent)
        tally = await count("discord http", store, sent, visible_replies(fake))

    print(tally.line(plan))
    assert tally.lost == 0, tally.problems[:5]
    assert tally.leaked == 0, tally.problems[:5]
    assert tally.sent == len(people) * MESSAGES_EACH == tally.delivered
    assert tally.duplicated == 0
    assert plan.count("429") >= 5 and plan.count("5") >= 3, plan.injected
