"""Linking asks first (issue 14 item 1): ``/link CODE`` and ``/start link-CODE`` only
name the account; the same identity's confirmation binds; a linked identity is never
re-bound; the owner is told; the account's persona wins (issue 13 item 8)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bot import engine_parts
from bot.backends.guard import GuardPolicy, ReplyGuard
from bot.config import LinkingSettings, RateLimitSettings
from bot.engine import Engine
from bot.link_consent import CANCEL, CONFIRM, CONFIRM_MOVE
from bot.linking import create_link_code
from bot.messages import (
    ConversationKey,
    Identity,
    Incoming,
    account_owner,
    guest_owner,
)
from bot.personas import PersonaLibrary
from bot.store.memory import MemoryStore
from bot.store.sqlite import SqliteStore
from tests.support.clocks import Clock
from tests.support.engine import build_engine, dm, reply
from tests.support.fakes import WindowEcho, make_persona

FAST = GuardPolicy(first_delta_timeout=5, total_timeout=5, retries=0, retry_backoff=0)


@pytest.fixture
def clock() -> Clock:
    return Clock(1000.0)


@pytest.fixture
def engine(store: MemoryStore, clock: Clock) -> Engine:
    return build_engine(
        store,
        policy=FAST,
        clock=clock,
        rate_limit=RateLimitSettings(per_minute=1e6, burst=1000),
        linking=LinkingSettings(confirm_seconds=300),
    )


async def linked_to(store: MemoryStore, user: str, platform: str = "telegram") -> str | None:
    link = await store.get_identity(Identity(platform, user))
    return link.account_id if link else None


async def test_a_tapped_deep_link_names_the_account_and_links_nothing(
    engine: Engine, store: MemoryStore, clock: Clock
) -> None:
    mallory = await store.create_account("mallory", "h", 0.0)
    await reply(engine, dm("victim", "my secret"))
    code = await create_link_code(store, mallory.id, clock())
    asked = await reply(engine, dm("victim", f"/start link-{code}"))
    assert '"mallory"' in asked.text and "Nothing is linked yet" in asked.text
    assert [a.command for a in asked.actions] == [CONFIRM, CONFIRM_MOVE, CANCEL]
    assert await linked_to(store, "victim") is None
    # the victim goes on chatting as a guest: nothing reaches mallory's account
    await reply(engine, dm("victim", "still mine"))
    assert await store.export_owner(account_owner(mallory.id)) == []


async def test_only_the_same_identity_can_confirm(engine: Engine, store: MemoryStore) -> None:
    account = await store.create_account("alice", "h", 0.0)
    code = await create_link_code(store, account.id, engine._clock())
    await reply(engine, dm("alice_tg", f"/link {code}"))
    other = await reply(engine, dm("mallory_tg", CONFIRM))
    assert "No link is waiting" in other.text
    same_id_other_platform = await reply(engine, dm("alice_tg", CONFIRM, platform="discord"))
    assert "No link is waiting" in same_id_other_platform.text
    assert await linked_to(store, "mallory_tg") is None
    done = await reply(engine, dm("alice_tg", CONFIRM))
    assert done.text.startswith("Linked: this Telegram account now speaks for alice.")
    assert await linked_to(store, "alice_tg") == account.id


async def test_confirm_keeps_guest_history_with_the_guest_by_default(
    engine: Engine, store: MemoryStore
) -> None:
    account = await store.create_account("alice", "h", 0.0)
    await reply(engine, dm("alice_tg", "as a guest"))
    code = await create_link_code(store, account.id, engine._clock())
    await reply(engine, dm("alice_tg", f"/link {code}"))
    done = await reply(engine, dm("alice_tg", CONFIRM))
    assert "stays with this Telegram account" in done.text
    assert await store.export_owner(account_owner(account.id)) == []
    guest = guest_owner(Identity("telegram", "alice_tg"))
    kept = [t.text for r in await store.export_owner(guest) for t in r.turns]
    assert kept[0] == "as a guest"
    # /unlink: the guest history is back where it was
    gone = await reply(engine, dm("alice_tg", "/unlink"))
    assert "no longer speaks for alice" in gone.text
    assert await linked_to(store, "alice_tg") is None
    back = await reply(engine, dm("alice_tg", "hello again"))
    assert "as a guest" in back.text  # WindowEcho shows the window it was given


async def test_confirm_move_moves_the_guest_history(engine: Engine, store: MemoryStore) -> None:
    account = await store.create_account("alice", "h", 0.0)
    await reply(engine, dm("alice_tg", "as a guest"))
    code = await create_link_code(store, account.id, engine._clock())
    await reply(engine, dm("alice_tg", f"/link {code}"))
    done = await reply(engine, dm("alice_tg", CONFIRM_MOVE))
    assert "moved into the account" in done.text
    window = await store.load_window(ConversationKey(account_owner(account.id), "ada", "direct"), 9)
    assert window.turns[0].text == "as a guest"


@pytest.mark.parametrize(
    ("wait", "answer"),
    [
        pytest.param(301.0, "No link is waiting", id="confirmation-expired"),
        pytest.param(299.0, "used or expired in the meantime", id="code-expired-meanwhile"),
    ],
)
async def test_a_late_confirmation_links_nothing(
    engine: Engine, store: MemoryStore, clock: Clock, wait: float, answer: str
) -> None:
    account = await store.create_account("alice", "h", 0.0)
    code = await create_link_code(store, account.id, clock() - 400.0)  # 200 s of 600 left
    await reply(engine, dm("alice_tg", f"/link {code}"))
    clock.now += wait
    done = await reply(engine, dm("alice_tg", CONFIRM))
    assert answer in done.text
    assert await linked_to(store, "alice_tg") is None


async def test_a_code_used_elsewhere_meanwhile_links_nothing(
    engine: Engine, store: MemoryStore, clock: Clock
) -> None:
    account = await store.create_account("alice", "h", 0.0)
    code = await create_link_code(store, account.id, clock())
    await reply(engine, dm("alice_tg", f"/link {code}"))
    await reply(engine, dm("alice_dc", f"/link {code}", platform="discord"))
    first = await reply(engine, dm("alice_dc", CONFIRM, platform="discord"))
    assert first.text.startswith("Linked")
    second = await reply(engine, dm("alice_tg", CONFIRM))
    assert "used or expired" in second.text
    assert await linked_to(store, "alice_tg") is None


async def test_cancel_drops_the_pending_link(engine: Engine, store: MemoryStore) -> None:
    account = await store.create_account("alice", "h", 0.0)
    code = await create_link_code(store, account.id, engine._clock())
    await reply(engine, dm("alice_tg", f"/link {code}"))
    assert "Cancelled" in (await reply(engine, dm("alice_tg", CANCEL))).text
    assert "No link is waiting" in (await reply(engine, dm("alice_tg", CONFIRM))).text
    assert "Nothing to cancel" in (await reply(engine, dm("alice_tg", CANCEL))).text
    assert await linked_to(store, "alice_tg") is None


async def test_a_linked_identity_is_never_re_bound(
    engine: Engine, store: MemoryStore, clock: Clock
) -> None:
    victim = await store.create_account("victim", "h", 0.0)
    mallory = await store.create_account("mallory", "h", 0.0)
    await store.link_identity(Identity("telegram", "v"), "V", victim.id, 1.0)
    code = await create_link_code(store, mallory.id, clock())
    asked = await reply(engine, dm("v", f"/start link-{code}"))
    assert "linked to victim already" in asked.text and "/unlink" in asked.text
    assert not asked.actions
    confirm = await reply(engine, dm("v", CONFIRM))
    assert "No link is waiting" in confirm.text
    assert await linked_to(store, "v") == victim.id


async def test_a_pending_link_made_before_linking_cannot_re_bind(
    engine: Engine, store: MemoryStore, clock: Clock
) -> None:
    alice = await store.create_account("alice", "h", 0.0)
    mallory = await store.create_account("mallory", "h", 0.0)
    await reply(engine, dm("a", f"/link {await create_link_code(store, mallory.id, clock())}"))
    await store.link_identity(Identity("telegram", "a"), "A", alice.id, 1.0)  # linked meanwhile
    done = await reply(engine, dm("a", CONFIRM))
    assert "linked to alice already" in done.text
    assert await linked_to(store, "a") == alice.id


async def test_the_accounts_persona_wins_and_the_answer_names_it(
    engine: Engine, store: MemoryStore, clock: Clock
) -> None:
    account = await store.create_account("alice", "h", 0.0)
    await engine.set_persona(account_owner(account.id), "ada")
    await reply(engine, dm("alice_tg", "/persona morrow"))  # the guest picks another
    await reply(engine, dm("alice_tg", f"/link {await create_link_code(store, account.id, 1e3)}"))
    done = await reply(engine, dm("alice_tg", CONFIRM_MOVE))
    assert "You now talk to Professor Ada" in done.text
    prefs = await store.get_preferences(account_owner(account.id))
    assert prefs["persona"] == "ada"


async def test_the_owner_is_told_of_links_and_unlinks(
    engine: Engine, store: MemoryStore, clock: Clock
) -> None:
    account = await store.create_account("alice", "h", 0.0)
    await store.link_identity(Identity("discord", "ad"), "Alice D", account.id, 1.0)
    sent: list[tuple[Identity, str]] = []

    async def send(identity: Identity, text: str) -> None:
        sent.append((identity, text))

    engine.notices.register("discord", send)
    engine.notices.register("telegram", send)
    await reply(engine, dm("at", f"/link {await create_link_code(store, account.id, clock())}"))
    assert sent == [] and await store.list_notices(account.id, clock(), 10) == []
    await reply(engine, dm("at", CONFIRM))
    await engine.notices.settle()
    assert [identity for identity, _ in sent] == [Identity("discord", "ad")]
    assert "linked to the Telegram account At (id at)" in sent[0][1]
    clock.now += 1
    await reply(engine, dm("at", "/unlink"))
    await engine.notices.settle()
    assert [identity for identity, _ in sent] == [Identity("discord", "ad")] * 2
    assert "unlinked" in sent[1][1]
    notices = await store.list_notices(account.id, clock(), 10)
    assert ["unlinked" in n.text for n in notices] == [True, False]


async def test_unlink_as_a_guest_and_on_the_web(engine: Engine, store: MemoryStore) -> None:
    assert "not linked" in (await reply(engine, dm("g", "/unlink"))).text
    account = await store.create_account("alice", "h", 0.0)
    web = Incoming("web", account.id, "alice", account.id, True, "/unlink", account_id=account.id)
    assert "account page" in (await reply(engine, web)).text


async def test_a_console_user_links_by_text(engine: Engine, store: MemoryStore) -> None:
    account = await store.create_account("alice", "h", 0.0)
    code = await create_link_code(store, account.id, engine._clock())
    asked = await reply(engine, dm("alice", f"/link {code}", platform="console"))
    assert "/link confirm" in asked.text  # the typed form is always in the text
    done = await reply(engine, dm("alice", "/LINK Confirm", platform="console"))
    assert done.text.startswith("Linked: this terminal account now speaks for alice.")
    assert await linked_to(store, "alice", "console") == account.id


async def test_the_confirmation_may_reach_another_worker(tmp_path: Path) -> None:
    """Two workers, each with its own engine and its own connection to one SQLite file:
    the pending link lives in the store, so either may take the confirmation."""
    path = tmp_path / "shared.db"
    backend = WindowEcho()
    personas = PersonaLibrary([make_persona("ada", "Professor Ada", backend=backend.name)])
    async with SqliteStore(path) as first, SqliteStore(path) as second:
        workers = [
            engine_parts.build_engine(store, personas, ReplyGuard({backend.name: backend}, FAST))
            for store in (first, second)
        ]
        account = await first.create_account("alice", "h", 0.0)
        code = await create_link_code(first, account.id, time.time())
        asked = await reply(workers[0], dm("alice_tg", f"/link {code}"))
        assert "Nothing is linked yet" in asked.text
        done = await reply(workers[1], dm("alice_tg", CONFIRM))
        assert done.text.startswith("Linked:")
        again = await reply(workers[0], dm("alice_tg", CONFIRM))
        assert "No link is waiting" in again.text, "taken once, across workers"
        link = await first.get_identity(Identity("telegram", "alice_tg"))
        assert link is not None and link.account_id == account.id
