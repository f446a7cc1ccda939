"""The accounts service over MemoryStore and SqliteStore: sign up, log in, sessions,
throttling, rehash, link codes, unlink, export and delete."""

from __future__ import annotations

import json

import pytest

from auth import (
    TEST_PARAMS,
    AccountService,
    Argon2Params,
    LoginFailed,
    LoginThrottled,
    PasswordHasher,
    hash_token,
)
from bot.errors import UsernameTaken
from bot.linking import hash_link_code
from bot.messages import ConversationKey, Identity, NewTurn, account_owner
from bot.store.base import Store
from tests.support.clocks import Clock

PASSWORD = "correct horse battery"


async def test_sign_up_then_log_in(service: AccountService) -> None:
    account = await service.sign_up("Ada", PASSWORD)
    assert account.username == "Ada"
    assert account.password_hash.startswith("$argon2id$")
    found, session = await service.log_in("ada", PASSWORD, address="127.0.0.1")
    assert found.id == account.id
    assert (await service.session_account(session.token)) == found


@pytest.mark.parametrize(
    "second",
    [
        pytest.param("ada", id="lower"),
        pytest.param("ADA", id="upper"),
        pytest.param("aDa", id="mixed"),
    ],
)
async def test_usernames_are_unique_in_any_case(service: AccountService, second: str) -> None:
    await service.sign_up("Ada", PASSWORD)
    with pytest.raises(UsernameTaken):
        await service.sign_up(second, "another good passphrase")


async def test_unknown_user_and_wrong_password_fail_alike(service: AccountService) -> None:
    await service.sign_up("ada", PASSWORD)
    with pytest.raises(LoginFailed) as unknown:
        await service.log_in("nobody", PASSWORD, address="a")
    with pytest.raises(LoginFailed) as wrong:
        await service.log_in("ada", "not the password", address="b")
    assert str(unknown.value) == str(wrong.value)


class CountingHasher(PasswordHasher):
    """A real hasher that counts its argon2 verifies and notes the hashes they check."""

    def __init__(self) -> None:
        super().__init__(TEST_PARAMS)
        self.verified: list[str] = []

    def _verify(self, password_hash: str, password: str) -> bool:
        self.verified.append(password_hash)
        return super()._verify(password_hash, password)


async def test_unknown_user_and_wrong_password_cost_the_same_work(store: Store) -> None:
    """Both paths run exactly one argon2 verify, against a hash of the same parameters,
    so they cost the same (the time itself is measured in bench/login.py, not here)."""
    hasher = CountingHasher()
    service = AccountService(store, hasher=hasher)
    await service.sign_up("ada", PASSWORD)
    work = {}
    for name in ("nobody", "ada", "nobody"):
        hasher.verified.clear()
        with pytest.raises(LoginFailed):
            await service.log_in(name, "not the password", address=name)
        work[name] = list(hasher.verified)
    assert len(work["nobody"]) == len(work["ada"]) == 1
    unknown, real = work["nobody"][0], work["ada"][0]
    assert unknown != real  # the unknown name is checked against a dummy hash...
    assert not hasher.needs_rehash(unknown) and not hasher.needs_rehash(real)  # ...as costly


async def test_log_in_rehashes_when_the_parameters_changed(store: Store, clock: Clock) -> None:
    await AccountService(store, hasher=PasswordHasher(TEST_PARAMS)).sign_up("ada", PASSWORD)
    stronger = Argon2Params(time_cost=2, memory_cost_kib=128)
    service = AccountService(store, hasher=PasswordHasher(stronger), clock=clock)
    await service.log_in("ada", PASSWORD, address="x")
    account = await store.find_account("ada")
    assert account is not None and "$m=128,t=2,p=1$" in account.password_hash
    await service.log_in("ada", PASSWORD, address="x")  # and the new hash works


async def test_sessions_are_stored_hashed_and_expire(
    service: AccountService, store: Store, clock: Clock
) -> None:
    await service.sign_up("ada", PASSWORD)
    _, session = await service.log_in("ada", PASSWORD, address="x")
    assert await store.get_web_session(session.token, clock()) is None
    assert await store.get_web_session(hash_token(session.token), clock()) is not None
    clock.advance(service.sessions.ttl + 1)
    assert await service.session_account(session.token) is None


async def test_login_rotates_and_logout_revokes(service: AccountService) -> None:
    await service.sign_up("ada", PASSWORD)
    _, first = await service.log_in("ada", PASSWORD, address="x")
    _, second = await service.log_in("ada", PASSWORD, address="x", replacing=first.token)
    assert second.token != first.token
    assert await service.session_account(first.token) is None
    await service.log_out(second.token)
    assert await service.session_account(second.token) is None


@pytest.mark.parametrize(
    ("name", "address"),
    [
        pytest.param("ada", "1.1.1.{n}", id="per-account"),
        pytest.param("user{n}", "2.2.2.2", id="per-address"),
    ],
)
async def test_failures_throttle_logins(
    service: AccountService, clock: Clock, name: str, address: str
) -> None:
    await service.sign_up("ada", PASSWORD)
    limit = 10 if name == "ada" else 30
    for n in range(limit):
        with pytest.raises(LoginFailed):
            await service.log_in(name.format(n=n), "wrong password!", address=address.format(n=n))
    with pytest.raises(LoginThrottled) as refused:
        await service.log_in("ada", PASSWORD, address=address.format(n=99 if name == "ada" else 0))
    assert 0 < refused.value.retry_after <= 900
    clock.advance(901)
    await service.log_in("ada", PASSWORD, address=address.format(n=0))


async def test_link_codes_are_stored_hashed(
    service: AccountService, store: Store, clock: Clock
) -> None:
    account = await service.sign_up("ada", PASSWORD)
    code = await service.create_link_code(account.id)
    assert await store.take_link_code(code, clock()) is None
    assert await store.take_link_code(hash_link_code(code), clock()) == account.id


async def test_an_account_holds_at_most_five_live_link_codes(
    service: AccountService, store: Store, clock: Clock
) -> None:
    """Issue 14 item 5: making codes in a loop fills nothing; the newest five work."""
    account = await service.sign_up("ada", PASSWORD)
    codes = []
    for _ in range(50):
        codes.append(await service.create_link_code(account.id))
        clock.advance(0.01)
    live = [c for c in codes if await store.peek_link_code(hash_link_code(c), clock())]
    assert live == codes[-5:]


async def test_unlink_only_touches_the_accounts_own_identities(
    service: AccountService, store: Store, clock: Clock
) -> None:
    ada = await service.sign_up("ada", PASSWORD)
    bob = await service.sign_up("bob", PASSWORD)
    identity = Identity("telegram", "42")
    await store.link_identity(identity, "Ada T", ada.id, clock())
    assert not await service.unlink(bob.id, "telegram", "42")
    assert (await store.get_identity(identity)) is not None
    assert await service.unlink(ada.id, "telegram", "42")
    assert await store.get_identity(identity) is None
    assert await service.identities(ada.id) == []


async def test_export_has_everything_but_the_password_hash(
    service: AccountService, store: Store, clock: Clock
) -> None:
    ada = await service.sign_up("ada", PASSWORD)
    await store.link_identity(Identity("discord", "7"), "Ada D", ada.id, clock())
    key = ConversationKey(account_owner(ada.id), "ada", "direct")
    await store.append_turns(key, [NewTurn("user", "hello <b>", "ada", clock())], 0, clock())
    data = await service.export(ada)
    text = json.dumps(data)
    assert ada.password_hash not in text and "password" not in text
    assert data["account"]["username"] == "ada"
    assert data["identities"][0]["platform"] == "discord"
    assert data["conversations"][0]["turns"][0]["text"] == "hello <b>"
    assert data["activity"] == []
    assert await service.unlink(ada.id, "discord", "7")
    activity = (await service.export(ada))["activity"]
    assert [entry["text"] for entry in activity] == [
        "The Discord account Ada D (id 7) was unlinked from your account on the account page."
    ]


async def test_delete_account_needs_the_password(
    service: AccountService, store: Store, clock: Clock
) -> None:
    ada = await service.sign_up("ada", PASSWORD)
    await store.link_identity(Identity("telegram", "1"), "Ada", ada.id, clock())
    with pytest.raises(LoginFailed):
        await service.delete_account(ada, "not the password", address="x")
    assert await store.get_account(ada.id) is not None
    await service.delete_account(ada, PASSWORD, address="x")
    assert await store.get_account(ada.id) is None
    assert await store.get_identity(Identity("telegram", "1")) is None


def test_default_throttle_is_10_per_account_30_per_address(store: Store) -> None:
    throttle = AccountService(store).throttle
    assert throttle.limit_for("account:ada") == 10
    assert throttle.limit_for("address:127.0.0.1") == 30


async def test_export_has_attachments_metadata_and_transcripts(
    service: AccountService, store: Store, clock: Clock
) -> None:
    from bot.messages import Attachment, AttachmentKind

    ada = await service.sign_up("ada", PASSWORD)
    key = ConversationKey(account_owner(ada.id), "ada", "direct")
    voice = Attachment(AttachmentKind.AUDIO, "audio/ogg", 900, "v.ogg", "see you at nine")
    photo = Attachment(AttachmentKind.IMAGE, "image/png", 70, "cat.png", "", 8, 4, image=b"PNG")
    turn = NewTurn("user", "", "ada", clock(), attachments=(voice, photo))
    await store.append_turns(key, [turn, NewTurn("assistant", "ok", "Ada", clock())], 0, clock())
    turns = (await service.export(ada))["conversations"][0]["turns"]
    assert turns[0]["attachments"] == [
        {"kind": "audio", "media_type": "audio/ogg", "size": 900, "filename": "v.ogg",
         "text": "see you at nine", "width": 0, "height": 0},
        {"kind": "image", "media_type": "image/png", "size": 70, "filename": "cat.png",
         "text": "", "width": 8, "height": 4},
    ]  # fmt: skip
    assert "attachments" not in turns[1]
