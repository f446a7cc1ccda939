"""A fake Telegram Bot API server on 127.0.0.1, for driving the real PTB over HTTP.

It records every call, keeps each chat as a user would see it (messages by id, with
their latest text), long-polls ``getUpdates`` from a queue the test fills, and behaves
like Telegram where the adapter depends on it: HTML is parsed as Telegram would
(unknown or unbalanced tags and bare ``&`` are refused with "can't parse entities"),
the 4096-character limit is enforced on the visible text, and errors can be scripted
(429 with ``retry_after``, 403 for a chat that blocked the bot, refused HTML).

Files a test puts in ``files`` (by file id) are served as Telegram does: ``getFile``
gives their ``file_path`` and size, ``GET /file/bot<TOKEN>/<file_path>`` their bytes;
a file id in ``stalled_files`` is announced, but its download never answers.

``sendVoice`` and ``sendAudio`` take their file as a multipart upload, as PTB sends it;
each upload is kept in ``voices`` (method, chat, file name, content type, bytes) and
the chat shows it as a message whose text is ``[voice]``.

``faults`` (a :class:`FaultSource`, such as ``tests/reliability/platform_faults.FaultPlan``)
makes a share of the calls (asked by the key ``method:chat_id``) fail: 429 with
``retry_after``, or a 5xx, answered before the call took effect or, when the fault says
``applied``, after it did (the answer was lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

from aiohttp import web
from aiohttp.web_request import FileField

from tests.support.fakes import FaultSource, InjectedFault

TOKEN = "1000:TEST-token_abc"
BOT = {
    "id": 1000,
    "is_bot": True,
    "first_name": "Persona",
    "username": "persona_bot",
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}
# PTB posts form-encoded data; these parameters are JSON strings.
_JSON_PARAMS = frozenset(
    {"reply_parameters", "link_preview_options", "commands", "allowed_updates", "reply_markup"}
)
_ALLOWED_TAGS = frozenset(
    {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre"}
    | {"tg-spoiler", "span", "blockquote", "tg-emoji"}
)
_BARE_AMPERSAND = re.compile(r"&(?!(?:lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);)")
LIMIT = 4096


class EntityError(ValueError):
    pass


class _TelegramHtml(HTMLParser):
    """Telegram's HTML mode: a few tags, properly nested; text otherwise."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _ALLOWED_TAGS:
            raise EntityError(f'Unsupported start tag "{tag}"')
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            raise EntityError(f'Unmatched end tag "{tag}"')
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def visible_text(text: str, parse_mode: str | None) -> str:
    """What the user sees of ``text``; EntityError when Telegram would refuse it."""
    if parse_mode is None:
        return text
    assert parse_mode == "HTML", parse_mode
    if _BARE_AMPERSAND.search(text):
        raise EntityError("Unsupported character entity or bare &")
    parser = _TelegramHtml()
    parser.feed(text)
    parser.close()
    if parser.stack:
        raise EntityError(f'Can\'t find end tag corresponding to start tag "{parser.stack[-1]}"')
    return "".join(parser.parts)


def tg_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    at: float
    status: int = 200

    @property
    def chat_id(self) -> int | None:
        value = self.params.get("chat_id")
        return int(value) if value is not None else None

    @property
    def text(self) -> str:
        return str(self.params.get("text", ""))


@dataclass
class Shown:
    """A message as the chat shows it now."""

    message_id: int
    text: str  # visible text
    raw: str  # as sent (HTML source when parse_mode is HTML)
    parse_mode: str | None
    reply_to: int | None
    thread_id: int | None
    edits: int = 0
    #: The labels and callback data of its inline keyboard, row by row.
    buttons: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Failure:
    method: str
    code: int
    description: str
    retry_after: int | None
    chat_id: int | None
    times: int
    when: Callable[[Call], bool] | None = None


_SERVER_ERRORS = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
#: Calls a FaultSource is asked about: the bot's writes (not polling, not start-up).
_FAULTABLE = frozenset({"sendMessage", "editMessageText", "sendChatAction", "deleteMessage"})


@dataclass
class FakeBotApi:
    """The server. ``async with FakeBotApi() as fake:`` then point PTB at ``fake.url``."""

    token: str = TOKEN
    bot: dict[str, Any] = field(default_factory=lambda: dict(BOT))
    #: Longest a getUpdates call is held when there is nothing to return.
    poll_cap: float = 0.5
    calls: list[Call] = field(default_factory=list)
    #: The Content-Type of each call's body, in order.
    encodings: list[str] = field(default_factory=list)
    chats: dict[int, dict[int, Shown]] = field(default_factory=dict)
    blocked: set[int] = field(default_factory=set)
    refuse_html: bool = False
    webhook: dict[str, Any] = field(default_factory=dict)
    url: str = ""
    faults: FaultSource | None = None
    #: The port to listen on (0: any free one).
    port: int = 0
    files: dict[str, bytes] = field(default_factory=dict)
    stalled_files: set[str] = field(default_factory=set)
    downloads: list[str] = field(default_factory=list)
    voices: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._updates: list[dict[str, Any]] = []
        self._next_update_id = 1
        self._next_message_id = 1
        self._failures: list[Failure] = []
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._closing = False

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> FakeBotApi:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._handle)
        app.router.add_get("/file/bot{token}/files/{file_id}", self._download)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._closing = True  # a getUpdates still held must not delay the shutdown
        await self._notify()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- scripting ---------------------------------------------------------------------

    def fail(
        self,
        method: str,
        *,
        code: int = 429,
        description: str | None = None,
        retry_after: int | None = None,
        chat_id: int | None = None,
        times: int = 1,
        when: Callable[[Call], bool] | None = None,
    ) -> None:
        """The next ``times`` calls of ``method`` (to ``chat_id``, and for which
        ``when(call)`` holds, if given) fail."""
        if description is None:
            description = {
                429: f"Too Many Requests: retry after {retry_after}",
                403: "Forbidden: bot was blocked by the user",
            }.get(code, "Bad Request: scripted failure")
        self._failures.append(Failure(method, code, description, retry_after, chat_id, times, when))

    def clear_failures(self) -> None:
        """Forget the scripted failures not used up yet."""
        self._failures.clear()

    async def push_update(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue an update for getUpdates (an update_id is assigned, if it has none)."""
        update = {"update_id": self.new_update_id(), **update}
        self._updates.append(update)
        await self._notify()
        return update

    def new_update_id(self) -> int:
        self._next_update_id += 1
        return self._next_update_id - 1

    # -- reading -----------------------------------------------------------------------

    def calls_to(self, method: str, chat_id: int | None = None) -> list[Call]:
        return [
            c
            for c in self.calls
            if c.method == method and (chat_id is None or c.chat_id == chat_id)
        ]

    def writes(self, chat_id: int) -> list[Call]:
        """Successful sendMessage and editMessageText calls to the chat, in order."""
        return [
            c
            for c in self.calls
            if c.method in ("sendMessage", "editMessageText")
            and c.chat_id == chat_id
            and c.status == 200
        ]

    def transcript(self, chat_id: int) -> list[str]:
        """The chat's messages from the bot as shown now, oldest first."""
        shown = self.chats.get(chat_id, {})
        return [shown[k].text for k in sorted(shown)]

    def shown(self, chat_id: int) -> list[Shown]:
        shown = self.chats.get(chat_id, {})
        return [shown[k] for k in sorted(shown)]

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 20.0) -> None:
        """Until ``condition()`` holds (checked after every call), or AssertionError."""
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(condition), timeout)
            except TimeoutError:
                raise AssertionError(f"condition not met within {timeout} s") from None

    async def wait_for_text(self, chat_id: int, needle: str, timeout: float = 5.0) -> str:
        """Until a message of the chat shows ``needle`` with the reply complete (no
        cursor); returns that message's text."""

        def found() -> bool:
            return any(needle in t and not t.endswith(" …") for t in self.transcript(chat_id))

        await self.wait_for(found, timeout)
        return next(t for t in self.transcript(chat_id) if needle in t)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- the API -----------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        method = request.match_info["method"]
        # Telegram takes a method's parameters as a form, multipart or a JSON object
        form: Mapping[str, Any]
        if request.content_type == "application/json":
            form = await request.json()
        else:
            form = await request.post()
        self.encodings.append(request.content_type)
        params: dict[str, Any] = {}
        for key, value in form.items():
            if isinstance(value, FileField):
                assert method in ("sendVoice", "sendAudio"), f"{method}: {key} is a file"
                params[key] = {
                    "filename": value.filename,
                    "content_type": value.content_type,
                    "data": value.file.read(),
                }
                continue
            params[key] = json.loads(value) if key in _JSON_PARAMS else value
        call = Call(method, params, time.monotonic())
        self.calls.append(call)
        try:
            response = await self._answer(call)
        finally:
            await self._notify()
        call.status = response.status
        return response

    async def _answer(self, call: Call) -> web.Response:
        failure = self._scripted_failure(call)
        if failure is not None:
            parameters = {"retry_after": failure.retry_after} if failure.retry_after else None
            return _error(failure.code, failure.description, parameters)
        fault = None
        if self.faults is not None and call.method in _FAULTABLE:
            fault = self.faults.decide(f"{call.method}:{call.chat_id}")
        if fault is not None and not fault.applied:
            return _fault_response(fault)
        handler = getattr(self, f"_api_{call.method}", None)
        if handler is None:
            return _ok(True)
        result = handler(call)
        if asyncio.iscoroutine(result):
            result = await result
        response = result if isinstance(result, web.Response) else _ok(result)
        if fault is not None and response.status == 200:
            return _fault_response(fault)  # it took effect; the answer is lost
        return response

    def _scripted_failure(self, call: Call) -> Failure | None:
        writes = ("sendMessage", "editMessageText", "sendChatAction")
        if call.method in writes and call.chat_id in self.blocked:
            return Failure(
                call.method, 403, "Forbidden: bot was blocked by the user", None, None, 1
            )
        for failure in self._failures:
            if (
                failure.method == call.method
                and failure.chat_id in (None, call.chat_id)
                and (failure.when is None or failure.when(call))
            ):
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.remove(failure)
                return failure
        return None

    def _api_getFile(self, call: Call) -> Any:
        file_id = str(call.params.get("file_id"))
        if file_id not in self.files:
            return _error(400, "Bad Request: invalid file_id")
        return {
            "file_id": file_id,
            "file_unique_id": f"u-{file_id}",
            "file_size": len(self.files[file_id]),
            "file_path": f"files/{file_id}",
        }

    async def _download(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.Response(status=401)
        file_id = request.match_info["file_id"]
        self.downloads.append(file_id)
        if file_id in self.stalled_files:
            async with self._changed:
                await self._changed.wait_for(lambda: self._closing)
            return web.Response(status=503)
        if file_id not in self.files:
            return web.Response(status=404)
        return web.Response(body=self.files[file_id])

    def _api_getMe(self, call: Call) -> Any:
        return self.bot

    def _api_setWebhook(self, call: Call) -> Any:
        self.webhook = dict(call.params)
        return True

    def _api_deleteWebhook(self, call: Call) -> Any:
        self.webhook = {}
        return True

    async def _api_getUpdates(self, call: Call) -> Any:
        offset = int(call.params.get("offset", 0) or 0)
        self._updates = [u for u in self._updates if u["update_id"] >= offset]
        wait = min(float(call.params.get("timeout", 0) or 0), self.poll_cap)
        if not self._updates and wait > 0:
            async with self._changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._changed.wait_for(lambda: bool(self._updates) or self._closing),
                        wait,
                    )
        limit = int(call.params.get("limit", 100) or 100)
        return self._updates[:limit]

    def _api_sendMessage(self, call: Call) -> Any:
        chat_id = int(call.params["chat_id"])
        checked = self._check_text(call)
        if isinstance(checked, web.Response):
            return checked
        message_id = self._next_message_id
        self._next_message_id += 1
        reply = call.params.get("reply_parameters") or {}
        thread = call.params.get("message_thread_id")
        self.chats.setdefault(chat_id, {})[message_id] = Shown(
            message_id,
            checked,
            call.text,
            call.params.get("parse_mode"),
            reply.get("message_id"),
            int(thread) if thread else None,
            buttons=_buttons(call.params.get("reply_markup")),
        )
        return self._message(chat_id, message_id, checked)

    def _api_sendVoice(self, call: Call) -> Any:
        chat_id = int(call.params["chat_id"])
        kind = "voice" if call.method == "sendVoice" else "audio"
        upload = call.params.get(kind)
        assert isinstance(upload, dict), f"{call.method} without an uploaded file"
        thread = call.params.get("message_thread_id")
        self.voices.append({"method": call.method, "chat_id": chat_id, **upload})
        message_id = self._next_message_id
        self._next_message_id += 1
        reply = call.params.get("reply_parameters") or {}
        self.chats.setdefault(chat_id, {})[message_id] = Shown(
            message_id,
            f"[{kind}]",
            "",
            None,
            reply.get("message_id"),
            int(thread) if thread else None,
        )
        body = {**self._message(chat_id, message_id, ""), kind: _voice_file(message_id)}
        del body["text"]
        return body

    _api_sendAudio = _api_sendVoice

    def _api_editMessageReplyMarkup(self, call: Call) -> Any:
        shown = self.chats.get(int(call.params["chat_id"]), {}).get(int(call.params["message_id"]))
        if shown is None:
            return _error(400, "Bad Request: message to edit not found")
        shown.buttons = _buttons(call.params.get("reply_markup"))
        return self._message(int(call.params["chat_id"]), shown.message_id, shown.text)

    def _api_editMessageText(self, call: Call) -> Any:
        chat_id = int(call.params["chat_id"])
        message_id = int(call.params["message_id"])
        shown = self.chats.get(chat_id, {}).get(message_id)
        if shown is None:
            return _error(400, "Bad Request: message to edit not found")
        checked = self._check_text(call)
        if isinstance(checked, web.Response):
            return checked
        if checked == shown.text and call.text == shown.raw:
            return _error(
                400,
                "Bad Request: message is not modified: specified new message "
                "content and reply markup are exactly the same",
            )
        shown.text, shown.raw, shown.parse_mode = checked, call.text, call.params.get("parse_mode")
        shown.buttons = _buttons(call.params.get("reply_markup"))
        shown.edits += 1
        return self._message(chat_id, message_id, checked)

    def _api_deleteMessage(self, call: Call) -> Any:
        chat = self.chats.get(int(call.params["chat_id"]), {})
        return chat.pop(int(call.params["message_id"]), None) is not None

    def _check_text(self, call: Call) -> str | web.Response:
        parse_mode = call.params.get("parse_mode")
        if parse_mode and self.refuse_html:
            return _error(400, "Bad Request: can't parse entities: unsupported start tag")
        try:
            text = visible_text(call.text, parse_mode)
        except EntityError as exc:
            return _error(400, f"Bad Request: can't parse entities: {exc}")
        if not text.strip():
            return _error(400, "Bad Request: message text is empty")
        if tg_len(text) > LIMIT:
            return _error(400, "Bad Request: message is too long")
        return text

    def _message(self, chat_id: int, message_id: int, text: str) -> dict[str, Any]:
        chat_type = "private" if chat_id > 0 else "supergroup"
        chat: dict[str, Any] = {"id": chat_id, "type": chat_type}
        if chat_type != "private":
            chat["title"] = "Group"
        return {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": chat,
            "from": self.bot,
            "text": text,
        }


def _voice_file(message_id: int) -> dict[str, Any]:
    return {"file_id": f"voice{message_id}", "file_unique_id": f"vu{message_id}", "duration": 1}


def _buttons(markup: Any) -> list[tuple[str, str]]:
    """An inline keyboard's buttons as ``(label, callback data)``, row by row."""
    if not isinstance(markup, dict):
        return []
    rows = markup.get("inline_keyboard") or []
    return [(str(b["text"]), str(b.get("callback_data", ""))) for row in rows for b in row]


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _fault_response(fault: InjectedFault) -> web.Response:
    if fault.status == 429:
        # Telegram's retry_after is whole seconds; 0 is passed on as it is.
        wait = int(fault.retry_after)
        return _error(429, f"Too Many Requests: retry after {wait}", {"retry_after": wait})
    return _error(fault.status, _SERVER_ERRORS.get(fault.status, "Server Error"))


def _error(code: int, description: str, parameters: dict[str, Any] | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=code)
