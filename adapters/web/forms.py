"""Reading what a browser posted, and who posted it."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import TypeVar

from aiohttp import web
from aiohttp.http import HttpProcessingError
from multidict import MultiDictProxy

from bot.messages import clean_text

#: Fixed messages shown after a redirect (``?done=key``): never text from the URL.
NOTICES = {
    "logged_out": "You are logged out.",
    "deleted": "Your account and everything in it have been deleted.",
    "unlinked": "The identity is unlinked. It chats as a guest again; your history stays here.",
    "not_linked": "That identity is not linked to your account.",
    "persona": "Your persona is saved. It follows you on every linked platform.",
    "me": "Saved: this is who you are to every persona, on every linked platform.",
    "welcome": "Welcome! Your account is ready.",
    "password_changed": "Your password is changed. Every other browser is logged out.",
    "logged_out_elsewhere": "Every other browser and device is logged out.",
}
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
F = TypeVar("F", bound=Callable[..., object])


def notice(request: web.Request) -> str | None:
    return NOTICES.get(request.query.get("done", ""))


#: Set on a handler that reads its own (multipart) body as a stream, under its own
#: limit: :func:`check_body` leaves that body alone (parsing it whole would apply the
#: app's small body limit and spool the files).
STREAMS_BODY_ATTR = "_personabridge_streams_body"


def streams_body(handler: F) -> F:
    setattr(handler, STREAMS_BODY_ATTR, True)
    return handler


async def check_body(request: web.Request) -> None:
    """Refuse a body that cannot be read as what it says it is, before anything reads it.

    aiohttp raises ``LookupError``, ``UnicodeDecodeError`` or ``ValueError`` from
    ``request.post()`` for an unknown charset, bytes that are not in the declared
    charset or a broken multipart body: those are the client's mistakes (415 and 400),
    not ours (500). A form body is parsed here once; aiohttp keeps the result, so the
    CSRF check and the handler read it again for free.
    """
    if request.method not in web.Request.POST_METHODS:
        return  # (an empty body is checked too: an empty multipart body is no form)
    if getattr(request.match_info.handler, STREAMS_BODY_ATTR, False):
        return
    charset = request.charset
    if charset is not None and not _is_text_encoding(charset):
        raise web.HTTPUnsupportedMediaType(reason="unknown charset")
    # aiohttp reads a body with an empty Content-Type as a url-encoded form, too.
    if request.content_type in (*FORM_TYPES, ""):
        await read_form(request)


def _is_text_encoding(charset: str) -> bool:
    try:
        "".encode(charset)
        b"".decode(charset)
    except (LookupError, UnicodeError):  # unknown, or a bytes-to-bytes codec like base64
        return False
    return True


async def read_form(
    request: web.Request,
) -> MultiDictProxy[str | bytes | bytearray | web.FileField]:
    """The posted form; a body that is not a readable form is a 400. Uploaded files are
    closed at once: no form here takes one (aiohttp spools each to a temporary file
    that would otherwise stay open until garbage collection)."""
    try:
        form = await request.post()
    # UnicodeDecodeError is a ValueError; HttpProcessingError: bad headers of a part
    except (ValueError, LookupError, zlib.error, HttpProcessingError) as exc:
        raise web.HTTPBadRequest(reason="unreadable form") from exc
    for value in form.values():
        if isinstance(value, web.FileField):
            value.file.close()
    return form


async def form_fields(request: web.Request) -> dict[str, str]:
    """The posted text fields, each name's first value (as ``request.post().get`` and the
    CSRF check read them); uploads are ignored: no form here takes one."""
    fields: dict[str, str] = {}
    for name, value in (await read_form(request)).items():
        if isinstance(value, str):
            fields.setdefault(name, clean_text(value))
    return fields


def client_address(request: web.Request) -> str:
    """The client's address, for throttling: the peer's, or behind a trusted proxy the
    one its forwarded header names (see :mod:`adapters.web.proxies`, whose middleware
    has already put it in ``request.remote``)."""
    return request.remote or "unknown"


def see_other(location: str) -> web.Response:
    """A 303 redirect as a response, so cookies can be set on it."""
    return web.Response(status=303, headers={"Location": location})
