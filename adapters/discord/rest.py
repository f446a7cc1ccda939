"""Interaction follow-ups over Discord's REST API, for HTTP interactions.

An interaction received over HTTP is answered through its webhook: ``PATCH
/webhooks/{application id}/{token}/messages/@original`` fills in the deferred reply,
``POST /webhooks/{application id}/{token}`` adds a follow-up. The interaction token is
the credential (no bot token needed; valid for 15 minutes), so any web worker can do
this without a gateway connection. 429s are waited out (``retry_after`` from the body,
else the ``Retry-After`` header) and 5xx retried, a few times.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp

from adapters.discord.buttons import components
from adapters.discord.errors import DiscordAPIError
from bot.backoff import Backoff
from bot.messages import Action

log = logging.getLogger(__name__)

EPHEMERAL_FLAG = 1 << 6
NO_MENTIONS: dict[str, Any] = {"parse": []}
#: A 429 asking for a longer wait than this is not waited out.
MAX_RETRY_AFTER = 60.0
#: The pause before trying again after a 5xx or no answer.
RETRY_PAUSE = Backoff(0.5, cap=8.0)


class InteractionWebhooks:
    """Posts and edits the messages of interactions, by application id and token."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, *, attempts: int = 5):
        self._session = session
        self._base = base_url.rstrip("/")
        self._attempts = attempts

    async def edit_original(self, app_id: str, token: str, content: str) -> None:
        await self._request("PATCH", f"/webhooks/{app_id}/{token}/messages/@original", content)

    async def set_buttons(
        self, app_id: str, token: str, message_id: str, actions: tuple[Action, ...]
    ) -> None:
        """Put ``actions`` as buttons under a message of the interaction."""
        await self._request(
            "PATCH",
            f"/webhooks/{app_id}/{token}/messages/{message_id}",
            extra={"components": components(actions)},
        )

    async def send_followup(
        self, app_id: str, token: str, content: str, *, ephemeral: bool = False
    ) -> str:
        """Post a follow-up; returns its message id."""
        flags = EPHEMERAL_FLAG if ephemeral else 0
        data = await self._request(
            "POST", f"/webhooks/{app_id}/{token}", content, flags=flags, params={"wait": "true"}
        )
        if not isinstance(data, dict) or "id" not in data:
            raise DiscordAPIError(200, "a follow-up came back without an id")
        return str(data["id"])

    async def send_file(
        self,
        app_id: str,
        token: str,
        filename: str,
        data: bytes,
        content_type: str,
        *,
        ephemeral: bool = False,
    ) -> None:
        """Post a follow-up that is one file (a reply read aloud), tried once: it
        follows a text that has arrived already."""
        payload: dict[str, Any] = {
            "allowed_mentions": NO_MENTIONS,
            "attachments": [{"id": 0, "filename": filename}],
        }
        if ephemeral:
            payload["flags"] = EPHEMERAL_FLAG
        form = aiohttp.FormData()
        form.add_field("payload_json", json.dumps(payload), content_type="application/json")
        form.add_field("files[0]", data, filename=filename, content_type=content_type)
        try:
            async with self._session.post(
                f"{self._base}/webhooks/{app_id}/{token}", data=form
            ) as response:
                body = await response.read()
                if not 200 <= response.status < 300:
                    raise DiscordAPIError(response.status, _message(body))
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DiscordAPIError(0, type(exc).__name__) from exc

    async def edit_followup(self, app_id: str, token: str, message_id: str, content: str) -> None:
        await self._request("PATCH", f"/webhooks/{app_id}/{token}/messages/{message_id}", content)

    async def delete_followup(self, app_id: str, token: str, message_id: str) -> None:
        await self._request("DELETE", f"/webhooks/{app_id}/{token}/messages/{message_id}")

    async def _request(
        self,
        method: str,
        path: str,
        content: str | None = None,
        *,
        flags: int = 0,
        params: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Any:
        payload: dict[str, Any] | None = None
        if content is not None:
            payload = {"content": content, "allowed_mentions": NO_MENTIONS}
        if flags and payload is not None:
            payload["flags"] = flags
        if extra:
            payload = {**(payload or {}), **extra}
        status = 0
        for attempt in range(self._attempts):
            try:
                async with self._session.request(
                    method, self._base + path, json=payload, params=params
                ) as response:
                    body = await response.read()
                    status = response.status
                    if 200 <= status < 300:
                        return json.loads(body) if body else None
                    if status == 429:
                        await asyncio.sleep(_retry_after(body, response.headers))
                        continue
                    if status < 500:
                        raise DiscordAPIError(status, _message(body))
            except (aiohttp.ClientError, TimeoutError) as exc:
                if attempt + 1 == self._attempts:
                    raise DiscordAPIError(0, type(exc).__name__) from exc
            # 5xx, or no answer: back off and try again (not after the last attempt)
            if attempt + 1 < self._attempts:
                await asyncio.sleep(RETRY_PAUSE.delay(attempt + 1))
        raise DiscordAPIError(status, "gave up after retries")


def _retry_after(body: bytes, headers: Any) -> float:
    wait: Any = None
    try:
        data = json.loads(body)
        wait = data.get("retry_after") if isinstance(data, dict) else None
    except ValueError:
        pass
    if wait is None:
        wait = headers.get("Retry-After", 1.0)
    try:
        seconds = max(float(wait), 0.0)
    except (TypeError, ValueError):
        seconds = 1.0
    if seconds > MAX_RETRY_AFTER:
        raise DiscordAPIError(429, f"rate limited for {seconds:.0f} s")
    log.warning("discord: interaction webhook rate limited; retrying in %.2f s", seconds)
    return seconds


def _message(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    return str(data.get("message", "")) if isinstance(data, dict) else ""


class WebhookSlots:
    """The reply to an HTTP interaction, as :class:`~adapters.discord.streaming.ReplySlots`:
    the first piece fills in the deferred response, further pieces are follow-ups."""

    def __init__(self, webhooks: InteractionWebhooks, app_id: str, token: str, *, ephemeral: bool):
        self._webhooks = webhooks
        self._app_id = app_id
        self._token = token
        self._ephemeral = ephemeral
        self._followups: list[str] = []

    async def show(self, index: int, text: str) -> None:
        if index == 0:
            await self._webhooks.edit_original(self._app_id, self._token, text)
        elif index <= len(self._followups):
            message_id = self._followups[index - 1]
            await self._webhooks.edit_followup(self._app_id, self._token, message_id, text)
        else:
            self._followups.append(
                await self._webhooks.send_followup(
                    self._app_id, self._token, text, ephemeral=self._ephemeral
                )
            )

    async def remove(self, index: int) -> None:
        message_id = self._followups.pop(index - 1)
        await self._webhooks.delete_followup(self._app_id, self._token, message_id)

    async def offer(self, index: int, actions: tuple[Action, ...]) -> None:
        message_id = "@original" if index == 0 else self._followups[index - 1]
        await self._webhooks.set_buttons(self._app_id, self._token, message_id, actions)
