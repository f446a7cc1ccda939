"""A fake Discord (REST + gateway) on 127.0.0.1, for driving the real discord.py.

REST answers carry ``Content-Type: application/json`` exactly (discord.py parses
nothing else); a 429 carries ``Via`` (without it discord.py takes it for a Cloudflare
ban and gives up). The gateway speaks text frames: HELLO, READY on IDENTIFY (with
``shard`` when asked), then a GUILD_CREATE per configured guild.

Besides the call log, it keeps the messages as users see them (``messages``: channel
messages by id; ``webhook_messages``: each interaction's messages by token, the
original first) and, like Discord, answers a channel message sent again with the same
``nonce`` and ``enforce_nonce`` with the message already made. ``faults`` (a
:class:`FaultSource`, such as ``tests/reliability/platform_faults.FaultPlan``) makes a
share of the REST calls (asked by the key ``METHOD /path``) fail: 429 (with ``Via``,
as Discord's come) or a 5xx, answered before the call took effect or, when the fault
says ``applied``, after it did.

A message posted with files (multipart: ``payload_json`` and ``files[n]``, as discord.py
and our webhook client send them) is recorded in ``uploads`` (path, file name, content
type, bytes), and its file names are in the posted message's ``attachments``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, WSMsgType, web
from pydantic import SecretStr

from adapters.discord.settings import DiscordSettings
from tests.support.fakes import FaultSource, InjectedFault

APP_ID = "1000"
BOT_ID = 1000
BOT = {
    "id": str(BOT_ID),
    "username": "persona",
    "discriminator": "0",
    "global_name": "PersonaBridge",
    "avatar": None,
    "bot": True,
}
TIMESTAMP = "2025-01-01T00:00:00+00:00"


def user(user_id: int, name: str) -> dict[str, Any]:
    return {
        "id": str(user_id),
        "username": name,
        "discriminator": "0",
        "global_name": None,
        "avatar": None,
    }


_SERVER_ERRORS = {
    500: "500: Internal Server Error",
    502: "502: Bad Gateway",
    503: "503: Service Unavailable",
    504: "504: Gateway Timeout",
}


@dataclass
class Call:
    method: str
    path: str  # after /api/v10
    query: dict[str, str]
    body: Any
    at: float
    response: Any = None

    @property
    def content(self) -> str | None:
        return self.body.get("content") if isinstance(self.body, dict) else None


@dataclass
class Failure:
    method: str
    pattern: str
    status: int
    retry_after: float


@dataclass
class Gateway:
    ws: web.WebSocketResponse
    shard: list[int] | None = None
    seq: itertools.count[int] = field(default_factory=lambda: itertools.count(2))


def _rate_limited(status: int, retry_after: float) -> web.Response:
    return _json(
        {"message": "You are being rate limited.", "retry_after": retry_after, "global": False},
        status=status,
        headers={"Via": "1.1 google", "Retry-After": str(retry_after)},
    )


def _fault_response(fault: InjectedFault) -> web.Response:
    if fault.status == 429:
        return _rate_limited(429, fault.retry_after)
    message = _SERVER_ERRORS.get(fault.status, f"{fault.status}: Server Error")
    return _json({"message": message, "code": 0}, status=fault.status)


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


class FakeDiscord:
    """Enter to serve; ``calls`` records every REST request in order."""

    def __init__(self, *, recommended_shards: int = 2):
        self.calls: list[Call] = []
        self.identifies: list[dict[str, Any]] = []
        self.gateways: list[Gateway] = []
        self.guilds: list[dict[str, Any]] = []
        self.recommended_shards = recommended_shards
        self._failures: list[Failure] = []
        self.faults: FaultSource | None = None
        #: Channel messages as shown now, by id (with ``message_reference``, if any).
        self.messages: dict[str, dict[str, Any]] = {}
        #: Each interaction's messages as shown now: token -> message id -> content.
        self.webhook_messages: dict[str, dict[str, str]] = {}
        self._nonces: dict[tuple[str, str], dict[str, Any]] = {}
        self._ids = itertools.count(9000)
        self._runner: web.AppRunner | None = None
        self.port = 0
        #: Attachment bytes served at ``attachment_url(name)``, as Discord's CDN would.
        self.attachments: dict[str, bytes] = {}
        self.stalled_attachments: set[str] = set()
        self.attachment_downloads: list[str] = []
        #: Files posted with messages: path, filename, content_type, data.
        self.uploads: list[dict[str, Any]] = []
        self._closing = asyncio.Event()

    # -- set-up ---------------------------------------------------------------------

    async def __aenter__(self) -> FakeDiscord:
        app = web.Application()
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/attachments/{name}", self._attachment)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._closing.set()
        for gateway in list(self.gateways):
            await gateway.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def attachment_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/attachments/{name}"

    async def _attachment(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.attachment_downloads.append(name)
        if name in self.stalled_attachments:
            await self._closing.wait()
            return web.Response(status=503)
        if name not in self.attachments:
            return web.Response(status=404)
        return web.Response(body=self.attachments[name])

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    def settings(self, **overrides: Any) -> DiscordSettings:
        values: dict[str, Any] = {
            "token": SecretStr("bot-token"),
            "api_base_url": self.api_url,
            "gateway_url": self.gateway_url,
        }
        return DiscordSettings(**(values | overrides))

    def fail_next(
        self, method: str, pattern: str, *, status: int = 429, retry_after: float = 0.3
    ) -> None:
        """Answer the next request matching ``method`` and the regex ``pattern`` with
        ``status`` (a rate limit by default)."""
        self._failures.append(Failure(method, pattern, status, retry_after))

    # -- observing ------------------------------------------------------------------

    def find(self, method: str, pattern: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and re.search(pattern, c.path)]

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 20.0) -> Any:
        """Poll ``predicate`` until it gives something truthy, and return that."""
        async with asyncio.timeout(timeout):
            while not (result := predicate()):
                await asyncio.sleep(0.01)
            return result

    def channel_messages(self, channel: int | str) -> list[dict[str, Any]]:
        """The messages shown in ``channel`` now, oldest first."""
        shown = [m for m in self.messages.values() if m["channel_id"] == str(channel)]
        return sorted(shown, key=lambda m: int(m["id"]))

    def transcript(self, *, channel: int | None = None, token: str | None = None) -> list[str]:
        """The final text of each message of a reply, in order: those posted in
        ``channel``, or those of the interaction with ``token`` (the original first)."""
        if token is not None:
            base = f"/webhooks/{APP_ID}/{token}"
            created = ["@original"] if self.find("PATCH", f"^{base}/messages/@original$") else []
            created += [c.response["id"] for c in self.find("POST", f"^{base}$")]
        else:
            base = f"/channels/{channel}/messages"
            created = [c.response["id"] for c in self.find("POST", f"^{base}$")]
        final: dict[str, str | None] = {}
        for call in self.calls:
            if call.response and call.path.startswith(base) and call.method in ("POST", "PATCH"):
                if call.method == "PATCH" and call.content is None:
                    continue  # buttons added: the text stays
                message_id = call.path.rsplit("/", 1)[1] if call.method == "PATCH" else None
                final[message_id or call.response["id"]] = call.content
        deleted = {c.path.rsplit("/", 1)[1] for c in self.find("DELETE", f"^{base}/")}
        return [final.get(m) or "" for m in created if m not in deleted]

    # -- gateway --------------------------------------------------------------------

    async def dispatch(self, event: str, data: dict[str, Any], *, shard: int | None = None) -> None:
        for gateway in self.gateways:
            if shard is None or (gateway.shard and gateway.shard[0] == shard):
                frame = {"op": 0, "t": event, "s": next(gateway.seq), "d": data}
                await gateway.ws.send_str(json.dumps(frame))
                if shard is None:
                    return

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        gateway = Gateway(ws)
        await ws.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 41250}}))
        async for message in ws:
            if message.type is not WSMsgType.TEXT:
                continue
            frame = json.loads(message.data)
            if frame["op"] == 1:
                await ws.send_str(json.dumps({"op": 11}))
            elif frame["op"] == 2:
                await self._identify(gateway, frame["d"])
        if gateway in self.gateways:
            self.gateways.remove(gateway)
        return ws

    async def _identify(self, gateway: Gateway, identify: dict[str, Any]) -> None:
        self.identifies.append(identify)
        gateway.shard = identify.get("shard")
        ready: dict[str, Any] = {
            "v": 10,
            "user": BOT,
            "guilds": [{"id": g["id"], "unavailable": True} for g in self.guilds],
            "session_id": f"session-{len(self.identifies)}",
            "resume_gateway_url": self.gateway_url,
            "application": {"id": APP_ID, "flags": 0},
        }
        if gateway.shard is not None:
            ready["shard"] = gateway.shard
        await gateway.ws.send_str(json.dumps({"op": 0, "t": "READY", "s": 1, "d": ready}))
        self.gateways.append(gateway)
        for guild in self.guilds:
            frame = {"op": 0, "t": "GUILD_CREATE", "s": next(gateway.seq), "d": guild}
            await gateway.ws.send_str(json.dumps(frame))

    # -- REST -----------------------------------------------------------------------

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        if request.content_type == "multipart/form-data":
            body = await self._multipart(request, path)
        else:
            raw = await request.read()
            body = json.loads(raw) if raw and request.content_type == "application/json" else None
        call = Call(
            request.method, path, dict(request.query), body, asyncio.get_running_loop().time()
        )
        self.calls.append(call)
        for failure in self._failures:
            if failure.method == request.method and re.search(failure.pattern, path):
                self._failures.remove(failure)
                return _rate_limited(failure.status, failure.retry_after)
        fault = None
        if self.faults is not None and request.method != "GET":
            fault = self.faults.decide(f"{request.method} {path}")
        if fault is not None and not fault.applied:
            return _fault_response(fault)
        response = self._answer(request.method, path, body)
        if fault is not None and 200 <= response.status < 300:
            return _fault_response(fault)  # it took effect; the answer is lost
        if isinstance(response, web.Response) and response.body:
            call.response = json.loads(response.body)  # type: ignore[arg-type]
        return response

    async def _multipart(self, request: web.Request, path: str) -> dict[str, Any]:
        """The JSON payload of a message posted with files; the files go to ``uploads``."""
        body: dict[str, Any] = {}
        names: list[str] = []
        async for part in await request.multipart():
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "payload_json":
                body = json.loads(await part.text())
            elif (part.name or "").startswith("files["):
                data = bytes(await part.read())
                upload = {
                    "path": path,
                    "filename": part.filename,
                    "content_type": part.headers.get("Content-Type"),
                    "data": data,
                }
                self.uploads.append(upload)
                names.append(part.filename or "")
        body["_files"] = names
        return body

    def _message(
        self, channel_id: str, content: str, message_id: str | None = None
    ) -> dict[str, Any]:
        return {
            "id": message_id or str(next(self._ids)),
            "channel_id": channel_id,
            "author": BOT,
            "content": content,
            "timestamp": TIMESTAMP,
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

    def _answer(self, method: str, path: str, body: Any) -> web.StreamResponse:
        content = str(body.get("content", "")) if isinstance(body, dict) else ""
        route = f"{method} {path}"
        if route == "GET /users/@me":
            return _json(BOT)
        if route == "GET /oauth2/applications/@me":
            return _json(
                {
                    "id": APP_ID,
                    "name": "PersonaBridge",
                    "description": "",
                    "icon": None,
                    "bot_public": True,
                    "bot_require_code_grant": False,
                    "owner": user(1, "owner"),
                    "verify_key": "00" * 32,
                    "flags": 0,
                }
            )
        if method == "GET" and (match := re.fullmatch(r"/users/(\d+)", path)):
            return _json(user(int(match.group(1)), f"user{match.group(1)}"))
        if route == "POST /users/@me/channels":  # a DM channel, as for user.send()
            recipient = str(body.get("recipient_id", "0")) if isinstance(body, dict) else "0"
            channel_id = str(9_000_000 + int(recipient) % 1_000_000)
            recipients = [user(int(recipient), f"user{recipient}")]
            return _json({"id": channel_id, "type": 1, "recipients": recipients})
        if route == "GET /gateway/bot":
            return _json(
                {
                    "url": self.gateway_url,
                    "shards": self.recommended_shards,
                    "session_start_limit": {
                        "total": 1000,
                        "remaining": 1000,
                        "reset_after": 0,
                        "max_concurrency": 1,
                    },
                }
            )
        if method == "PUT" and re.fullmatch(r"/applications/\d+(/guilds/\d+)?/commands", path):
            guild = re.search(r"/guilds/(\d+)/", path)
            return _json(
                [
                    {
                        "id": str(next(self._ids)),
                        "application_id": APP_ID,
                        "version": "1",
                        "type": 1,
                        **command,
                        **({"guild_id": guild.group(1)} if guild else {}),
                    }
                    for command in body
                ]
            )
        if match := re.fullmatch(r"/interactions/(\d+)/[^/]+/callback", path):
            if body["type"] == 8:  # autocomplete result
                return web.Response(status=204)
            flags = (body.get("data") or {}).get("flags", 0)
            answer: dict[str, Any] = {
                "interaction": {
                    "id": match.group(1),
                    "type": 2,
                    "response_message_loading": body["type"] == 5,
                    "response_message_ephemeral": bool(flags & 64),
                },
                "resource": {"type": body["type"]},
            }
            if body["type"] == 4:
                answer["resource"]["message"] = self._message("1", content)
            return _json(answer)
        if method == "POST" and (match := re.fullmatch(r"/webhooks/\d+/([^/]+)", path)):
            posted = self._message("1", content) | {"webhook_id": APP_ID}
            posted["attachments"] = _attachments(body)
            shown = content or " ".join(f"[{a['filename']}]" for a in posted["attachments"])
            self.webhook_messages.setdefault(match.group(1), {})[posted["id"]] = shown
            return _json(posted)
        if method == "PATCH" and (
            match := re.fullmatch(r"/webhooks/\d+/([^/]+)/messages/(.+)", path)
        ):
            token, message_id = match.groups()
            shown = self.webhook_messages.setdefault(token, {})
            if isinstance(body, dict) and "content" not in body:  # components only
                content = shown.get(message_id, "")
            # The original comes first, whenever it is first filled in.
            if message_id == "@original" and message_id not in shown:
                self.webhook_messages[token] = shown = {"@original": content, **shown}
            shown[message_id] = content
            message_id = "8000" if message_id == "@original" else message_id
            return _json(self._message("1", content, message_id) | {"webhook_id": APP_ID})
        if method == "DELETE" and (
            match := re.fullmatch(r"/(channels|webhooks)/(.+)/messages/(\d+)", path)
        ):
            kind, where, message_id = match.groups()
            if kind == "channels":
                self.messages.pop(message_id, None)
            else:
                self.webhook_messages.get(where.rsplit("/", 1)[-1], {}).pop(message_id, None)
            return web.Response(status=204)
        if method == "POST" and re.fullmatch(r"/channels/\d+/typing", path):
            return web.Response(status=204)
        if method == "POST" and (match := re.fullmatch(r"/channels/(\d+)/messages", path)):
            return _json(self._post_in_channel(match.group(1), body or {}))
        if method == "PATCH" and (match := re.fullmatch(r"/channels/(\d+)/messages/(\d+)", path)):
            if isinstance(body, dict) and "content" not in body and match.group(2) in self.messages:
                content = self.messages[match.group(2)]["content"]  # components only
            edited = self._message(match.group(1), content, match.group(2))
            if match.group(2) in self.messages:
                self.messages[match.group(2)]["content"] = content
                edited = dict(self.messages[match.group(2)])
            return _json(edited)
        return _json({"message": f"no fake for {route}", "code": 0}, status=404)

    def _post_in_channel(self, channel_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """A new channel message; with ``enforce_nonce``, the one already made with
        the same nonce, if any (Discord's de-duplication of a repeated send)."""
        nonce = body.get("nonce")
        if nonce is not None and body.get("enforce_nonce"):
            earlier = self._nonces.get((channel_id, str(nonce)))
            if earlier is not None:
                return dict(earlier)
        posted = self._message(channel_id, str(body.get("content", "")))
        posted["attachments"] = _attachments(body)
        if body.get("message_reference"):
            posted["message_reference"] = body["message_reference"]
        if nonce is not None:
            posted["nonce"] = str(nonce)
            self._nonces[(channel_id, str(nonce))] = posted
        self.messages[posted["id"]] = posted
        return dict(posted)


def _attachments(body: Any) -> list[dict[str, Any]]:
    """The attachments of a message posted with files (names from the upload)."""
    names = body.get("_files", []) if isinstance(body, dict) else []
    return [
        {
            "id": str(9500 + index),
            "filename": name,
            "size": 0,
            "url": f"https://cdn.example/{name}",
            "proxy_url": f"https://cdn.example/{name}",
        }
        for index, name in enumerate(names)
    ]
