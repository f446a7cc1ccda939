"""The streamed-reply policy every platform shares (``adapters/streaming.py``), over a
recording surface: one message for a quick reply, typing until the first text, drafts
superseded, refused markup and deleted messages, leftovers and buttons."""

from __future__ import annotations

import asyncio

import pytest

from adapters.streaming import (
    EMPTY_REPLY,
    MarkupRefused,
    MessageGone,
    Piece,
    StreamedReply,
    WriteSkipped,
)
from bot.messages import Action

WIDTH = 20
CURSOR = " …"
RETRY = (Action("Try again", "/retry"),)


class RecordingSurface:
    """Messages of ``WIDTH`` characters; markup is ``*text*``. Notes every write."""

    def __init__(
        self,
        *,
        refuse_markup: bool = False,
        skip_drafts: int = 0,
        fail_drafts: bool = False,
    ):
        self.messages: list[str | None] = []  # None: deleted by the user
        self.writes: list[tuple[str, int, str]] = []  # (post/edit/remove, index, content)
        self.buttons: dict[int, tuple[Action, ...]] = {}
        self.plain_writes = 0
        self._gone: set[int] = set()
        self._refuse_markup = refuse_markup
        self._skip_drafts = skip_drafts
        self._fail_drafts = fail_drafts

    def render(self, text: str, *, partial: bool) -> list[Piece]:
        text = text.strip()
        chunks = [text[i : i + WIDTH] for i in range(0, len(text), WIDTH)]
        pieces = [Piece(f"*{chunk}*", chunk) for chunk in chunks]
        if partial and pieces:
            last = pieces[-1]
            pieces[-1] = Piece(last.markup + CURSOR, last.plain + CURSOR)
        return pieces

    async def pace(self) -> None:
        await asyncio.sleep(0)

    async def show(
        self, index: int, content: str, *, final: bool, plain: bool, actions: tuple[Action, ...]
    ) -> None:
        await asyncio.sleep(0)
        assert index <= len(self.messages), "pieces are posted in order"
        if not final and self._fail_drafts:
            raise RuntimeError("the platform broke")
        if not final and self._skip_drafts:
            self._skip_drafts -= 1
            raise WriteSkipped
        if self._refuse_markup and not plain:
            raise MarkupRefused
        if index in self._gone:
            self._gone.discard(index)  # forgotten: the next show of it posts it
            raise MessageGone
        self.plain_writes += plain
        if index < len(self.messages) and self.messages[index] is not None:
            self.writes.append(("edit", index, content))
            self.messages[index] = content
        elif index < len(self.messages):
            self.writes.append(("post", index, content))
            self.messages[index] = content
        else:
            self.writes.append(("post", index, content))
            self.messages.append(content)
        if actions:
            self.buttons[index] = actions

    async def remove(self, index: int) -> None:
        assert index == len(self.messages) - 1 > 0, "the last one, never the first"
        self.writes.append(("remove", index, ""))
        self.messages.pop()

    def delete_by_user(self, index: int) -> None:
        """The user deleted a message: the next write to it fails with MessageGone."""
        self.messages[index] = None
        self._gone.add(index)


async def test_a_reply_complete_within_the_first_delay_is_one_message() -> None:
    surface = RecordingSurface()
    typing: list[bool] = []

    async def note_typing(wanted: object) -> None:
        typing.append(True)

    async with StreamedReply(surface, first_delay=5.0, typing=note_typing) as reply:
        for word in ("Hello ", "there, ", "friend."):
            reply.append(word)
            await asyncio.sleep(0.01)
        await reply.finish("Hello there, friend.")
    assert surface.writes == [("post", 0, "*Hello there, friend.*")]
    assert typing == [], "the text came before the first delay: no typing"


async def test_typing_shows_until_the_first_text() -> None:
    surface = RecordingSurface()
    asked: list[bool] = []

    async def note_typing(wanted: object) -> None:
        asked.append(True)

    async with StreamedReply(
        surface, first_delay=0.01, typing=note_typing, typing_interval=0.01
    ) as reply:
        for _ in range(100):  # bounded: until typing was shown
            if asked:
                break
            await asyncio.sleep(0.01)
        shown_before_text = len(asked)
        reply.append("Here it is.")
        await reply.finish("Here it is.")
    assert shown_before_text >= 1
    assert len(asked) == shown_before_text, "no typing once the text came"


async def test_drafts_end_in_the_cursor_and_the_final_text_replaces_them() -> None:
    surface = RecordingSurface()
    async with StreamedReply(surface) as reply:
        reply.append("Half a thou")
        await asyncio.sleep(0.05)
        await reply.finish("Sorry, that failed.")
    assert surface.writes[0] == ("post", 0, "*Half a thou*" + CURSOR)
    assert surface.messages == ["*Sorry, that failed.*"]


async def test_a_skipped_draft_is_superseded_by_the_final_text() -> None:
    surface = RecordingSurface(skip_drafts=1)
    async with StreamedReply(surface) as reply:
        reply.append("first")
        await asyncio.sleep(0.05)
        await reply.finish("first and more")
    assert surface.writes == [("post", 0, "*first and more*")]


async def test_a_draft_that_breaks_ends_the_rendering_and_finish_raises_it() -> None:
    surface = RecordingSurface(fail_drafts=True)
    async with StreamedReply(surface) as reply:
        reply.append("first")
        await asyncio.sleep(0.05)
        reply.append(" and more")  # the writer is gone: kept, never shown
        with pytest.raises(RuntimeError, match="broke"):
            await reply.finish("first and more")
    assert surface.writes == []


async def test_refused_markup_sends_the_rest_of_the_reply_as_plain_text() -> None:
    surface = RecordingSurface(refuse_markup=True)
    async with StreamedReply(surface) as reply:
        reply.append("a draft")
        await asyncio.sleep(0.05)
        reply.append(" that grows past one message")
        await asyncio.sleep(0.05)
        await reply.finish("a draft that grows past one message")
    assert surface.messages == ["a draft that grows p", "ast one message"]
    assert surface.plain_writes == len(surface.writes), "every write after the refusal is plain"


async def test_a_message_the_user_deleted_is_posted_afresh() -> None:
    surface = RecordingSurface()
    async with StreamedReply(surface) as reply:
        reply.append("a draft")
        await asyncio.sleep(0.05)
        surface.delete_by_user(0)
        await reply.finish("the final text")
    assert surface.writes == [("post", 0, "*a draft*" + CURSOR), ("post", 0, "*the final text*")]
    assert surface.messages == ["*the final text*"]


async def test_a_shorter_final_text_removes_the_extra_drafts_and_takes_the_buttons() -> None:
    surface = RecordingSurface()
    long_draft = "x" * (3 * WIDTH)
    async with StreamedReply(surface) as reply:
        reply.append(long_draft)
        await asyncio.sleep(0.05)
        assert len(surface.messages) == 3
        await reply.finish("x" * WIDTH, RETRY)
    assert surface.messages == ["*" + "x" * WIDTH + "*"]
    assert [kind for kind, _, _ in surface.writes].count("remove") == 2
    assert surface.buttons == {0: RETRY}


async def test_buttons_go_under_a_last_piece_that_did_not_change() -> None:
    surface = RecordingSurface()
    text = "y" * (2 * WIDTH)
    async with StreamedReply(surface) as reply:
        reply.append(text + " z")  # the draft's second piece is "yyy…", its third "z …"
        await asyncio.sleep(0.05)
        await reply.finish(text, RETRY)
    assert surface.writes[-2:] == [("edit", 1, "*" + "y" * WIDTH + "*"), ("remove", 2, "")]
    assert surface.buttons == {1: RETRY}


async def test_a_blank_final_text_shows_a_placeholder() -> None:
    surface = RecordingSurface()
    async with StreamedReply(surface) as reply:
        await reply.finish("   ")
    assert surface.messages == [f"*{EMPTY_REPLY}*"]
