"""The web chat: the page, and sending a message with the reply streamed back.

``POST /chat/send`` answers our script (``Accept: text/event-stream``) with the
reply as Server-Sent Events over the response of that POST (read with ``fetch``, since
``EventSource`` can only GET): ``delta`` events with text as it is written, then one
``done`` event, then, for an account that turned ``/voice on``, a ``voice`` event with
the URL of the reply read aloud (:mod:`.routes_voice`). A plain form post (no
JavaScript) waits for the whole reply and goes back to ``/chat``, where the reply now
is in the history.

``POST /chat/attach`` (our script only: multipart with ``text`` and one ``file``, the
CSRF token in its header) sends a file with the message, answered the same way. The
file is read as it streams in and refused past ``MEDIA__MAX_BYTES``; what it is, the
engine decides from its bytes.

The web chat is the account's ``direct`` conversation: the same one its linked private
chats on Discord and Telegram continue. Reset and retry are the ``/reset`` and
``/retry`` commands, sent like any message.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing, suppress
from typing import Any

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from adapters.web.forms import read_form, see_other, streams_body
from adapters.web.keys import ENGINE, OPTIONS, REPLY_TASKS
from adapters.web.middleware import add_security_headers
from adapters.web.redirects import login_url
from adapters.web.render import render
from adapters.web.replies import json_error, wants_json
from adapters.web.routes_avatar import avatar_url
from adapters.web.routes_voice import voice_link
from adapters.web.session import current_account, require_account
from bot.errors import MediaRefused, StoreError
from bot.messages import (
    DIRECT_SCOPE,
    Incoming,
    IncomingFile,
    ReplyDone,
    ReplyEvent,
    ReplyKind,
    TextDelta,
    account_owner,
    clean_text,
    too_long_refusal,
)
from bot.store.base import Account

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

PLATFORM = "web"
STREAM_FAILED = "Something went wrong while answering. Your message is saved: try Retry."


@routes.get("/chat", name="chat")
async def chat_page(request: web.Request) -> web.Response:
    return await _page(request, await require_account(request))


async def _page(
    request: web.Request, account: Account, *, draft: str = "", notice: str = "", status: int = 200
) -> web.Response:
    """The chat page; ``draft`` goes back into the composer (a message held back)."""
    engine = request.app[ENGINE]
    owner = account_owner(account.id)
    # an empty conversation starts with the greeting shown here, stored as its first turn
    persona, turns = await engine.open_conversation(owner, DIRECT_SCOPE, account.username)
    user_name = (await engine.user_persona(owner)).name or account.username
    greeting = f"Hello, I am {persona.name}."  # shown when the persona has no greeting
    missing = (await engine.resolve(incoming_for(account, ""))).missing_persona
    if missing and not notice:
        notice = (
            f"The persona {missing!r} you chose is no longer here, so you are talking to "
            f"{persona.name}. Choose another below if you like."
        )
    return await render(
        request,
        "chat.html",
        persona=persona,
        personas=list(engine.personas),
        turns=turns,
        greeting=greeting,
        avatar=avatar_url(persona),
        user_name=user_name,
        max_chars=request.app[OPTIONS].chat_max_chars,
        draft=draft,
        notice=notice,
        status=status,
    )


def incoming_for(account: Account, text: str) -> Incoming:
    """The web speaks for the logged-in account: the engine needs no identity lookup."""
    return Incoming(
        platform=PLATFORM,
        user_id=account.id,
        display_name=account.username,
        chat_id=account.id,
        private=True,
        text=text,
        account_id=account.id,
    )


@routes.post("/chat/send")
async def send(request: web.Request) -> web.StreamResponse:
    script = wants_json(request)
    account = await current_account(request)
    if account is None:
        if script:
            return json_error(401, "Your session has expired.", login=login_url("/chat"))
        raise web.HTTPSeeOther(login_url("/chat"))
    text, problem = await _message_text(request)
    if problem is not None:
        if script:
            return json_error(400, problem)
        return see_other("/chat")
    engine, tasks = request.app[ENGINE], request.app[REPLY_TASKS]
    if not script:
        done = await tasks.complete(engine, incoming_for(account, text))
        if done is not None and done.kind is ReplyKind.RATE_LIMITED:
            # Without the script too, a message held back is not lost: it is put back.
            return await _page(request, account, draft=text, notice=done.text, status=429)
        return see_other("/chat")
    incoming = incoming_for(account, text)
    return await _stream(request, tasks.stream(engine, incoming), incoming)


async def _message_text(request: web.Request) -> tuple[str, str | None]:
    if request.content_type == "application/json":
        try:
            body: Any = await request.json()
        except (ValueError, RecursionError):  # RecursionError: nested too deep
            return "", "The message is not valid JSON."
        value = body.get("text") if isinstance(body, dict) else None
    else:
        value = (await read_form(request)).get("text")
    if not isinstance(value, str) or not value.strip():
        return "", "Write a message first."
    limit = request.app[OPTIONS].chat_max_chars
    if len(value) > limit:
        return "", too_long_refusal(limit)
    return clean_text(value.strip()), None


@routes.post("/chat/attach")
@streams_body
async def attach(request: web.Request) -> web.StreamResponse:
    account = await current_account(request)
    if account is None:
        return json_error(401, "Your session has expired.", login=login_url("/chat"))
    engine, tasks = request.app[ENGINE], request.app[REPLY_TASKS]
    upload = await _read_upload(request, engine.media.settings.max_bytes)
    if isinstance(upload, str):
        return json_error(400, upload)
    text, file = upload
    incoming = dataclasses.replace(incoming_for(account, text), files=(file,))
    return await _stream(request, tasks.stream(engine, incoming), incoming)


async def _read_upload(request: web.Request, max_bytes: int) -> tuple[str, IncomingFile] | str:
    """The text and the file of an attach request, or what is wrong with it. Each part
    is read chunk by chunk and given up past its limit (the app's body limit does not
    apply to a streamed multipart body)."""
    if request.content_type != "multipart/form-data":
        return "Send the file as multipart/form-data."
    limit = request.app[OPTIONS].chat_max_chars
    text, file = "", None
    try:
        async for part in await request.multipart():
            if not isinstance(part, BodyPartReader):
                return "The form is not readable."
            if part.name == "text":
                data = await _read_part(part, limit * 4)  # UTF-8: at most 4 bytes a character
                text = data.decode() if data is not None else "x" * (limit + 1)
            elif part.name == "file" and file is None:
                name = clean_text(part.filename or "file")[:200]
                data = await _read_part(part, max_bytes)
                if data is None:
                    return f"{MediaRefused.too_large(name, max_bytes)}."
                file = IncomingFile.of_bytes(name, data, part.headers.get("Content-Type", ""))
    except (ValueError, HttpProcessingError):  # UnicodeDecodeError is a ValueError
        return "The form is not readable."
    if file is None:
        return "Choose a file first."
    if len(text) > limit:
        return too_long_refusal(limit)
    return clean_text(text.strip()), file


async def _read_part(part: BodyPartReader, max_bytes: int) -> bytes | None:
    """A part's bytes, or None when it has more than ``max_bytes``."""
    data = bytearray()
    while chunk := await part.read_chunk():
        data += chunk
        if len(data) > max_bytes:
            return None
    return bytes(data)


async def _offer_voice(
    request: web.Request,
    incoming: Incoming,
    done: ReplyDone,
    emit: Callable[[str, dict[str, Any]], Awaitable[None]],
) -> None:
    """After the text, for an account that asked for it: the player's URL of the reply
    read aloud (a failure here only costs the player, never the reply)."""
    try:
        link = await voice_link(request, incoming, done)
    except StoreError as exc:
        log.warning("could not offer a reply read aloud: %s", exc)
        return
    if link:
        await emit("voice", {"url": link})


def sse(event: str, data: dict[str, Any]) -> bytes:
    """One Server-Sent Event; JSON keeps the data on one line whatever the text holds."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


async def _stream(
    request: web.Request, events: AsyncGenerator[ReplyEvent, None], incoming: Incoming
) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
    response.content_type = "text/event-stream"
    response.charset = "utf-8"
    add_security_headers(request, response.headers)
    await response.prepare(request)
    connected = True

    async def emit(event: str, data: dict[str, Any]) -> None:
        nonlocal connected
        try:
            await response.write(sse(event, data))
        except ConnectionError:
            connected = False  # the browser went away; the reply completes regardless

    finished: ReplyDone | None = None
    try:
        async with aclosing(events):
            async for event in events:
                if isinstance(event, TextDelta):
                    await emit("delta", {"text": event.text})
                else:
                    finished = event
                    done: dict[str, Any] = {"text": event.shown, "kind": str(event.kind)}
                    if event.retry_after is not None:  # rate limited: when to send again
                        done["retry_after"] = event.retry_after
                    await emit("done", {**done, "persona": event.persona_name})
                if not connected:
                    return response
    except Exception:
        # Headers are sent: the error middleware can no longer answer, so say it here.
        # (The reply task has logged the failure.)
        await emit("error", {"text": STREAM_FAILED})
        finished = None
    if finished is not None and connected:
        await _offer_voice(request, incoming, finished, emit)
    with suppress(ConnectionError):
        await response.write_eof()
    return response
