"""The Store contract: every implementation behaves exactly like this (see ``conftest.py``)."""

from __future__ import annotations

import asyncio

import pytest

from bot import userpersona
from bot.errors import ConversationBusy, StoreError, UsernameTaken, VersionConflict
from bot.messages import (
    ConversationKey,
    Identity,
    NewTurn,
    OwnerId,
    Role,
    UserPersona,
    account_owner,
    guest_owner,
)
from bot.store.base import Account, Lease, Store, Usage, WebSession
from bot.store.dynamo import DynamoStore

ALICE_TG = Identity("telegram", "1001")
ALICE_DC = Identity("discord", "2002")
BOB_TG = Identity("telegram", "3003")


def key(owner: OwnerId, persona: str = "ada", scope: str = "direct") -> ConversationKey:
    return ConversationKey(owner, persona, scope)


def said(*texts: str, role: Role = "user", at: float = 1.0) -> list[NewTurn]:
    return [NewTurn(role, text, "Alice" if role == "user" else "Ada", at) for text in texts]


async def chat(store: Store, conversation: ConversationKey, *texts: str) -> int:
    """Append each text as its own turn, the way the engine does; returns the version."""
    version = (await store.load_window(conversation, 1)).version
    for text in texts:
        version, _ = await store.append_turns(conversation, said(text), version, 1.0)
    return version


async def texts_in(store: Store, conversation: ConversationKey, max_turns: int = 100) -> list[str]:
    return [turn.text for turn in (await store.load_window(conversation, max_turns)).turns]


async def new_account(store: Store, name: str = "alice", now: float = 10.0) -> Account:
    return await store.create_account(name, f"hash-of-{name}", now)


def test_is_a_store(store: Store) -> None:
    assert isinstance(store, Store)


async def test_ping(store: Store) -> None:
    await store.ping()


# -- accounts -------------------------------------------------------------------------


async def test_create_get_and_find_account(store: Store) -> None:
    account = await store.create_account("Alice", "h1", 10.0)
    assert account.username == "Alice"  # kept as given
    assert (account.password_hash, account.created_at) == ("h1", 10.0)
    assert await store.get_account(account.id) == account
    assert await store.find_account("aLiCe") == account
    assert await store.find_account("bob") is None
    assert await store.get_account("no-such-id") is None


@pytest.mark.parametrize(
    "second",
    [
        pytest.param("alice", id="same"),
        pytest.param("ALICE", id="upper"),
        pytest.param("Alice", id="capitalised"),
    ],
)
async def test_username_is_taken_in_any_case(store: Store, second: str) -> None:
    await store.create_account("alice", "h", 1.0)
    with pytest.raises(UsernameTaken):
        await store.create_account(second, "h", 2.0)


async def test_concurrent_signups_with_one_name_give_one_account(store: Store) -> None:
    results = await asyncio.gather(
        *(store.create_account(name, "h", 1.0) for name in ("carol", "CAROL", "Carol")),
        return_exceptions=True,
    )
    assert sum(isinstance(r, Account) for r in results) == 1
    assert sum(isinstance(r, UsernameTaken) for r in results) == 2


async def test_account_ids_are_distinct(store: Store) -> None:
    ids = {(await new_account(store, f"user{n}")).id for n in range(20)}
    assert len(ids) == 20


async def test_set_password_hash(store: Store) -> None:
    account = await new_account(store)
    await store.set_password_hash(account.id, "new-hash")
    found = await store.get_account(account.id)
    assert found is not None and found.password_hash == "new-hash"


async def test_delete_account_removes_everything_of_it(store: Store) -> None:
    account, other = await new_account(store, "alice"), await new_account(store, "bob")
    owner, other_owner = account_owner(account.id), account_owner(other.id)
    await store.link_identity(ALICE_TG, "Alice", account.id, 20.0)
    await store.link_identity(BOB_TG, "Bob", other.id, 20.0)
    await store.put_web_session("session", account.id, 1e12)
    await store.put_link_code("code", account.id, 1e12)
    await store.set_preference(owner, "persona", "ada")
    await store.set_preference(other_owner, "persona", "morrow")
    await chat(store, key(owner), "old")
    await store.reset_conversation(key(owner))
    await chat(store, key(owner), "hello")
    await chat(store, key(other_owner), "bob's")

    await store.delete_account(account.id)

    assert await store.get_account(account.id) is None
    assert await store.find_account("alice") is None
    assert await store.get_identity(ALICE_TG) is None
    assert await store.list_identities(account.id) == []
    assert await store.get_web_session("session", 0.0) is None
    assert await store.take_link_code("code", 0.0) is None
    assert await store.get_preferences(owner) == {}
    assert await store.export_owner(owner) == []
    assert await texts_in(store, key(owner)) == []
    # the name is free again, and nothing of the other account went
    assert (await new_account(store, "alice")).id != account.id
    assert await store.get_identity(BOB_TG) is not None
    assert await store.get_preferences(other_owner) == {"persona": "morrow"}
    assert await texts_in(store, key(other_owner)) == ["bob's"]


async def test_delete_unknown_account_is_a_no_op(store: Store) -> None:
    await store.delete_account("no-such-id")


# -- identities -----------------------------------------------------------------------


async def test_unlinked_identity_is_a_guest(store: Store) -> None:
    assert await store.get_identity(ALICE_TG) is None


async def test_link_identity(store: Store) -> None:
    account = await new_account(store)
    await store.link_identity(ALICE_TG, "Alice T.", account.id, 20.0)
    link = await store.get_identity(ALICE_TG)
    assert link is not None
    assert (link.platform, link.user_id, link.display_name) == ("telegram", "1001", "Alice T.")
    assert (link.account_id, link.linked_at, link.identity) == (account.id, 20.0, ALICE_TG)
    assert await store.get_identity(Identity("discord", "1001")) is None


async def test_resolve_identity_gives_the_link_and_the_owners_preferences(store: Store) -> None:
    assert await store.resolve_identity(ALICE_TG) == (None, {})
    await store.set_preference(guest_owner(ALICE_TG), "persona", "guest-choice")
    assert await store.resolve_identity(ALICE_TG) == (None, {"persona": "guest-choice"})
    account = await new_account(store)
    await store.set_preference(account_owner(account.id), "persona", "account-choice")
    await store.link_identity(ALICE_TG, "Alice", account.id, 5.0)
    link, prefs = await store.resolve_identity(ALICE_TG)
    assert link is not None and link.account_id == account.id
    assert prefs == {"persona": "account-choice"}
    assert await store.resolve_identity(BOB_TG) == (None, {})


async def test_list_identities_oldest_link_first(store: Store) -> None:
    account, other = await new_account(store, "alice"), await new_account(store, "bob")
    await store.link_identity(ALICE_DC, "Alice", account.id, 30.0)
    await store.link_identity(ALICE_TG, "Alice", account.id, 20.0)
    await store.link_identity(BOB_TG, "Bob", other.id, 25.0)
    linked = await store.list_identities(account.id)
    assert [link.identity for link in linked] == [ALICE_TG, ALICE_DC]
    assert await store.list_identities("no-such-id") == []


async def test_unlink_keeps_the_accounts_history(store: Store) -> None:
    account = await new_account(store)
    await store.link_identity(ALICE_TG, "Alice", account.id, 20.0)
    await chat(store, key(account_owner(account.id)), "remember me")
    await store.unlink_identity(ALICE_TG)
    assert await store.get_identity(ALICE_TG) is None
    assert await store.list_identities(account.id) == []
    assert await texts_in(store, key(account_owner(account.id))) == ["remember me"]
    await store.unlink_identity(ALICE_TG)  # unlinking a guest is a no-op


async def test_relink_moves_the_binding_not_the_old_accounts_data(store: Store) -> None:
    first, second = await new_account(store, "first"), await new_account(store, "second")
    await store.link_identity(ALICE_TG, "Alice", first.id, 20.0)
    await chat(store, key(account_owner(first.id)), "first's history")
    await store.link_identity(ALICE_TG, "Alice", second.id, 30.0)

    link = await store.get_identity(ALICE_TG)
    assert link is not None and (link.account_id, link.linked_at) == (second.id, 30.0)
    assert await store.list_identities(first.id) == []
    assert [i.identity for i in await store.list_identities(second.id)] == [ALICE_TG]
    assert await texts_in(store, key(account_owner(first.id))) == ["first's history"]
    assert await store.export_owner(account_owner(second.id)) == []


async def test_relink_to_the_same_account_updates_the_name(store: Store) -> None:
    account = await new_account(store)
    await store.link_identity(ALICE_TG, "Alice", account.id, 20.0)
    await store.link_identity(ALICE_TG, "Alice Renamed", account.id, 40.0)
    link = await store.get_identity(ALICE_TG)
    assert link is not None and link.display_name == "Alice Renamed"
    assert link.linked_at == 20.0  # still the same link: it keeps its place in the list


async def test_link_to_unknown_account_is_refused(store: Store) -> None:
    with pytest.raises(StoreError):
        await store.link_identity(ALICE_TG, "Alice", "no-such-id", 20.0)
    assert await store.get_identity(ALICE_TG) is None


# -- linking moves the guest's data ---------------------------------------------------


async def test_link_makes_guest_conversation_the_accounts_current(store: Store) -> None:
    account = await new_account(store)
    guest, owner = guest_owner(ALICE_TG), account_owner(account.id)
    await chat(store, key(guest), "hi", "I like tea")
    await store.link_identity(ALICE_TG, "Alice", account.id, 20.0)

    assert await texts_in(store, key(owner)) == ["hi", "I like tea"]
    assert await texts_in(store, key(guest)) == []
    assert await store.export_owner(guest) == []
    # the moved conversation goes on where it was
    window = await store.load_window(key(owner), 10)
    _, stored = await store.append_turns(key(owner), said("more"), window.version, 2.0)
    assert [turn.seq for turn in stored] == [3]


async def test_link_keeps_guest_conversation_archived_when_account_has_one(
    store: Store,
) -> None:
    account = await new_account(store)
    guest, owner = guest_owner(ALICE_TG), account_owner(account.id)
    await chat(store, key(owner), "account says")
    await chat(store, key(guest), "guest says", "guest again")
    await store.link_identity(ALICE_TG, "Alice", account.id, 20.0)

    assert await texts_in(store, key(owner)) == ["account says"]
    records = await store.export_owner(owner)
    by_state = {record.archived: record for record in records}
    assert len(records) == 2
    assert [turn.text for turn in by_state[False].turns] == ["account says"]
    assert [turn.text for turn in by_state[True].turns] == ["guest says", "guest again"]
    assert (by_state[True].persona_id, by_state[True].scope) == ("ada", "direct")


async def test_link_moves_every_scope_persona_and_archived_conversation(store: Store) -> None:
    account = await new_account(store)
    guest, owner = guest_owner(ALICE_TG), account_owner(account.id)
    await chat(store, key(guest), "old direct")
    await store.reset_conversation(key(guest))
    await chat(store, key(guest), "direct")
    await chat(store, key(guest, scope="telegram:-100"), "in the group")
    await chat(store, key(guest, persona="morrow"), "to morrow")
    await store.link_identity(ALICE_TG, "Alice", account.id, 20.0)

    assert await texts_in(store, key(owner)) == ["direct"]
    assert await texts_in(store, key(owner, scope="telegram:-100")) == ["in the group"]
    assert await texts_in(store, key(owner, persona="morrow")) == ["to morrow"]
    exported = await store.export_owner(owner)
    assert sorted(t.text for r in exported for t in r.turns) == sorted(
        ["old direct", "direct", "in the group", "to morrow"]
    )
    assert [r.archived for r in exported].count(True) == 1


async def test_after_link_a_stale_account_version_conflicts(store: Store) -> None:
    account = await new_account(store)
    guest, owner = guest_owner(ALICE_TG), account_owner(account.id)
    await chat(store, key(owner), "one", "two")
    await store.reset_conversation(key(owner))
    stale = (await store.load_window(key(owner), 10)).version
    await chat(store, key(guest), "guest")
    await store.link_identity(ALICE_TG, "Alice", account.id, 20.0)

    window = await store.load_window(key(owner), 10)
    assert window.version > stale
    with pytest.raises(VersionConflict):
        await store.append_turns(key(owner), said("late"), stale, 3.0)
    assert await texts_in(store, key(owner)) == ["guest"]


@pytest.mark.parametrize(
    "account_prefs",
    [pytest.param({}, id="account-has-none"), pytest.param({"persona": "ada"}, id="account-chose")],
)
async def test_link_never_changes_the_accounts_preferences(
    store: Store, account_prefs: dict[str, str]
) -> None:
    # issue 13 item 8: the account's existing choice wins; the guest keeps its own
    account = await new_account(store)
    guest, owner = guest_owner(ALICE_TG), account_owner(account.id)
    for name, value in account_prefs.items():
        await store.set_preference(owner, name, value)
    await store.set_preference(guest, "persona", "morrow")
    await store.link_identity(ALICE_TG, "Alice", account.id, 20.0)
    assert await store.get_preferences(owner) == account_prefs
    assert await store.get_preferences(guest) == {"persona": "morrow"}


async def test_link_of_a_second_identity_loses_nothing(store: Store) -> None:
    account = await new_account(store)
    owner = account_owner(account.id)
    await chat(store, key(guest_owner(ALICE_TG)), "from telegram")
    await chat(store, key(guest_owner(ALICE_DC)), "from discord")
    await store.link_identity(ALICE_TG, "Alice", account.id, 20.0)
    await store.link_identity(ALICE_DC, "Alice", account.id, 21.0)
    assert await texts_in(store, key(owner)) == ["from telegram"]
    exported = await store.export_owner(owner)
    assert sorted(t.text for r in exported for t in r.turns) == ["from discord", "from telegram"]


# -- link codes and web sessions ------------------------------------------------------


async def test_link_code_is_single_use(store: Store) -> None:
    account = await new_account(store)
    await store.put_link_code("hash-1", account.id, 100.0)
    assert await store.take_link_code("hash-1", 50.0) == account.id
    assert await store.take_link_code("hash-1", 50.0) is None


@pytest.mark.parametrize(
    "now",
    [pytest.param(100.0, id="at-expiry"), pytest.param(150.0, id="after-expiry")],
)
async def test_expired_link_code_is_refused(store: Store, now: float) -> None:
    account = await new_account(store)
    await store.put_link_code("hash-1", account.id, 100.0)
    assert await store.take_link_code("hash-1", now) is None


async def test_unknown_link_code(store: Store) -> None:
    assert await store.take_link_code("never-made", 0.0) is None


async def test_concurrent_takes_of_one_code_have_one_winner(store: Store) -> None:
    account = await new_account(store)
    await store.put_link_code("hash-1", account.id, 100.0)
    taken = await asyncio.gather(*(store.take_link_code("hash-1", 50.0) for _ in range(20)))
    assert taken.count(account.id) == 1
    assert taken.count(None) == 19


async def test_web_session_lifecycle(store: Store) -> None:
    account = await new_account(store)
    await store.put_web_session("token-1", account.id, 100.0)
    session = await store.get_web_session("token-1", 50.0)
    assert session is not None and (session.account_id, session.expires_at) == (account.id, 100.0)
    assert await store.get_web_session("token-1", 100.0) is None  # expired, though stored
    assert await store.get_web_session("token-2", 50.0) is None
    await store.delete_web_session("token-1")
    assert await store.get_web_session("token-1", 50.0) is None
    await store.delete_web_session("token-1")  # deleting twice is fine


def expires_by_itself(store: Store) -> bool:
    """Whether the store leaves expired codes and sessions to its database: DynamoDB's
    TTL deletes them (eventually), so ``DynamoStore.purge_expired`` makes no call and
    returns 0, and its reads go on filtering on the expiry (documented there)."""
    return isinstance(store, DynamoStore)


async def test_purge_deletes_expired_codes_and_sessions_and_keeps_live_ones(store: Store) -> None:
    alice, bob = await new_account(store), await new_account(store, "bob")
    await store.put_link_code("code-old", alice.id, 90.0)
    await store.put_link_code("code-at-now", bob.id, 100.0)  # expiry <= now: expired
    await store.put_link_code("code-live", alice.id, 100.5)
    await store.put_web_session("session-old", alice.id, 10.0)
    await store.put_web_session("session-at-now", bob.id, 100.0)
    await store.put_web_session("session-live", bob.id, 200.0)
    version = await chat(store, key(account_owner(alice.id)), "hello")

    purged = await store.purge_expired(100.0)

    expired_codes, expired_sessions = ["code-old", "code-at-now"], ["session-old", "session-at-now"]
    if expires_by_itself(store):
        assert purged == 0
        # deleted nothing (a read with an earlier clock still finds it), refused by every read
        assert await store.get_web_session("session-old", 0.0) == WebSession(alice.id, 10.0)
        for token in expired_sessions:
            assert await store.get_web_session(token, 100.0) is None
        for code in expired_codes:
            assert await store.take_link_code(code, 100.0) is None
    else:
        assert purged == 4
        # gone, not just refused: even a read with an earlier clock finds nothing
        for token in expired_sessions:
            assert await store.get_web_session(token, 0.0) is None
        for code in expired_codes:
            assert await store.take_link_code(code, 0.0) is None
        assert await store.purge_expired(100.0) == 0  # nothing is counted twice
    # the live ones stay and still work; nothing else is touched
    assert await store.get_web_session("session-live", 100.0) == WebSession(bob.id, 200.0)
    assert await store.take_link_code("code-live", 100.0) == alice.id
    assert await store.get_account(alice.id) == alice
    assert await store.find_account("bob") == bob
    window = await store.load_window(key(account_owner(alice.id)), 10)
    assert (window.version, [t.text for t in window.turns]) == (version, ["hello"])


async def test_purge_of_an_empty_store(store: Store) -> None:
    assert await store.purge_expired(1e12) == 0


async def test_purge_alongside_new_sessions_and_codes(store: Store) -> None:
    """A purge running among other callers deletes only what had expired at its ``now``."""
    account = await new_account(store)
    for n in range(5):
        await store.put_web_session(f"old-{n}", account.id, 50.0)
    writes = [store.put_web_session(f"new-{n}", account.id, 500.0) for n in range(5)]
    codes = [store.put_link_code(f"code-{n}", account.id, 500.0) for n in range(5)]
    purged, *_ = await asyncio.gather(store.purge_expired(100.0), *writes, *codes)
    assert purged == (0 if expires_by_itself(store) else 5)
    for n in range(5):
        assert await store.get_web_session(f"new-{n}", 100.0) == WebSession(account.id, 500.0)
        assert await store.get_web_session(f"old-{n}", 100.0) is None
        assert await store.take_link_code(f"code-{n}", 100.0) == account.id


# -- preferences ----------------------------------------------------------------------


async def test_preferences_set_get_and_remove(store: Store) -> None:
    owner = guest_owner(ALICE_TG)
    assert await store.get_preferences(owner) == {}
    await store.set_preference(owner, "persona", "ada")
    await store.set_preference(owner, "theme", "dark")
    await store.set_preference(owner, "persona", "morrow")
    assert await store.get_preferences(owner) == {"persona": "morrow", "theme": "dark"}
    await store.set_preference(owner, "theme", None)
    await store.set_preference(owner, "never-set", None)
    assert await store.get_preferences(owner) == {"persona": "morrow"}


async def test_the_users_own_persona_is_kept_whole_per_owner_and_forgotten(
    store: Store,
) -> None:
    # the longest description the bot keeps, with line breaks, quotes and astral characters
    description = ('Élodie "the" botanist 🌿\n' * 60)[: userpersona.MAX_DESCRIPTION_CHARS]
    wanted = UserPersona("Élodie 🌿", description.strip())
    guest = guest_owner(ALICE_TG)
    kept = await userpersona.save(store, guest, wanted)
    assert kept == wanted
    assert userpersona.from_preferences(await store.get_preferences(guest)) == wanted
    account = await new_account(store)
    owner = account_owner(account.id)
    await store.link_identity(ALICE_TG, "Alice", account.id, 20.0)
    # like every preference it stays where it was set: the account's own applies
    link, prefs = await store.resolve_identity(ALICE_TG)
    assert link is not None and userpersona.from_preferences(prefs) == UserPersona()
    await userpersona.save(store, owner, UserPersona(description="only this"))
    assert await store.get_preferences(owner) == {userpersona.DESCRIPTION_PREFERENCE: "only this"}
    _, prefs = await store.resolve_identity(ALICE_TG)
    assert userpersona.from_preferences(prefs) == UserPersona(description="only this")
    await store.forget_owner(owner)
    assert userpersona.from_preferences(await store.get_preferences(owner)) == UserPersona()


async def test_preferences_belong_to_one_owner(store: Store) -> None:
    await store.set_preference(guest_owner(ALICE_TG), "persona", "ada")
    assert await store.get_preferences(guest_owner(BOB_TG)) == {}
    prefs = await store.get_preferences(guest_owner(ALICE_TG))
    prefs["persona"] = "changed by the caller"
    assert await store.get_preferences(guest_owner(ALICE_TG)) == {"persona": "ada"}


# -- conversations --------------------------------------------------------------------


async def test_empty_window(store: Store) -> None:
    window = await store.load_window(key(guest_owner(ALICE_TG)), 10)
    assert (window.version, window.turns, window.backend_state, window.summary) == (0, (), {}, "")


async def test_append_assigns_seq_and_returns_the_new_version(store: Store) -> None:
    conversation = key(guest_owner(ALICE_TG))
    version, stored = await store.append_turns(
        conversation, [*said("hi", at=5.0), *said("hello", role="assistant", at=6.0)], 0, 5.0
    )
    assert version > 0
    assert [(t.seq, t.role, t.text, t.author, t.created_at) for t in stored] == [
        (1, "user", "hi", "Alice", 5.0),
        (2, "assistant", "hello", "Ada", 6.0),
    ]
    version_2, stored_2 = await store.append_turns(conversation, said("again"), version, 7.0)
    assert version_2 > version and [t.seq for t in stored_2] == [3]
    window = await store.load_window(conversation, 10)
    assert window.version == version_2
    assert window.turns == (*stored, *stored_2)


@pytest.mark.parametrize(
    ("max_turns", "expected"),
    [
        pytest.param(3, [8, 9, 10], id="newest-three"),
        pytest.param(1, [10], id="newest-one"),
        pytest.param(10, list(range(1, 11)), id="exactly-all"),
        pytest.param(50, list(range(1, 11)), id="more-than-all"),
        pytest.param(0, [], id="none"),
    ],
)
async def test_window_is_the_newest_turns_oldest_first(
    store: Store, max_turns: int, expected: list[int]
) -> None:
    conversation = key(guest_owner(ALICE_TG))
    await chat(store, conversation, *(f"turn {n}" for n in range(1, 5)))
    version = (await store.load_window(conversation, 1)).version
    await store.append_turns(conversation, said(*(f"turn {n}" for n in range(5, 11))), version, 1)
    window = await store.load_window(conversation, max_turns)
    assert [turn.seq for turn in window.turns] == expected
    assert [turn.text for turn in window.turns] == [f"turn {n}" for n in expected]


async def test_windows_of_different_sizes_agree(store: Store) -> None:
    conversation = key(guest_owner(ALICE_TG))
    await chat(store, conversation, *(f"turn {n}" for n in range(1, 31)))
    small = await store.load_window(conversation, 5)
    large = await store.load_window(conversation, 20)
    again = await store.load_window(conversation, 5)
    assert large.turns[-5:] == small.turns == again.turns
    assert [t.seq for t in large.turns] == list(range(11, 31))


async def test_version_conflict_stores_nothing(store: Store) -> None:
    conversation = key(guest_owner(ALICE_TG))
    version = await chat(store, conversation, "first")
    with pytest.raises(VersionConflict):
        await store.append_turns(conversation, said("stale"), version - 1, 2.0)
    with pytest.raises(VersionConflict):
        await store.append_turns(conversation, said("future"), version + 1, 2.0)
    window = await store.load_window(conversation, 10)
    assert window.version == version
    assert [t.text for t in window.turns] == ["first"]


async def test_first_append_must_expect_version_zero(store: Store) -> None:
    conversation = key(guest_owner(ALICE_TG))
    with pytest.raises(VersionConflict):
        await store.append_turns(conversation, said("hi"), 3, 1.0)
    assert await store.export_owner(conversation.owner) == []


async def test_concurrent_appends_at_one_version_have_one_winner(store: Store) -> None:
    conversation = key(guest_owner(ALICE_TG))
    version = await chat(store, conversation, "start")
    results = await asyncio.gather(
        *(store.append_turns(conversation, said(f"racer {n}"), version, 2.0) for n in range(10)),
        return_exceptions=True,
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(r, VersionConflict) for r in results if r not in winners)
    assert len(await texts_in(store, conversation)) == 2


async def test_concurrent_appends_to_many_conversations(store: Store) -> None:
    conversations = [key(guest_owner(Identity("web", str(n)))) for n in range(50)]
    await asyncio.gather(*(chat(store, c, "a", "b", "c") for c in conversations))
    for conversation in conversations:
        window = await store.load_window(conversation, 10)
        assert [(t.seq, t.text) for t in window.turns] == [(1, "a"), (2, "b"), (3, "c")]


async def test_reset_archives_and_starts_afresh(store: Store) -> None:
    conversation = key(guest_owner(ALICE_TG))
    await chat(store, conversation, "before", "reset")
    await store.reset_conversation(conversation)

    window = await store.load_window(conversation, 10)
    assert window.turns == ()
    _, stored = await store.append_turns(conversation, said("after"), window.version, 3.0)
    assert [t.seq for t in stored] == [1]
    records = await store.export_owner(conversation.owner)
    assert [(r.archived, [t.text for t in r.turns]) for r in records] == [
        (True, ["before", "reset"]),
        (False, ["after"]),
    ]


async def test_versions_never_go_back_across_resets(store: Store) -> None:
    conversation = key(guest_owner(ALICE_TG))
    seen = [await chat(store, conversation, "one", "two")]
    await store.reset_conversation(conversation)
    seen.append((await store.load_window(conversation, 1)).version)
    with pytest.raises(VersionConflict):  # read before the reset
        await store.append_turns(conversation, said("stale"), seen[0], 2.0)
    seen.append(await chat(store, conversation, "three"))
    await store.reset_conversation(conversation)
    seen.append((await store.load_window(conversation, 1)).version)
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    for stale in seen[:-1]:
        with pytest.raises(VersionConflict):
            await store.append_turns(conversation, said("stale"), stale, 2.0)


async def test_reset_without_conversation_is_a_no_op(store: Store) -> None:
    conversation = key(guest_owner(ALICE_TG))
    await store.reset_conversation(conversation)
    assert (await store.load_window(conversation, 10)).version == 0
    assert await store.export_owner(conversation.owner) == []


async def test_reset_twice_archives_once(store: Store) -> None:
    conversation = key(guest_owner(ALICE_TG))
    await chat(store, conversation, "hi")
    await store.reset_conversation(conversation)
    await store.reset_conversation(conversation)
    assert len(await store.export_owner(conversation.owner)) == 1


async def test_conversation_state_round_trips(store: Store) -> None:
    conversation = key(guest_owner(ALICE_TG))
    version = await chat(store, conversation, "hi")
    state = {"chat_id": "abc", "turns": 3, "nested": {"ok": True, "list": [1, 2]}}
    version = await store.save_conversation_state(
        conversation, version, backend_state=state, summary="they met"
    )
    window = await store.load_window(conversation, 10)
    assert (window.version, window.backend_state, window.summary) == (version, state, "they met")

    version = await store.save_conversation_state(conversation, version, summary="later")
    window = await store.load_window(conversation, 10)
    assert (window.backend_state, window.summary) == (state, "later")

    await store.save_conversation_state(conversation, version, backend_state={})
    window = await store.load_window(conversation, 10)
    assert (window.backend_state, window.summary) == ({}, "later")
    assert [t.text for t in window.turns] == ["hi"]


async def test_conversation_state_is_checked_like_appends(store: Store) -> None:
    conversation = key(guest_owner(ALICE_TG))
    version = await chat(store, conversation, "hi")
    with pytest.raises(VersionConflict):
        await store.save_conversation_state(conversation, version - 1, backend_state={"x": 1})
    new_version = await store.save_conversation_state(conversation, version, summary="s")
    assert new_version > version
    with pytest.raises(VersionConflict):
        await store.append_turns(conversation, said("stale"), version, 2.0)


async def test_conversation_state_before_any_turn(store: Store) -> None:
    conversation = key(guest_owner(ALICE_TG))
    version = await store.save_conversation_state(conversation, 0, backend_state={"chat": "1"})
    window = await store.load_window(conversation, 10)
    assert (window.version, window.turns, window.backend_state) == (version, (), {"chat": "1"})
    _, stored = await store.append_turns(conversation, said("hi", at=7.0), version, 7.0)
    assert [t.seq for t in stored] == [1]
    (record,) = await store.export_owner(conversation.owner)
    assert record.started_at == 7.0


async def test_state_is_reset_with_the_conversation(store: Store) -> None:
    conversation = key(guest_owner(ALICE_TG))
    version = await chat(store, conversation, "hi")
    await store.save_conversation_state(conversation, version, backend_state={"a": 1}, summary="s")
    await store.reset_conversation(conversation)
    window = await store.load_window(conversation, 10)
    assert (window.backend_state, window.summary) == ({}, "")


async def test_window_state_is_the_callers_copy(store: Store) -> None:
    conversation = key(guest_owner(ALICE_TG))
    version = await chat(store, conversation, "hi")
    await store.save_conversation_state(conversation, version, backend_state={"n": 1})
    window = await store.load_window(conversation, 10)
    window.backend_state["n"] = 99
    assert (await store.load_window(conversation, 10)).backend_state == {"n": 1}


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(key(guest_owner(BOB_TG)), id="other-owner"),
        pytest.param(key(guest_owner(ALICE_TG), persona="morrow"), id="other-persona"),
        pytest.param(key(guest_owner(ALICE_TG), scope="telegram:-100"), id="other-scope"),
        pytest.param(key(OwnerId("account:x")), id="other-owner-kind"),
    ],
)
async def test_conversations_are_isolated_by_key(store: Store, other: ConversationKey) -> None:
    mine = key(guest_owner(ALICE_TG))
    await chat(store, mine, "mine")
    await chat(store, other, "theirs", "more of theirs")
    assert await texts_in(store, mine) == ["mine"]
    assert await texts_in(store, other) == ["theirs", "more of theirs"]
    await store.reset_conversation(other)
    assert await texts_in(store, mine) == ["mine"]


async def test_export_lists_current_and_archived_with_every_turn(store: Store) -> None:
    owner = guest_owner(ALICE_TG)
    await chat(store, key(owner), *(f"old {n}" for n in range(60)))
    await store.reset_conversation(key(owner))
    await chat(store, key(owner), "new")
    await chat(store, key(owner, persona="morrow"), "other persona")
    await chat(store, key(guest_owner(BOB_TG)), "not alice's")

    records = await store.export_owner(owner)
    summary = sorted((r.persona_id, r.scope, r.archived, len(r.turns)) for r in records)
    assert summary == [
        ("ada", "direct", False, 1),
        ("ada", "direct", True, 60),
        ("morrow", "direct", False, 1),
    ]
    archived = next(r for r in records if r.archived)
    assert [t.seq for t in archived.turns] == list(range(1, 61))
    assert archived.started_at == 1.0
    assert await store.export_owner(guest_owner(Identity("web", "nobody"))) == []


async def test_forget_owner_deletes_only_that_owners_data(store: Store) -> None:
    alice, bob = guest_owner(ALICE_TG), guest_owner(BOB_TG)
    await chat(store, key(alice), "alice 1")
    await store.reset_conversation(key(alice))
    await chat(store, key(alice, scope="telegram:-100"), "alice in group")
    await chat(store, key(bob, scope="telegram:-100"), "bob in group")
    await store.set_preference(alice, "persona", "ada")
    await store.set_preference(bob, "persona", "morrow")

    await store.forget_owner(alice)

    assert await store.export_owner(alice) == []
    assert await store.get_preferences(alice) == {}
    assert await texts_in(store, key(alice, scope="telegram:-100")) == []
    assert await texts_in(store, key(bob, scope="telegram:-100")) == ["bob in group"]
    assert await store.get_preferences(bob) == {"persona": "morrow"}
    # the owner can start again
    await chat(store, key(alice), "fresh start")
    assert await texts_in(store, key(alice)) == ["fresh start"]


# -- token usage ----------------------------------------------------------------------


async def test_usage_is_zero_until_recorded(store: Store) -> None:
    assert await store.get_usage(guest_owner(ALICE_TG)) == Usage(0, 0, 0)


async def test_usage_adds_up_per_owner(store: Store) -> None:
    alice, bob = guest_owner(ALICE_TG), guest_owner(BOB_TG)
    await store.add_usage(alice, 100, 20)
    await store.add_usage(alice, 50, 5)
    await store.add_usage(bob, 7, 3)
    assert await store.get_usage(alice) == Usage(prompt_tokens=150, completion_tokens=25, replies=2)
    assert await store.get_usage(bob) == Usage(7, 3, 1)
    assert await store.get_usage(account_owner("x")) == Usage()


async def test_concurrent_usage_adds_all_count(store: Store) -> None:
    owner = guest_owner(ALICE_TG)
    await asyncio.gather(*(store.add_usage(owner, n, 1) for n in range(30)))
    assert await store.get_usage(owner) == Usage(sum(range(30)), 30, 30)


async def test_forget_owner_deletes_only_that_owners_usage(store: Store) -> None:
    alice, bob = guest_owner(ALICE_TG), guest_owner(BOB_TG)
    await store.add_usage(alice, 10, 2)
    await store.add_usage(bob, 4, 1)
    await store.forget_owner(alice)
    assert await store.get_usage(alice) == Usage()
    assert await store.get_usage(bob) == Usage(4, 1, 1)
    await store.add_usage(alice, 1, 1)
    assert await store.get_usage(alice) == Usage(1, 1, 1)


async def test_delete_account_deletes_its_usage(store: Store) -> None:
    account, other = await new_account(store, "alice"), await new_account(store, "bob")
    await store.add_usage(account_owner(account.id), 10, 2)
    await store.add_usage(account_owner(other.id), 3, 3)
    await store.delete_account(account.id)
    assert await store.get_usage(account_owner(account.id)) == Usage()
    assert await store.get_usage(account_owner(other.id)) == Usage(3, 3, 1)


# -- read_and_append: what a new message does, in one call --------------------------------


async def test_read_and_append_reads_then_stores_the_turn(store: Store) -> None:
    conversation = key(guest_owner(ALICE_TG))
    epoch, window, version, stored = await store.read_and_append(conversation, 10, said("a"), 1.0)
    assert (epoch, window.version, window.turns, version) == (0, 0, (), 1)
    assert [(t.seq, t.text) for t in stored] == [(1, "a")]
    await chat(store, conversation, "b")
    epoch, window, version, stored = await store.read_and_append(
        conversation, 1, said("c"), 2.0, take_lease=Lease("w1", 100.0)
    )
    # the window as it was before the append: the newest max_turns turns
    assert (epoch, window.version, [t.text for t in window.turns]) == (0, 2, ["b"])
    assert (version, [(t.seq, t.text) for t in stored]) == (3, [(3, "c")])
    assert await texts_in(store, conversation) == ["a", "b", "c"]
    with pytest.raises(ConversationBusy):  # the lease was taken with the turn
        await store.append_turns(conversation, said("d"), 3, 3.0, take_lease=Lease("w2", 200.0))


async def test_read_and_append_refused_by_a_lease_stores_nothing(store: Store) -> None:
    conversation = key(guest_owner(ALICE_TG))
    await store.append_turns(conversation, said("a"), 0, 1.0, take_lease=Lease("w1", 100.0))
    with pytest.raises(ConversationBusy):
        await store.read_and_append(conversation, 10, said("b"), 2.0, take_lease=Lease("w2", 200.0))
    assert await texts_in(store, conversation) == ["a"]


async def test_read_and_append_for_a_deleted_owner_stores_nothing(store: Store) -> None:
    account = await new_account(store)
    conversation = key(account_owner(account.id))
    await chat(store, conversation, "hello")
    await store.delete_account(account.id)
    epoch, window, version, stored = await store.read_and_append(conversation, 10, said("x"), 2.0)
    assert (epoch, window.turns, stored, version) == (None, (), (), window.version)
    assert await texts_in(store, conversation) == []


async def test_read_and_append_in_a_forgotten_owners_new_epoch(store: Store) -> None:
    conversation = key(guest_owner(ALICE_TG))
    await chat(store, conversation, "before")
    await store.forget_owner(conversation.owner)
    epoch, window, _, _ = await store.read_and_append(conversation, 10, said("after"), 2.0)
    assert (epoch, window.turns) == (await store.owner_epoch(conversation.owner), ())
    assert await texts_in(store, conversation) == ["after"]


async def test_concurrent_read_and_appends_lose_and_repeat_nothing(store: Store) -> None:
    conversation = key(guest_owner(ALICE_TG))

    async def send(text: str) -> str | None:
        try:
            await store.read_and_append(conversation, 10, said(text), 1.0)
        except VersionConflict:  # (a store of two trips only)
            return None
        return text

    sent = await asyncio.gather(*(send(f"m{i}") for i in range(6)))
    window = await store.load_window(conversation, 10)
    assert sorted(t.text for t in window.turns) == sorted(t for t in sent if t is not None)
    assert [t.seq for t in window.turns] == list(range(1, len(window.turns) + 1))
    assert len(window.turns) >= 1
