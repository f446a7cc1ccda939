"""The adapter end to end over the gateway: the real discord.py against FakeDiscord."""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from typing import Any

import discord
import pytest

from adapters.discord import DiscordAdapter
from bot.linking import create_link_code
from bot.messages import ConversationKey, Identity, OwnerId
from bot.store.memory import MemoryStore
from tests.support.discord_harness import (
    ALICE,
    BOB,
    CHANNEL_ID,
    DM_CHANNEL_ID,
    BreakingBackend,
    assert_pieces_of,
    autocomplete,
    build_engine,
    guild_create,
    long_reply,
    message,
    running,
    slash,
)
from tests.support.discord_server import BOT, FakeDiscord
from tests.support.fakes import ScriptedBackend, TextBackend, WindowEcho

CURSOR = "▌"
MESSAGE_CONTENT_INTENT = 1 << 15
ORIGINAL = r"^/webhooks/1000/{token}/messages/@original$"


def done(adapter: DiscordAdapter, pieces: list[str]) -> list[str] | None:
    """The pieces, once the reply is complete (nothing in flight, no cursor)."""
    if pieces and adapter.replies_in_flight == 0 and not any(CURSOR in p for p in pieces):
        return pieces
    return None


async def reply_to_interaction(
    fake: FakeDiscord, adapter: DiscordAdapter, payload: dict[str, Any]
) -> list[str]:
    await fake.dispatch("INTERACTION_CREATE", payload)
    result: list[str] = await fake.wait_for(
        lambda: done(adapter, fake.transcript(token=payload["token"]))
    )
    return result


async def reply_in_channel(
    fake: FakeDiscord, adapter: DiscordAdapter, payload: dict[str, Any], count: int = 1
) -> list[str]:
    """Send a message; wait until ``count`` messages are posted in its channel and done."""
    channel = int(payload["channel_id"])
    await fake.dispatch("MESSAGE_CREATE", payload)
    result: list[str] = await fake.wait_for(
        lambda: (p := fake.transcript(channel=channel)) and len(p) >= count and done(adapter, p)
    )
    return result


def callback_of(fake: FakeDiscord, payload: dict[str, Any]) -> dict[str, Any]:
    calls = fake.find("POST", rf"^/interactions/{payload['id']}/")
    assert len(calls) == 1, "answered exactly once"
    body: dict[str, Any] = calls[0].body
    return body


async def test_chat_in_a_guild_defers_streams_and_follows_up(
    fake: FakeDiscord, store: MemoryStore
) -> None:
    text = " ".join(f"word{i}" for i in range(450))  # about 3,000 characters
    engine = build_engine(store, TextBackend(text, chunk=100, pause=0.02))
    async with running(fake, engine, edit_interval=0.2) as adapter:
        assert type(adapter.client) is discord.Client
        payload = slash("chat", message="tell me a story")
        pieces = await reply_to_interaction(fake, adapter, payload)

    assert not fake.identifies[0]["intents"] & MESSAGE_CONTENT_INTENT
    assert callback_of(fake, payload) == {"type": 5}  # deferred, visible to the channel
    token = payload["token"]
    edits = fake.find("PATCH", ORIGINAL.format(token=token))
    followups = fake.find("POST", rf"^/webhooks/1000/{token}$")
    assert len(edits) >= 3, "the reply was shown while it was written"
    assert CURSOR in (edits[0].content or "")
    assert len(followups) == 1, "the text beyond 2,000 characters went out as a follow-up"
    assert all(len(piece) <= 2000 for piece in pieces)
    assert " ".join(pieces).split() == text.split()
    shows = sorted(
        edits + followups + fake.find("PATCH", rf"/{token}/messages/\d+"), key=lambda c: c.at
    )
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(shows)]
    assert min(gaps) >= 0.19, "at most one edit per edit_interval"
    owner = OwnerId(f"guest:discord:{ALICE['id']}")
    window = await store.load_window(ConversationKey(owner, "ada", f"discord:{CHANNEL_ID}"), 10)
    assert [turn.text for turn in window.turns] == ["tell me a story", text]


async def test_a_dm_message_is_chat_with_typing_and_streamed_edits(
    fake: FakeDiscord, store: MemoryStore
) -> None:
    engine = build_engine(store, WindowEcho(chunk=3, pause=0.01))
    async with running(fake, engine) as adapter:
        first = await reply_in_channel(fake, adapter, message("hello there", guild=False))
        second = await reply_in_channel(fake, adapter, message("again", guild=False), count=2)

    assert first == ["re:hello there saw:[]"]
    assert second[1] == "re:again saw:[hello there]", "a DM keeps one direct history"
    assert fake.find("POST", rf"^/channels/{DM_CHANNEL_ID}/typing$")
    posts = fake.find("POST", rf"^/channels/{DM_CHANNEL_ID}/messages$")
    assert "message_reference" not in posts[0].body, "a DM needs no reply reference"
    assert len(fake.find("PATCH", rf"^/channels/{DM_CHANNEL_ID}/messages/\d+$")) >= 2


async def test_a_reply_whose_first_words_come_at_once_needs_no_typing(
    fake: FakeDiscord, store: MemoryStore
) -> None:
    engine = build_engine(store, WindowEcho(chunk=3, pause=0.005))
    async with running(fake, engine, first_message_delay=0.5) as adapter:
        got = await reply_in_channel(fake, adapter, message("hello there", guild=False))

    assert got == ["re:hello there saw:[]"]
    assert not fake.find("POST", rf"^/channels/{DM_CHANNEL_ID}/typing$"), "one request: the reply"
    assert len(fake.find("POST", rf"^/channels/{DM_CHANNEL_ID}/messages$")) == 1


async def test_while_the_first_words_keep_the_user_waiting_typing_shows(
    fake: FakeDiscord, store: MemoryStore
) -> None:
    engine = build_engine(store, ScriptedBackend("slow", [("stall", 0.6)]))
    async with running(fake, engine, first_message_delay=0.2) as adapter:
        got = await reply_in_channel(fake, adapter, message("hello there", guild=False))

    assert got == ["late"]
    typing = fake.find("POST", rf"^/channels/{DM_CHANNEL_ID}/typing$")
    posts = fake.find("POST", rf"^/channels/{DM_CHANNEL_ID}/messages$")
    assert len(typing) == 1 and typing[0].at < posts[0].at, "typing, then the words"


BOT_MESSAGE = message("an earlier answer", person=BOT)
GUILD_CASES = [
    pytest.param("just chatting", [], None, None, id="not-addressed"),
    pytest.param("@everyone hi", [], None, None, id="everyone-is-not-the-bot"),
    pytest.param(f"<@{BOB['id']}> hi", [BOB], None, None, id="another-user-mentioned"),
    pytest.param("<@1000> hi there", [BOT], None, "hi there", id="bot-mentioned"),
    pytest.param("<@!1000>   hi there", [BOT], None, "hi there", id="nickname-mention"),
    pytest.param("and you?", [], BOT_MESSAGE, "and you?", id="reply-to-the-bot"),
    pytest.param(
        f"<@1000> say hi to <@{BOB['id']}>", [BOT, BOB], None, "say hi to @bob", id="names"
    ),
    pytest.param("<@1000>", [BOT], None, None, id="bare-mention-greets"),
]


@pytest.mark.parametrize(("content", "mentions", "replying_to", "expected"), GUILD_CASES)
async def test_guild_messages_are_answered_only_when_addressed(
    fake: FakeDiscord,
    store: MemoryStore,
    content: str,
    mentions: list[dict[str, Any]],
    replying_to: dict[str, Any] | None,
    expected: str | None,
) -> None:
    fake.guilds.append(guild_create())
    engine = build_engine(store, WindowEcho())
    async with running(fake, engine) as adapter:
        incoming = message(content, mentions=mentions, replying_to=replying_to)
        await fake.dispatch("MESSAGE_CREATE", incoming)
        # Bob's message comes after, on the same channel: once it is answered, Alice's
        # was handled (or ignored).
        sentinel = message("<@1000> sentinel", person=BOB, mentions=[BOT])
        await reply_in_channel(fake, adapter, sentinel)
        pieces = await fake.wait_for(lambda: done(adapter, fake.transcript(channel=CHANNEL_ID)))

    assert adapter.client is None
    replies = [p for p in pieces if not p.startswith("re:sentinel")]
    posts = fake.find("POST", rf"^/channels/{CHANNEL_ID}/messages$")
    if content == "<@1000>":
        assert replies and replies[0].startswith("Hello alice"), "a bare mention is a hello"
    elif expected is None:
        assert replies == []
        assert len(posts) == 1
    else:
        assert replies == [f"re:{expected} saw:[]"]
        answer = next(c for c in posts if not c.content.startswith("re:sentinel"))
        reference = answer.body["message_reference"]
        assert str(reference["message_id"]) == incoming["id"]
        assert reference["fail_if_not_exists"] is False


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        pytest.param("mor", [("Captain Morrow (morrow)", "morrow")], id="by-id"),
        pytest.param("PROF", [("Professor Ada (ada)", "ada")], id="by-name-any-case"),
        pytest.param(
            "",
            [("Professor Ada (ada)", "ada"), ("Captain Morrow (morrow)", "morrow")],
            id="empty-lists-all",
        ),
        pytest.param("zzz", [], id="nothing-matches"),
    ],
)
async def test_persona_autocomplete_offers_persona_ids(
    fake: FakeDiscord, store: MemoryStore, current: str, expected: list[tuple[str, str]]
) -> None:
    async with running(fake, build_engine(store)):
        payload = autocomplete("persona", "id", current)
        await fake.dispatch("INTERACTION_CREATE", payload)
        call = await fake.wait_for(lambda: fake.find("POST", rf"^/interactions/{payload['id']}/"))

    assert call[0].body == {
        "type": 8,
        "data": {"choices": [{"name": name, "value": value} for name, value in expected]},
    }


@pytest.mark.parametrize(
    ("name", "options", "guild", "expected", "ephemeral"),
    [
        pytest.param(
            "persona",
            {"id": "morrow"},
            True,
            "You are now talking to Captain Morrow",
            True,
            id="persona-switch",
        ),
        pytest.param(
            "persona", {}, True, "You are talking to Professor Ada", True, id="persona-show"
        ),
        pytest.param("personas", {}, True, "• morrow — Captain Morrow", True, id="personas"),
        pytest.param("help", {}, True, "/link CODE", True, id="help"),
        pytest.param(
            "whoami", {}, True, "this group (your own history here)", True, id="whoami-in-guild"
        ),
        pytest.param("whoami", {}, False, "history: private chat", False, id="whoami-in-dm"),
        pytest.param("reset", {}, True, "New conversation with Professor Ada", True, id="reset"),
        pytest.param("retry", {}, True, "There is nothing to retry yet.", False, id="retry"),
        pytest.param("forget", {}, True, "/forget confirm", True, id="forget-asks"),
        pytest.param(
            "forget",
            {"confirm": True},
            True,
            "There is no pending /forget",
            True,
            id="forget-confirm",
        ),
    ],
)
async def test_slash_commands_reach_the_engines_commands(
    fake: FakeDiscord,
    store: MemoryStore,
    name: str,
    options: dict[str, str | bool],
    guild: bool,
    expected: str,
    ephemeral: bool,
) -> None:
    async with running(fake, build_engine(store)) as adapter:
        payload = slash(name, guild=guild, **options)
        pieces = await reply_to_interaction(fake, adapter, payload)

    assert expected in pieces[0]
    assert callback_of(fake, payload) == (
        {"type": 5, "data": {"flags": 64}} if ephemeral else {"type": 5}
    )


async def test_link_with_a_code_from_the_store(fake: FakeDiscord, store: MemoryStore) -> None:
    account = await store.create_account("alice", "hash", 0.0)
    code = await create_link_code(store, account.id, time.time())
    async with running(fake, build_engine(store)) as adapter:
        payload = slash("link", code=code)
        pieces = await reply_to_interaction(fake, adapter, payload)
        assert '"alice"' in pieces[0], "asks first"
        assert callback_of(fake, payload)["data"] == {"flags": 64}, "only Alice sees it"
        confirm = slash("link", code="confirm")
        pieces = await reply_to_interaction(fake, adapter, confirm)

    assert pieces[0].startswith("Linked: this Discord account now speaks for alice.")
    link, _ = await store.resolve_identity(Identity("discord", ALICE["id"]))
    assert link is not None and link.account_id == account.id


MASS_PINGS = "@everyone @here <@&77> <@43> look at this!"


@pytest.mark.parametrize(
    "surface",
    [
        pytest.param("slash-chat", id="slash-chat"),
        pytest.param("dm-message", id="dm-message"),
        pytest.param("guild-mention", id="guild-mention"),
    ],
)
async def test_model_output_never_pings(
    fake: FakeDiscord, store: MemoryStore, surface: str
) -> None:
    fake.guilds.append(guild_create())
    engine = build_engine(store, TextBackend(MASS_PINGS, chunk=5, pause=0.01))
    async with running(fake, engine) as adapter:
        if surface == "slash-chat":
            pieces = await reply_to_interaction(fake, adapter, slash("chat", message="hi"))
        elif surface == "dm-message":
            pieces = await reply_in_channel(fake, adapter, message("hi", guild=False))
        else:
            mention = message("<@1000> hi", mentions=[BOT])
            pieces = await reply_in_channel(fake, adapter, mention)

    assert pieces == [MASS_PINGS]
    sent = [call for call in fake.calls if call.content is not None]
    assert len(sent) >= 2
    assert all(call.body["allowed_mentions"] == {"parse": []} for call in sent)


@pytest.mark.parametrize(
    ("surface", "edit"),
    [
        pytest.param(
            "interaction", r"^/webhooks/1000/[^/]+/messages/@original$", id="interaction-edit"
        ),
        pytest.param("channel", rf"^/channels/{DM_CHANNEL_ID}/messages/\d+$", id="channel-edit"),
    ],
)
async def test_a_rate_limited_edit_is_retried_after_retry_after(
    fake: FakeDiscord, store: MemoryStore, surface: str, edit: str
) -> None:
    text = " ".join(f"w{i}" for i in range(60))
    engine = build_engine(store, TextBackend(text, chunk=10, pause=0.02))
    fake.fail_next("PATCH", edit, retry_after=0.3)
    async with running(fake, engine) as adapter:
        if surface == "interaction":
            pieces = await reply_to_interaction(fake, adapter, slash("chat", message="go"))
        else:
            pieces = await reply_in_channel(fake, adapter, message("go", guild=False))

    assert pieces == [text]
    edits = fake.find("PATCH", edit)
    limited, retried = edits[0], edits[1]
    assert retried.body == limited.body, "the same edit is sent again"
    assert retried.at - limited.at >= 0.29, "after the retry_after Discord asked for"


@pytest.mark.parametrize(
    "surface",
    [pytest.param("slash-chat", id="slash-chat"), pytest.param("dm-message", id="dm-message")],
)
async def test_a_5000_character_reply_arrives_in_ordered_pieces(
    fake: FakeDiscord, store: MemoryStore, surface: str
) -> None:
    text = long_reply()
    engine = build_engine(store, TextBackend(text, chunk=250, pause=0.005))
    async with running(fake, engine) as adapter:
        if surface == "slash-chat":
            pieces = await reply_to_interaction(fake, adapter, slash("chat", message="code!"))
        else:
            pieces = await reply_in_channel(fake, adapter, message("code!", guild=False), count=3)

    assert_pieces_of(pieces, text)


@pytest.mark.parametrize(
    ("options", "identified", "asks_discord"),
    [
        pytest.param({"sharded": True}, [[0, 2], [1, 2]], True, id="recommended-count"),
        pytest.param(
            {"shard_count": 4, "shard_ids": (1, 3)}, [[1, 4], [3, 4]], False, id="explicit-ids"
        ),
    ],
)
async def test_shard_settings_select_the_auto_sharded_client(
    fake: FakeDiscord,
    store: MemoryStore,
    options: dict[str, Any],
    identified: list[list[int]],
    asks_discord: bool,
) -> None:
    async with running(fake, build_engine(store), **options) as adapter:
        assert isinstance(adapter.client, discord.AutoShardedClient)
        pieces = await reply_in_channel(fake, adapter, message("sharded hi", guild=False))

    assert sorted(identify["shard"] for identify in fake.identifies) == identified
    assert bool(fake.find("GET", "^/gateway/bot$")) is asks_discord
    assert pieces == ["re:sharded hi saw:[]"]


@pytest.mark.parametrize(
    ("guild_ids", "path"),
    [
        pytest.param((), r"^/applications/1000/commands$", id="global"),
        pytest.param((500, 501), r"^/applications/1000/guilds/50[01]/commands$", id="guilds"),
    ],
)
async def test_commands_are_synced_globally_or_to_guilds(
    fake: FakeDiscord, store: MemoryStore, guild_ids: tuple[int, ...], path: str
) -> None:
    async with running(fake, build_engine(store), command_guild_ids=guild_ids):
        pass

    syncs = fake.find("PUT", r"/commands$")
    assert len(syncs) == max(1, len(guild_ids))
    assert all(re.search(path, call.path) for call in syncs)
    names = {command["name"] for command in syncs[0].body}
    expected = {"chat", "reset", "persona", "personas", "link", "unlink", "retry", "whoami"}
    assert names == expected | {"voice", "forget", "help"}


async def test_stopping_lets_a_reply_in_flight_finish(
    fake: FakeDiscord, store: MemoryStore
) -> None:
    text = " ".join(f"slow{i}" for i in range(40))
    engine = build_engine(store, TextBackend(text, chunk=20, pause=0.02))
    async with running(fake, engine) as adapter:
        await fake.dispatch("MESSAGE_CREATE", message("take your time", guild=False))
        await fake.wait_for(lambda: fake.transcript(channel=DM_CHANNEL_ID))
        assert adapter.replies_in_flight == 1

    assert fake.transcript(channel=DM_CHANNEL_ID) == [text]
    await asyncio.sleep(0)


@pytest.mark.parametrize(
    "surface",
    [pytest.param("slash-chat", id="slash-chat"), pytest.param("dm-message", id="dm-message")],
)
async def test_an_error_after_a_long_partial_reply_replaces_all_of_it(
    fake: FakeDiscord, store: MemoryStore, surface: str
) -> None:
    partial = " ".join(f"half{i}" for i in range(500))  # over 3,000 characters
    engine = build_engine(store, BreakingBackend(partial, chunk=1000, pause=0.01))
    async with running(fake, engine) as adapter:
        if surface == "slash-chat":
            payload = slash("chat", message="go")
            await fake.dispatch("INTERACTION_CREATE", payload)
            await fake.wait_for(lambda: len(fake.transcript(token=payload["token"])) == 2)
            pieces = await fake.wait_for(
                lambda: done(adapter, fake.transcript(token=payload["token"]))
            )
        else:
            await fake.dispatch("MESSAGE_CREATE", message("go", guild=False))
            await fake.wait_for(lambda: len(fake.transcript(channel=DM_CHANNEL_ID)) == 2)
            pieces = await fake.wait_for(
                lambda: done(adapter, fake.transcript(channel=DM_CHANNEL_ID))
            )

    assert len(pieces) == 1
    assert "half" not in pieces[0]
    assert "/retry" in pieces[0], "the engine's message for a failed reply"
    assert len(fake.find("DELETE", r"/messages/\d+$")) == 1
