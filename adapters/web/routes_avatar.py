"""Persona pictures and the persona a chat page shows.

``GET /personas/{id}/avatar`` serves the card's own image (a PNG card is its own
avatar; a ``data:`` icon asset too) with its content type, or a default badge (SVG)
drawn from the name. Pictures are public, like a profile picture, and cached: by the
browser for an hour (revalidated with an ETag), and here, read once per persona, off
the event loop.

``GET /chat/persona`` tells the chat page (JSON) which persona the account now talks
to, and the turns of that conversation, so that the page follows a ``/persona``
switch without a reload.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass

from aiohttp import web

from adapters.web.keys import ENGINE
from adapters.web.session import require_account
from bot.avatar import card_image, default_avatar_svg
from bot.messages import DIRECT_SCOPE, account_owner
from bot.personas import Persona

routes = web.RouteTableDef()

#: How long a browser may use a picture before asking again (with its ETag).
MAX_AGE = 3600


@dataclass(frozen=True, slots=True)
class Avatar:
    data: bytes
    content_type: str
    etag: str


AVATARS = web.AppKey("avatars", dict[str, Avatar])


def avatar_url(persona: Persona) -> str:
    """Where the page finds ``persona``'s picture."""
    return f"/personas/{persona.id}/avatar"


async def _avatar(app: web.Application, persona: Persona) -> Avatar:
    cache = app[AVATARS]
    if (found := cache.get(persona.id)) is not None:
        return found
    image = await asyncio.to_thread(card_image, persona)
    if image is None:
        data, kind = default_avatar_svg(persona.name).encode("utf-8"), "image/svg+xml"
    else:
        data, kind = image.data, image.content_type
    avatar = Avatar(data, kind, '"' + hashlib.sha256(data).hexdigest()[:32] + '"')
    cache[persona.id] = avatar
    return avatar


@routes.get("/personas/{persona_id}/avatar", name="avatar")
async def avatar(request: web.Request) -> web.Response:
    persona = request.app[ENGINE].personas.find(request.match_info["persona_id"])
    if persona is None:
        raise web.HTTPNotFound()
    picture = await _avatar(request.app, persona)
    headers = {
        "Cache-Control": f"public, max-age={MAX_AGE}",
        "ETag": picture.etag,
        # An SVG opened on its own is a document: let it run nothing.
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    }
    if picture.etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.Response(body=picture.data, content_type=picture.content_type, headers=headers)


@routes.get("/chat/persona", name="chat_persona")
async def current_persona(request: web.Request) -> web.Response:
    account = await require_account(request)
    engine = request.app[ENGINE]
    owner = account_owner(account.id)
    persona, turns = await engine.open_conversation(owner, DIRECT_SCOPE, account.username)
    return web.json_response(
        {
            "id": persona.id,
            "name": persona.name,
            "avatar": avatar_url(persona),
            "description": persona.expand(persona.description, account.username),
            "turns": [
                {
                    "role": turn.role,
                    "author": turn.author if turn.role == "user" else persona.name,
                    "text": turn.text,
                }
                for turn in turns
            ],
        },
        headers={"Cache-Control": "no-store"},
    )
