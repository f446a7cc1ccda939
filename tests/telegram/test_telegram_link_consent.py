"""Issue 14 item 1, end to end through the real python-telegram-bot and the fake Bot API:
an attacker's deep link (``t.me/<bot>?start=link-CODE``) tapped by a victim links
nothing until the victim confirms with a button; a victim linked to their own account
is never re-bound; the account's owner is told of a link on their other platform."""

from __future__ import annotations

from bot.messages import Identity, account_owner, guest_owner
from bot.store.memory import MemoryStore
from tests.support.telegram_harness import (
    ALICE,
    BOB,
    Chat,
    accounts,
    bot_message,
    build_engine,
    message,
    polling,
    update,
    webhook,
)
from tests.support.telegram_server import FakeBotApi

PASSWORD = "correct horse battery"


async def test_a_victim_tapping_an_attackers_deep_link_links_nothing(
    store: MemoryStore, fake: FakeBotApi
) -> None:
    service = accounts(store)
    mallory = await service.sign_up("mallory", PASSWORD)
    code = await service.create_link_code(mallory.id)
    async with polling(build_engine(store), fake):
        victim = Chat(fake, ALICE)
        await victim.say("my diary: nobody else reads this")
        asked = await victim.say(f"/start link-{code}")  # what tapping the link sends
        assert '"mallory"' in asked and "Nothing is linked yet" in asked
        buttons = fake.shown(ALICE.id)[-1].buttons
        assert [data for _, data in buttons] == [
            "/link confirm",
            "/link confirm move",
            "/link cancel",
        ]
        # the victim does not confirm, and goes on chatting: nothing reaches mallory
        await victim.say("more secrets")
        assert await store.get_identity(Identity("telegram", str(ALICE.id))) is None
        assert await store.export_owner(account_owner(mallory.id)) == []
        # a press by anyone else is theirs, not the victim's: nothing waits for them
        bystander = Chat(fake, BOB, chat_id=ALICE.id)
        assert "No link is waiting" in await bystander.press("Link and move my history")
        assert all(not shown.buttons for shown in fake.shown(ALICE.id)), "pressed once"
        # cancelling drops the victim's pending link: a late confirm links nothing
        assert "Cancelled" in await victim.say("/link cancel")
        assert "No link is waiting" in await victim.say("/link confirm")
    assert await store.get_identity(Identity("telegram", str(ALICE.id))) is None
    guest = guest_owner(Identity("telegram", str(ALICE.id)))
    kept = [t.text for r in await store.export_owner(guest) for t in r.turns]
    assert "my diary: nobody else reads this" in kept


async def test_a_linked_victim_is_not_re_bound_by_a_deep_link(
    store: MemoryStore, fake: FakeBotApi
) -> None:
    service = accounts(store)
    alice = await service.sign_up("alice", PASSWORD)
    mallory = await service.sign_up("mallory", PASSWORD)
    async with polling(build_engine(store), fake):
        chat = Chat(fake, ALICE)
        await chat.say(f"/link {await service.create_link_code(alice.id)}")
        assert "now speaks for alice" in await chat.press("Link to alice")
        answer = await chat.say(f"/start link-{await service.create_link_code(mallory.id)}")
        assert "linked to alice already" in answer and "/unlink" in answer
        assert not fake.shown(ALICE.id)[-1].buttons
        assert "No link is waiting" in await chat.say("/link confirm")
    link = await store.get_identity(Identity("telegram", str(ALICE.id)))
    assert link is not None and link.account_id == alice.id


async def test_confirming_with_the_button_links_and_tells_the_owner_elsewhere(
    store: MemoryStore, fake: FakeBotApi
) -> None:
    service = accounts(store)
    alice = await service.sign_up("alice", PASSWORD)
    engine = build_engine(store)
    async with polling(engine, fake):
        first = Chat(fake, ALICE)
        await first.say(f"/link {await service.create_link_code(alice.id)}")
        done = await first.press("Link to alice")
        assert "now speaks for alice" in done and "You now talk to Professor Ada" in done
        # a second Telegram identity links: the first is told, privately
        second = Chat(fake, BOB)
        await second.say(f"/link {await service.create_link_code(alice.id)}")
        await second.press("Link to alice")
        told = await fake.wait_for_text(ALICE.id, "was linked to the Telegram account Bob")
        assert f"(id {BOB.id})" in told
        assert "If that was not you" in told
    notices = await service.notices_of(alice.id)
    assert [f"id {BOB.id}" in n.text for n in notices] == [True, False]


async def test_the_button_works_over_the_webhook_too(store: MemoryStore, fake: FakeBotApi) -> None:
    """Webhook mode: the deep link and the press arrive as POSTs to our server."""
    service = accounts(store)
    alice = await service.sign_up("alice", PASSWORD)
    code = await service.create_link_code(alice.id)
    async with webhook(build_engine(store), fake, store=store) as hook:
        deep_link = message(ALICE, f"/start link-{code}")
        assert await hook.post({"update_id": 1, **update(deep_link)}) == 200
        await fake.wait_for_text(ALICE.id, "Nothing is linked yet")
        asked = fake.shown(ALICE.id)[-1]
        data = next(data for label, data in asked.buttons if label == "Link to alice")
        query = {
            "id": "q1",
            "from": ALICE.user(),
            "chat_instance": "ci",
            "data": data,
            "message": bot_message(ALICE.id, asked.message_id, asked.text),
        }
        assert await hook.post({"update_id": 2, "callback_query": query}) == 200
        await fake.wait_for_text(ALICE.id, "now speaks for alice")
        assert fake.calls_to("answerCallbackQuery"), "the button's spinner ends"
    link = await store.get_identity(Identity("telegram", str(ALICE.id)))
    assert link is not None and link.account_id == alice.id
