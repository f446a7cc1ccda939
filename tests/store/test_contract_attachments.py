"""The Store contract for what messages carried: metadata, transcripts and file text are
kept with their turn, the bytes never; exports carry them and ``forget_owner`` ends them."""

from __future__ import annotations

from bot.messages import (
    Attachment,
    AttachmentKind,
    ConversationKey,
    Identity,
    NewTurn,
    account_owner,
    guest_owner,
)
from bot.store.base import Store

ALICE = guest_owner(Identity("telegram", "1001"))
BOB = guest_owner(Identity("telegram", "3003"))

PHOTO = Attachment(
    AttachmentKind.IMAGE, "image/jpeg", 2_400_000, "cat.jpg", "", 1568, 1176, image=b"\xff\xd8"
)
VOICE = Attachment(AttachmentKind.AUDIO, "audio/ogg", 18_000, "voice.ogg", "see you at nine")
NOTES = Attachment(AttachmentKind.TEXT, "text/plain", 12, "notes.md", "# Plan\n- ✓ ünïcode")


def key(owner: str = ALICE) -> ConversationKey:
    return ConversationKey(owner, "ada", "direct")  # type: ignore[arg-type]


async def send(store: Store, conversation: ConversationKey, *files: Attachment) -> None:
    version = (await store.load_window(conversation, 1)).version
    turn = NewTurn("user", "look", "Alice", 1.0, attachments=files)
    await store.append_turns(conversation, [turn], version, 1.0)


async def test_a_turn_keeps_its_attachments_without_their_bytes(store: Store) -> None:
    await send(store, key(), PHOTO, VOICE, NOTES)
    (turn,) = (await store.load_window(key(), 10)).turns
    assert turn.attachments == (PHOTO, VOICE, NOTES)  # equal in every field but the bytes
    assert [item.image for item in turn.attachments] == [None, None, None]
    assert turn.attachments[2].text == "# Plan\n- ✓ ünïcode"
    assert (turn.attachments[0].width, turn.attachments[0].height) == (1568, 1176)


async def test_append_returns_the_stored_form(store: Store) -> None:
    version = (await store.load_window(key(), 1)).version
    turn = NewTurn("user", "", "Alice", 1.0, attachments=(PHOTO,))
    _, (stored,) = await store.append_turns(key(), [turn], version, 1.0)
    assert stored.attachments == (PHOTO,)
    assert stored.attachments[0].image is None


async def test_turns_without_files_have_none(store: Store) -> None:
    await send(store, key())
    (turn,) = (await store.load_window(key(), 10)).turns
    assert turn.attachments == ()


async def test_export_carries_metadata_and_transcripts(store: Store) -> None:
    await send(store, key(), VOICE, PHOTO)
    await send(store, key(BOB), NOTES)
    (record,) = await store.export_owner(ALICE)
    (turn,) = record.turns
    assert [(a.filename, a.text) for a in turn.attachments] == [
        ("voice.ogg", "see you at nine"),
        ("cat.jpg", ""),
    ]


async def test_forget_removes_attachments(store: Store) -> None:
    await send(store, key(), VOICE)
    await send(store, key(BOB), NOTES)
    await store.forget_owner(ALICE)
    assert await store.export_owner(ALICE) == []
    assert (await store.load_window(key(), 10)).turns == ()
    (record,) = await store.export_owner(BOB)
    assert record.turns[0].attachments == (NOTES,)


async def test_link_moves_attachments_with_the_guest_conversation(store: Store) -> None:
    identity = Identity("telegram", "1001")
    account = await store.create_account("alice", "hash", 10.0)
    await send(store, key(ALICE), VOICE, NOTES)
    await store.link_identity(identity, "Alice", account.id, 20.0)
    (turn,) = (await store.load_window(key(account_owner(account.id)), 10)).turns
    assert turn.attachments == (VOICE, NOTES)
