"""Nothing of one user's files reaches another user's window, whatever the interleaving.

Several people (ids colliding across platforms on purpose, some in one group chat) send
messages at once, each with a text file, a voice note or an image whose content is a
token of its own. The persona's brain echoes everything of its window and message that
a text-only backend can read (:func:`bot.messages.turn_text`: transcripts, file text,
image placeholders with their file names), so a foreign token anywhere in a reply or a
stored window is caught.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import AsyncIterator, Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

import tests.support.media_samples as samples
from bot.backends.guard import GuardPolicy, ReplyGuard
from bot.config import MediaSettings, RateLimitSettings
from bot.engine_parts import build_engine
from bot.media import MediaProcessor
from bot.messages import (
    ConversationKey,
    Identity,
    Incoming,
    IncomingFile,
    Turn,
    guest_owner,
    turn_text,
)
from bot.personas import Persona, PersonaLibrary
from bot.store.base import BackendState
from bot.store.memory import MemoryStore
from tests.support.fakes import make_persona
from tests.support.interleaving_engine import collect
from tests.support.media_samples import FakeTranscriber

PEOPLE = [("telegram", "101"), ("discord", "101"), ("telegram", "202"), ("web", "303")]
TOKEN = re.compile(r"tok-[a-z]+-\d+-\d+")


class FileEcho:
    """Echoes the window and the message as a text-only backend reads them."""

    name = "echo"

    async def reply(
        self,
        persona: Persona,
        window: Sequence[Turn],
        message: Turn,
        state: BackendState,
        *,
        summary: str = "",
    ) -> AsyncIterator[str]:
        await asyncio.sleep(0)
        yield " | ".join(turn_text(t) for t in (*window, message))

    async def aclose(self) -> None:
        pass


class TokenTranscriber(FakeTranscriber):
    """Hears the token written inside the voice note's bytes."""

    async def transcribe(self, filename: str, data: bytes, media_type: str) -> str:
        await asyncio.sleep(0)
        return data.split(b"|", 1)[1].decode()


def owner_tag(platform: str, user: str) -> str:
    return f"{platform[:1]}{user}"


def file_for(kind: str, token: str) -> IncomingFile:
    if kind == "text":
        return IncomingFile.of_bytes("notes.txt", token.encode())
    if kind == "voice":
        return IncomingFile.of_bytes("v.ogg", samples.ogg_voice() + b"|" + token.encode())
    return IncomingFile.of_bytes(f"{token}.png", samples.png(4, 4))  # the name is the token


async def run(sends: list[tuple[int, bool, str]]) -> None:
    async with MemoryStore() as store:
        persona = make_persona("ada", "Ada", backend="echo")
        engine = build_engine(
            store,
            PersonaLibrary([persona]),
            ReplyGuard({"echo": FileEcho()}, GuardPolicy(retries=0)),
            rate_limit=RateLimitSettings(per_minute=1e6, burst=1000),
        )
        engine.media = MediaProcessor(MediaSettings(), TokenTranscriber())
        incomings, tokens = [], []
        for n, (who, group, kind) in enumerate(sends):
            platform, user = PEOPLE[who]
            token = f"tok-{owner_tag(platform, user)}-{n}-{int(group)}"
            incoming = Incoming(
                platform, user, user, "-500" if group else user, not group, "", True
            )
            incomings.append(_with(incoming, file_for(kind, token)))
            tokens.append(token)
        sent = await asyncio.gather(*(collect(engine, i) for i in incomings))
        for item, own in zip(sent, tokens, strict=True):
            assert item.done is not None
            assert own in item.done.text, "the persona read the file"
            tag = owner_tag(item.incoming.platform, item.incoming.user_id)
            group = int(not item.incoming.private)
            for token in TOKEN.findall(item.done.text):
                assert token.split("-")[1] == tag, f"{tag} was shown {token}"
                assert token.endswith(f"-{group}"), f"{tag} saw another scope's {token}"
        for platform, user in PEOPLE:
            tag = owner_tag(platform, user)
            for scope in ("direct", f"{platform}:-500"):
                key = ConversationKey(guest_owner(Identity(platform, user)), "ada", scope)
                for turn in (await store.load_window(key, 100)).turns:
                    for token in TOKEN.findall(turn_text(turn)):
                        assert token.split("-")[1] == tag


def _with(incoming: Incoming, file: IncomingFile) -> Incoming:
    return dataclasses.replace(incoming, files=(file,))


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, len(PEOPLE) - 1),
            st.booleans(),
            st.sampled_from(["text", "voice", "image"]),
        ),
        min_size=1,
        max_size=10,
    )
)
def test_files_never_cross_owners(sends: list[tuple[int, bool, str]]) -> None:
    asyncio.run(run(sends))
