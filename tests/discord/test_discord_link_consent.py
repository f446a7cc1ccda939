"""Issue 14 item 1 on Discord (gateway): ``/link`` asks with buttons under the reply,
only the presser's own confirmation links, the typed ``/link confirm`` works in DMs, and
the owner hears of a new link in a DM."""

from __future__ import annotations

import time
from typing import Any

from bot.linking import create_link_code
from bot.messages import Identity
from bot.store.memory import MemoryStore
from tests.discord.test_discord_gateway import ORIGINAL, reply_in_channel, reply_to_interaction
from tests.support.discord_harness import (
    ALICE,
    BOB,
    DM_CHANNEL_ID,
    build_engine,
    message,
    running,
    slash,
    snowflake,
)
from tests.support.discord_server import BOT, FakeDiscord


def press(after: dict[str, Any], custom_id: str, person: dict[str, Any]) -> dict[str, Any]:
    """A MESSAGE_COMPONENT interaction: ``person`` pressed a button under the reply to
    ``after`` (a slash command payload, whose place it shares)."""
    payload = {k: v for k, v in after.items() if k not in ("data", "id", "token")}
    if "member" in payload:
        payload["member"] = {**payload["member"], "user": person}
    else:
        payload["user"] = person
    return {
        **payload,
        "id": snowflake(),
        "token": f"itoken-{snowflake()}",
        "type": 3,
        "data": {"custom_id": custom_id, "component_type": 2},
        "message": {**message("the question", guild="guild_id" in payload), "author": BOT},
    }


def buttons_of(fake: FakeDiscord, token: str) -> list[str]:
    edits = fake.find("PATCH", ORIGINAL.format(token=token))
    rows = [edit.body["components"] for edit in edits if edit.body.get("components")]
    return [b["custom_id"] for b in rows[-1][0]["components"]] if rows else []


async def test_link_asks_with_buttons_and_only_the_presser_confirms(
    fake: FakeDiscord, store: MemoryStore
) -> None:
    account = await store.create_account("alice", "hash", 0.0)
    code = await create_link_code(store, account.id, time.time())
    async with running(fake, build_engine(store)) as adapter:
        asked = slash("link", code=code)
        pieces = await reply_to_interaction(fake, adapter, asked)
        assert '"alice"' in pieces[0] and "Nothing is linked yet" in pieces[0]
        assert buttons_of(fake, asked["token"]) == [
            "pb:/link confirm",
            "pb:/link confirm move",
            "pb:/link cancel",
        ]
        assert await store.get_identity(Identity("discord", ALICE["id"])) is None
        # Bob presses the button under Alice's reply: nothing waits for him
        by_bob = press(asked, "pb:/link confirm", BOB)
        assert "No link is waiting" in (await reply_to_interaction(fake, adapter, by_bob))[0]
        assert await store.get_identity(Identity("discord", BOB["id"])) is None
        # Alice presses it
        by_alice = press(asked, "pb:/link confirm", ALICE)
        answer = await reply_to_interaction(fake, adapter, by_alice)
    assert answer[0].startswith("Linked: this Discord account now speaks for alice.")
    link = await store.get_identity(Identity("discord", ALICE["id"]))
    assert link is not None and link.account_id == account.id


async def test_unlink_is_a_slash_command(fake: FakeDiscord, store: MemoryStore) -> None:
    account = await store.create_account("alice", "hash", 0.0)
    await store.link_identity(Identity("discord", ALICE["id"]), "Alice", account.id, 1.0)
    async with running(fake, build_engine(store)) as adapter:
        answer = await reply_to_interaction(fake, adapter, slash("unlink"))
    assert answer[0].startswith("Unlinked: this Discord account no longer speaks for alice.")
    assert await store.get_identity(Identity("discord", ALICE["id"])) is None


async def test_typed_confirmation_in_a_dm_and_the_owner_is_told(
    fake: FakeDiscord, store: MemoryStore
) -> None:
    account = await store.create_account("alice", "hash", 0.0)
    await store.link_identity(Identity("discord", BOB["id"]), "Bob", account.id, 1.0)
    code = await create_link_code(store, account.id, time.time())
    engine = build_engine(store)
    async with running(fake, engine) as adapter:
        asked = await reply_in_channel(fake, adapter, message(f"/link {code}", guild=False))
        assert "/link confirm" in asked[-1]
        posted = fake.find("PATCH", rf"^/channels/{DM_CHANNEL_ID}/messages/\d+$")
        assert any(call.body.get("components") for call in posted), "buttons in the DM too"
        await reply_in_channel(fake, adapter, message("/link confirm", guild=False), count=2)
        await engine.notices.settle()
    link = await store.get_identity(Identity("discord", ALICE["id"]))
    assert link is not None and link.account_id == account.id
    dms = [c for c in fake.find("POST", r"^/channels/\d+/messages$") if "was linked" in c.content]
    assert len(dms) == 1 and f"(id {ALICE['id']})" in (dms[0].content or "")
    opened = fake.find("POST", r"^/users/@me/channels$")
    assert [str(call.body["recipient_id"]) for call in opened] == [BOB["id"]], "Bob is told"
