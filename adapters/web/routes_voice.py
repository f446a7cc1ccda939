"""Replies read aloud in the web chat (``/voice on``).

When a chat reply's stream ends, the page is sent a ``voice`` event naming
``GET /chat/voice/{persona}/{seq}``: the reply (turn ``seq`` of the account's
conversation with that persona) read aloud, which the page plays with an ``<audio>``
player. Nothing is stored: the route reads the turn from the logged-in account's own
conversation (so no one can hear another account's replies, whatever URL they try) and
has it spoken when the browser asks; any web worker can answer it. A few recent clips
are kept in this process's memory (:data:`CLIPS_KEPT`), so the player's repeated
requests do not ask the speech server again. Each account may have at most
:data:`SYNTHESES_PER_MINUTE` clips made a minute (a clip played again from memory is
free): the speech server is paid per character, and a player's URLs are easy to ask
for in a loop.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict

from aiohttp import web

from adapters.web.keys import ENGINE
from adapters.web.replies import json_error
from adapters.web.session import current_account
from bot.limits import RateLimiter
from bot.messages import DIRECT_SCOPE, Incoming, ReplyDone, account_owner
from bot.speech import SpeechFailure, SpokenReply

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

#: Clips kept per process: (account, persona, seq, text digest) -> audio.
CLIPS_KEPT = 32
ClipKey = tuple[str, str, int, str]
CLIPS = web.AppKey("voice_clips", OrderedDict[ClipKey, SpokenReply])
#: How many of the latest turns a player may ask for.
RECENT_TURNS = 40
#: Clips made for one account a minute (and at once).
SYNTHESES_PER_MINUTE = 20
SYNTHESES = web.AppKey("voice_syntheses", RateLimiter)


def synthesis_limiter() -> RateLimiter:
    """Each account's budget of clips made (see the module doc)."""
    return RateLimiter(per_second=SYNTHESES_PER_MINUTE / 60, burst=SYNTHESES_PER_MINUTE)


async def voice_link(request: web.Request, incoming: Incoming, done: ReplyDone) -> str | None:
    """The player's URL for ``done`` when its account asked for voice replies."""
    engine = request.app[ENGINE]
    speech = engine.speech
    if not speech.wants(done) or incoming.account_id is None:
        return None
    persona = await speech.voice_of(incoming)
    if persona is None:
        return None
    owner = account_owner(incoming.account_id)
    turns = await engine.recent_turns(owner, persona.id, DIRECT_SCOPE)
    reply = next(
        (t for t in reversed(turns) if t.role == "assistant" and t.text == done.text), None
    )
    return None if reply is None else f"/chat/voice/{persona.id}/{reply.seq}"


@routes.get(r"/chat/voice/{persona}/{seq:\d{1,12}}")
async def voice(request: web.Request) -> web.Response:
    account = await current_account(request)
    if account is None:
        return json_error(401, "Your session has expired.")
    engine = request.app[ENGINE]
    owner = account_owner(account.id)
    if await engine.speech.voice_of_owner(owner) is None:
        return json_error(404, "Voice replies are off (/voice on).")
    persona = engine.personas.find(request.match_info["persona"])
    if persona is None:
        return json_error(404, "No such reply.")
    seq = int(request.match_info["seq"])
    turns = await engine.recent_turns(owner, persona.id, DIRECT_SCOPE)
    turn = next((t for t in turns[-RECENT_TURNS:] if t.seq == seq), None)
    if turn is None or turn.role != "assistant":
        return json_error(404, "No such reply.")
    digest = hashlib.sha256(turn.text.encode()).hexdigest()[:16]
    key: ClipKey = (account.id, persona.id, seq, digest)
    clips = request.app[CLIPS]
    spoken = clips.get(key)
    if spoken is None:
        budget = request.app[SYNTHESES]
        if not budget.try_acquire(account.id):
            wait = max(1, int(budget.retry_after(account.id)) + 1)
            refused = json_error(429, f"Too many replies read aloud: try again in {wait} s.")
            refused.headers["Retry-After"] = str(wait)
            return refused
        made = await engine.speech.read_aloud(turn.text, persona, "web")
        if isinstance(made, SpeechFailure):
            return json_error(503, made.note)
        if made is None:
            return json_error(404, "That reply has no words to read.")
        spoken = clips[key] = made
        while len(clips) > CLIPS_KEPT:
            clips.popitem(last=False)
    clips.move_to_end(key)
    return web.Response(
        body=spoken.data,
        content_type=spoken.media_type,
        headers={"Cache-Control": "private, max-age=3600"},
    )
