"""HTTP interactions: slash commands delivered to our web server instead of the gateway.

With an "Interactions Endpoint URL" set in the developer portal, Discord POSTs each
interaction to it, signed with Ed25519 over ``X-Signature-Timestamp`` + body; the
public key is ``DISCORD__PUBLIC_KEY``. A request with a bad signature or a stale
timestamp gets 401 (Discord itself sends such probes when the URL is saved), and so
does a valid request seen before (a replay: see :class:`ReplayGuard`). A PING is
answered with a PONG; a command is deferred at once (Discord waits 3 s at most) and the
reply follows over REST (:mod:`adapters.discord.rest`), so any number of stateless web
workers can serve commands with no gateway connection. Autocomplete is answered inline.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Self

import aiohttp
from aiohttp import web
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from adapters.discord.buttons import pressed_text
from adapters.discord.commands import (
    EPHEMERAL,
    PLATFORM,
    SLASH_COMMANDS,
    OptionValue,
    command_text,
    persona_choices,
)
from adapters.discord.files import resolved_file
from adapters.discord.rest import EPHEMERAL_FLAG, NO_MENTIONS, InteractionWebhooks, WebhookSlots
from adapters.discord.settings import DiscordSettings
from adapters.discord.streaming import deliver
from adapters.discord.tasks import TaskTracker
from adapters.discord.voice import WebhookVoice, follow_with_voice
from bot.adapter import WebRoute
from bot.engine import Engine
from bot.errors import ConfigError, StoreError
from bot.inbox import Inbox
from bot.messages import Incoming, IncomingFile
from bot.store.base import EventStore, InboxEntry

log = logging.getLogger(__name__)

INTERACTIONS_PATH = "/discord/interactions"
PING, APPLICATION_COMMAND, MESSAGE_COMPONENT, AUTOCOMPLETE = 1, 2, 3, 4
PONG, CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, AUTOCOMPLETE_RESULT = 1, 4, 5, 8
#: An interaction's token takes follow-ups for 15 minutes: its id is remembered longer.
KEEP_INTERACTION_IDS = 16 * 60.0
_BOT_DM_CONTEXT = 1


class SignatureVerifier:
    """Checks Discord's Ed25519 request signatures and their timestamps' age."""

    def __init__(self, public_key: str, *, max_age: float, clock: Callable[[], float] = time.time):
        try:
            self._key = VerifyKey(bytes.fromhex(public_key))
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                "PERSONABRIDGE_DISCORD__PUBLIC_KEY must be the application's public key "
                "(64 hex digits)"
            ) from exc
        self._max_age = max_age
        self._clock = clock

    def valid(self, signature: str | None, timestamp: str | None, body: bytes) -> bool:
        if not signature or not timestamp:
            return False
        try:
            sent_at = int(timestamp)
            self._key.verify(timestamp.encode() + body, bytes.fromhex(signature))
        except (BadSignatureError, ValueError, TypeError):
            return False
        # A replayed request is refused once its timestamp is old.
        return abs(self._clock() - sent_at) <= self._max_age


class ReplayGuard:
    """Remembers the interactions accepted while their signature is still valid, so a
    signed request captured on its way (a proxy's log, a TLS-terminating middlebox) and
    sent again within the allowed age runs nothing a second time.

    Entries are keyed by a digest of exactly what Discord signed (timestamp + body): a
    replay must repeat those bytes to pass the signature check, whatever it does to
    the signature bytes themselves. An entry is dropped once its timestamp is out of
    the allowed window, as the age check refuses the request from then on; so memory
    holds the interactions of at most ``2 x max_age`` seconds, and ``capacity`` caps it
    beyond that (the entries nearest to expiry go first, and their replays are then no
    longer caught: a bound, chosen far above one process's traffic).

    The memory is per process; across workers, a command's interaction id is recorded
    in the store (its inbox, :mod:`bot.inbox`) with a conditional write, so a replay
    that reaches another worker is refused there.
    """

    def __init__(
        self, max_age: float, *, clock: Callable[[], float] = time.time, capacity: int = 100_000
    ):
        self._max_age = max_age
        self._clock = clock
        self._capacity = capacity
        self._seen: dict[bytes, float] = {}
        self._expiries: list[tuple[float, bytes]] = []

    def first_time(self, sent_at: float, signed: bytes) -> bool:
        """Record the signed message; False when it was seen before (a replay)."""
        self._expire(self._clock())
        key = hashlib.sha256(signed).digest()
        if key in self._seen:
            return False
        while len(self._seen) >= self._capacity:
            _, oldest = heapq.heappop(self._expiries)
            self._seen.pop(oldest, None)
        expires = sent_at + self._max_age
        self._seen[key] = expires
        heapq.heappush(self._expiries, (expires, key))
        return True

    def __len__(self) -> int:
        return len(self._seen)

    def _expire(self, now: float) -> None:
        while self._expiries and self._expiries[0][0] < now:
            _, key = heapq.heappop(self._expiries)
            self._seen.pop(key, None)


def incoming_from_payload(payload: Mapping[str, Any], text: str) -> Incoming:
    """The engine's view of an HTTP interaction (raises KeyError/TypeError if the
    payload lacks a user)."""
    member = payload.get("member") or {}
    user = member.get("user") or payload["user"]
    user_id = str(user["id"])
    channel = payload.get("channel") or {}
    context = payload.get("context")
    if context is not None:
        private = context == _BOT_DM_CONTEXT
    else:
        private = "guild_id" not in payload and channel.get("type", 1) == 1
    return Incoming(
        platform=PLATFORM,
        user_id=user_id,
        display_name=str(
            member.get("nick") or user.get("global_name") or user.get("username") or user_id
        ),
        chat_id=str(payload.get("channel_id") or channel.get("id") or user_id),
        private=private,
        text=text,
        addressed=True,
    )


def _options(data: Mapping[str, Any]) -> tuple[dict[str, OptionValue], str | None]:
    """The options by name, and the focused one's name (autocomplete)."""
    values: dict[str, OptionValue] = {}
    focused = None
    for option in data.get("options") or ():
        values[str(option["name"])] = option.get("value", "")
        if option.get("focused"):
            focused = str(option["name"])
    return values, focused


class InteractionEndpoint:
    """The aiohttp route for Discord's Interactions Endpoint URL.

    Entering opens the HTTP session the follow-ups use; until then (and after
    leaving) commands are answered 503.
    """

    def __init__(
        self,
        engine: Engine,
        settings: DiscordSettings,
        tasks: TaskTracker,
        *,
        events: EventStore,
        clock: Callable[[], float] = time.time,
    ):
        if not settings.public_key:
            raise ConfigError("PERSONABRIDGE_DISCORD__PUBLIC_KEY is needed for HTTP interactions")
        self._engine = engine
        self._settings = settings
        self._tasks = tasks
        self._verifier = SignatureVerifier(
            settings.public_key, max_age=settings.signature_max_age, clock=clock
        )
        self.replays = ReplayGuard(settings.signature_max_age, clock=clock)
        self.inbox = Inbox(
            events,
            PLATFORM,
            hold=settings.inbox_hold_seconds,
            sweep=settings.inbox_sweep_seconds,
            keep=KEEP_INTERACTION_IDS,
        )
        self._session: aiohttp.ClientSession | None = None
        self._webhooks: InteractionWebhooks | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        self._webhooks = InteractionWebhooks(self._session, self._settings.api_base_url)
        # commands a worker that died deferred and never answered
        self._sweeper = asyncio.create_task(
            self.inbox.run(self._answer_again), name="discord inbox"
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            await asyncio.wait([sweeper])
        session, self._session, self._webhooks = self._session, None, None
        if session is not None:
            await session.close()

    def route(self) -> WebRoute:
        """``POST /discord/interactions``, exempt from the web's CSRF check: Discord
        authenticates its requests with the signature instead."""
        return WebRoute("POST", INTERACTIONS_PATH, self.handle, csrf_exempt=True)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = request.headers
        signature = headers.get("X-Signature-Ed25519")
        timestamp = headers.get("X-Signature-Timestamp")
        if not timestamp or not self._verifier.valid(signature, timestamp, body):
            return web.json_response({"error": "invalid request signature"}, status=401)
        if not self.replays.first_time(int(timestamp), timestamp.encode() + body):
            log.warning("discord: a replayed interaction was refused")
            return web.json_response({"error": "replayed request"}, status=401)
        try:
            payload = json.loads(body)
            kind = payload["type"]
            if kind == PING:
                return web.json_response({"type": PONG})
            if kind == AUTOCOMPLETE:
                return self._autocomplete(payload)
            if kind == APPLICATION_COMMAND:
                return await self._command(request, payload)
            if kind == MESSAGE_COMPONENT:
                return await self._pressed(request, payload)
        except (ValueError, KeyError, TypeError, AttributeError):
            log.warning("discord: a malformed interaction was refused")
            return web.json_response({"error": "malformed interaction"}, status=400)
        return web.json_response({"error": f"unsupported interaction type {kind}"}, status=400)

    def _autocomplete(self, payload: Mapping[str, Any]) -> web.Response:
        values, focused = _options(payload["data"])
        current = str(values.get(focused, "")) if focused else ""
        choices = [
            {"name": label, "value": value}
            for label, value in persona_choices(self._engine, current)
        ]
        return web.json_response({"type": AUTOCOMPLETE_RESULT, "data": {"choices": choices}})

    async def _command(
        self, request: web.Request, payload: Mapping[str, Any]
    ) -> web.StreamResponse:
        data = payload["data"]
        name = str(data["name"])
        values, _ = _options(data)
        if name not in SLASH_COMMANDS:
            return _message(f"I don't know /{name}. Try /help.", ephemeral=True)
        files = self._attached(data, values) if name == "chat" else ()
        return await self._answer(request, payload, name, command_text(name, values), files)

    def _attached(
        self, data: Mapping[str, Any], values: Mapping[str, OptionValue]
    ) -> tuple[IncomingFile, ...]:
        """``/chat``'s attachment option, resolved (raises KeyError/TypeError/ValueError
        when the payload names an attachment it does not carry)."""
        chosen = values.get("attachment")
        if chosen is None or self._session is None:
            return ()
        attachment = data["resolved"]["attachments"][str(chosen)]
        return (resolved_file(self._session, attachment),)

    async def _pressed(
        self, request: web.Request, payload: Mapping[str, Any]
    ) -> web.StreamResponse:
        """A button under one of our replies: the presser's command (buttons.py)."""
        text = pressed_text(payload["data"].get("custom_id"))
        if text is None:
            return web.json_response({"error": "not one of our buttons"}, status=400)
        name = "link" if text.startswith("/link") else "button"
        return await self._answer(request, payload, name, text)

    async def _answer(
        self,
        request: web.Request,
        payload: Mapping[str, Any],
        name: str,
        text: str,
        files: tuple[IncomingFile, ...] = (),
    ) -> web.StreamResponse:
        incoming = replace(incoming_from_payload(payload, text), files=files)
        app_id, token = str(payload["application_id"]), str(payload["token"])
        webhooks = self._webhooks
        if webhooks is None or self._tasks.closed:
            return web.json_response({"error": "not serving Discord right now"}, status=503)
        ephemeral = name in EPHEMERAL and not incoming.private
        # Deferred only once stored: Discord never sends a deferred interaction again.
        interaction_id = str(payload["id"])
        try:
            fresh = await self.inbox.accept(interaction_id, json.dumps(payload))
        except StoreError as exc:
            log.warning("discord: an interaction could not be stored, not taken (%s)", exc)
            return web.json_response({"error": "try again"}, status=503)
        if not fresh:
            log.warning("discord: a replayed interaction was refused")
            return web.json_response({"error": "replayed request"}, status=401)
        incoming = replace(incoming, sent_at=self.inbox.received_at(interaction_id))
        deferred: dict[str, Any] = {"type": DEFERRED_CHANNEL_MESSAGE}
        if ephemeral:
            deferred["data"] = {"flags": EPHEMERAL_FLAG}
        # Send the deferral before the first follow-up can go out: Discord only
        # accepts follow-ups for an interaction it has seen answered.
        response = web.json_response(deferred)
        await response.prepare(request)
        await response.write_eof()
        slots = WebhookSlots(webhooks, app_id, token, ephemeral=ephemeral)
        voice = WebhookVoice(webhooks, app_id, token, ephemeral=ephemeral)
        self._tasks.spawn(
            self._deliver(interaction_id, incoming, slots, voice),
            name=f"discord-interaction-{name}",
        )
        return response

    async def _deliver(
        self, interaction_id: str, incoming: Incoming, slots: WebhookSlots, voice: WebhookVoice
    ) -> None:
        try:
            done = await deliver(self._engine, incoming, slots, self._settings)
            # then, for someone who asked for voice replies, the reply read aloud
            await follow_with_voice(self._engine.speech, incoming, done, voice)
        finally:
            await self.inbox.finish(interaction_id)

    async def _answer_again(self, entry: InboxEntry) -> None:
        """Answer a command taken from the inbox (deferred, never answered): its
        interaction's token still takes follow-ups for 15 minutes."""
        webhooks = self._webhooks
        try:
            payload = json.loads(entry.payload)
            data = payload["data"]
            name = str(data["name"])
            values, _ = _options(data)
            incoming = incoming_from_payload(payload, command_text(name, values))
            files = self._attached(data, values) if name == "chat" else ()
            incoming = replace(incoming, files=files)
            app_id, token = str(payload["application_id"]), str(payload["token"])
        except (ValueError, KeyError, TypeError, AttributeError):
            log.exception("discord interaction %s in the inbox is unreadable", entry.event_id)
            await self.inbox.finish(entry.event_id)
            return
        if webhooks is None or self._tasks.closed:
            return  # stopping: left for the next sweep of a worker
        incoming = replace(incoming, sent_at=entry.received_at)
        ephemeral = name in EPHEMERAL and not incoming.private
        slots = WebhookSlots(webhooks, app_id, token, ephemeral=ephemeral)
        voice = WebhookVoice(webhooks, app_id, token, ephemeral=ephemeral)
        self._tasks.spawn(
            self._deliver(entry.event_id, incoming, slots, voice),
            name=f"discord-interaction-{name}",
        )


def _message(text: str, *, ephemeral: bool) -> web.Response:
    data: dict[str, Any] = {"content": text, "allowed_mentions": NO_MENTIONS}
    if ephemeral:
        data["flags"] = EPHEMERAL_FLAG
    return web.json_response({"type": CHANNEL_MESSAGE, "data": data})
