"""A blank ``/chat message:"   "`` is refused as the web refuses it: not stored, and the
user told why (Discord's ``min_length`` counts spaces, so it lets one through)."""

from __future__ import annotations

from bot.engine import BLANK_MESSAGE
from bot.messages import Identity, guest_owner
from bot.store.memory import MemoryStore
from tests.discord.test_discord_http_interactions import MakeEndpoint, make_endpoint
from tests.support.discord_harness import ALICE, slash

__all__ = ["make_endpoint"]  # the fixture, shared with the HTTP interaction tests


async def test_a_blank_chat_message_is_refused_and_not_stored(
    make_endpoint: MakeEndpoint, store: MemoryStore
) -> None:
    endpoint = await make_endpoint()
    assert await endpoint.reply(slash("chat", message="   ")) == [BLANK_MESSAGE]
    owner = guest_owner(Identity("discord", str(ALICE["id"])))
    assert await store.export_owner(owner) == []
    # a real message afterwards is answered and is the only thing stored
    assert await endpoint.reply(slash("chat", message="hello"))
    records = await store.export_owner(owner)
    assert [t.text for r in records for t in r.turns if t.role == "user"] == ["hello"]
