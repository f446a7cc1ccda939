"""DynamoStore beyond the contract: expiry, the table admin, key layout, and interrupted
or refused work (injected through botocore's event hooks: see ``test_dynamo_engine``)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiobotocore.awsrequest import AioAWSResponse

import tests.store.test_dynamo_engine as engine_tests
from bot.errors import PersonaBridgeError, StoreError, StoreUnavailable
from bot.messages import ConversationKey, Identity, NewTurn, OwnerId, account_owner, guest_owner
from bot.store.dynamo import DynamoStore, check_table, create_table, keys

ALICE = Identity("telegram", "1001")


def said(*texts: str) -> list[NewTurn]:
    return [NewTurn("user", text, "Alice", 1.0) for text in texts]


async def chat(store: DynamoStore, key: ConversationKey, *texts: str) -> int:
    """Append the texts, in one call (the contract suite appends them one by one)."""
    version = (await store.load_window(key, 1)).version
    version, _ = await store.append_turns(key, said(*texts), version, 1.0)
    return version


async def texts(store: DynamoStore, key: ConversationKey) -> list[str]:
    return [turn.text for turn in (await store.load_window(key, 100)).turns]


def direct(owner: OwnerId, persona: str = "ada") -> ConversationKey:
    return ConversationKey(owner, persona, "direct")


# -- expiry ---------------------------------------------------------------------------


async def test_expired_codes_and_sessions_are_refused_though_still_stored(
    dynamo_stores: Any,
) -> None:
    async with dynamo_stores() as store:
        account = await store.create_account("alice", "h", 1.0)
        await store.put_link_code("code", account.id, 100.0)
        await store.put_web_session("session", account.id, 100.0)

        assert await store.take_link_code("code", 100.0) is None
        assert await store.get_web_session("session", 150.0) is None
        # DynamoDB's TTL has not removed them (it takes its time): the reads refused them
        code = await store.table.get(keys.link_code("code"))
        session = await store.table.get(keys.web_session("session"))
        assert code is not None and code["expires_at"] == 100
        assert session is not None
        # and they were refused for their age alone
        assert await store.take_link_code("code", 99.0) == account.id
        assert await store.get_web_session("session", 99.0) is not None


# -- the table ------------------------------------------------------------------------


async def test_create_table_makes_a_ready_table_and_is_idempotent(dynamo_stores: Any) -> None:
    async with dynamo_stores() as store:
        name = f"{store.table.name}-made"
        async with dynamo_stores(table=name) as made:
            first = await create_table(made, poll_interval=0.01)
            assert first.ok, str(first)
            assert {"created (on-demand capacity)", "TTL enabled on 'expires_at'"} <= set(
                first.notes
            )
            again = await create_table(made, poll_interval=0.01)
            assert again.ok and not {"created (on-demand capacity)"} & set(again.notes)
            report = await check_table(made)
            assert report.ok and "TTL enabled on 'expires_at'" in str(report), str(report)
            await made.ping()
            await made.table.call("DeleteTable", TableName=name)


async def test_check_names_what_is_wrong(dynamo_stores: Any) -> None:
    async with dynamo_stores() as store:
        name = f"{store.table.name}-bare"
        async with dynamo_stores(table=name) as bare:
            missing = await check_table(bare)
            assert not missing.ok and "personabridge db create" in missing.problems[0]
            await bare.table.call(
                "CreateTable",
                TableName=name,
                BillingMode="PAY_PER_REQUEST",
                KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            )
            report = await check_table(bare)
            assert not report.ok
            assert any("key schema" in problem for problem in report.problems)
            assert any("TTL is disabled" in problem for problem in report.problems)
            await bare.table.call("DeleteTable", TableName=name)


async def test_a_missing_table_is_a_clear_error(dynamo_stores: Any) -> None:
    async with dynamo_stores() as store, dynamo_stores(table=f"{store.table.name}-x") as lost:
        with pytest.raises(StoreUnavailable, match="personabridge db create"):
            await lost.ping()
        with pytest.raises(StoreUnavailable, match="does not exist"):
            await lost.load_window(direct(guest_owner(ALICE)), 10)


# -- the layout -----------------------------------------------------------------------


async def test_separators_in_values_never_make_keys_collide(dynamo_stores: Any) -> None:
    async with dynamo_stores() as store:
        owner = OwnerId("guest:web:a#b")
        one = ConversationKey(owner, "ada#x", "y")
        other = ConversationKey(owner, "ada", "x#y")
        escaped = ConversationKey(owner, "ada%23x", "y")
        await chat(store, one, "one")
        await chat(store, other, "other")
        await chat(store, escaped, "escaped")
        assert await texts(store, one) == ["one"]
        assert await texts(store, other) == ["other"]
        assert await texts(store, escaped) == ["escaped"]
        assert len(await store.export_owner(owner)) == 3
        await store.forget_owner(owner)
        assert await store.export_owner(owner) == []


async def test_a_window_is_right_with_stray_turns_above_the_current_conversation(
    dynamo_stores: Any,
) -> None:
    """Turns copied by a link that was interrupted sort above the current conversation
    (a later generation): they are never shown, and the window is still complete."""
    async with dynamo_stores() as store:
        key = direct(guest_owner(ALICE))
        await chat(store, key, *(f"turn {n}" for n in range(1, 6)))
        stray = {**keys.turn(key, keys.native_cid(7, "stray"), 1), "seq": 1, "role": "user"}
        await store.table.batch_write(
            puts=[{**stray, "text": "stray", "author": "x", "created_at": 1.0}]
        )
        window = await store.load_window(key, 3)  # nothing prefetched: one Query, then two
        assert [t.text for t in window.turns] == ["turn 3", "turn 4", "turn 5"]
        exported = await store.export_owner(key.owner)
        assert [t.text for r in exported for t in r.turns] == [f"turn {n}" for n in range(1, 6)]


async def test_more_turns_than_one_transaction_holds_are_refused_whole(
    dynamo_stores: Any,
) -> None:
    async with dynamo_stores() as store:
        key = direct(guest_owner(ALICE))
        with pytest.raises(StoreError, match="at most"):
            await store.append_turns(key, said(*(str(n) for n in range(91))), 0, 1.0)
        assert (await store.load_window(key, 10)).version == 0


# -- interrupted work is finished by doing it again ------------------------------------


WRITES = ("TransactWriteItems", "BatchWriteItem", "PutItem", "UpdateItem", "DeleteItem")


class FailAt:
    """Fails the ``n``-th write the store sends (1-based) with an error botocore does
    not retry: what is stored is then what a crash just before that write leaves. (A
    crash at a read leaves what one at the next write does: reads change nothing.)"""

    def __init__(self, n: int) -> None:
        self.n, self.sent = n, 0

    def __call__(self, request: Any, **_: object) -> AioAWSResponse | None:
        target = request.headers.get("X-Amz-Target", b"")
        if not (target.decode() if isinstance(target, bytes) else target).endswith(WRITES):
            return None
        self.sent += 1
        if self.sent != self.n:
            return None
        return engine_tests.error_response(request.url, "AccessDeniedException", message="cut")


async def _guest_with_history(store: DynamoStore, guest: OwnerId, account: OwnerId) -> None:
    await chat(store, direct(guest), "old 1", "old 2")
    await store.reset_conversation(direct(guest))
    version = await chat(store, direct(guest), "cur 1", "cur 2", "cur 3")
    await store.save_conversation_state(direct(guest), version, summary="s")
    await chat(store, direct(guest, "morrow"), "guest to morrow")
    await chat(store, direct(account, "morrow"), "account to morrow")
    await store.set_preference(guest, "persona", "morrow")


async def _moved_completely(store: DynamoStore, guest: OwnerId, account: OwnerId) -> None:
    window = await store.load_window(direct(account), 10)
    assert [t.text for t in window.turns] == ["cur 1", "cur 2", "cur 3"]
    assert window.summary == "s"
    assert await texts(store, direct(account, "morrow")) == ["account to morrow"]
    exported = await store.export_owner(account)
    every = sorted(t.text for r in exported for t in r.turns)
    assert every == sorted(
        ["old 1", "old 2", "cur 1", "cur 2", "cur 3", "guest to morrow", "account to morrow"]
    )
    assert sorted((r.persona_id, r.archived) for r in exported) == [
        ("ada", False),
        ("ada", True),
        ("morrow", False),
        ("morrow", True),
    ]
    assert await store.export_owner(guest) == []
    assert await texts(store, direct(guest)) == []
    # preferences never move (the account's own win); the guest keeps its own
    assert await store.get_preferences(account) == {}
    assert await store.get_preferences(guest) == {"persona": "morrow"}
    # the moved conversation goes on where it was
    _, stored = await store.append_turns(direct(account), said("more"), window.version, 2.0)
    assert [t.seq for t in stored] == [4]


async def test_a_link_cut_short_anywhere_is_completed_by_linking_again(
    dynamo_stores: Any,
) -> None:
    """The link is cut at its first write; in another try at its second; ... (each try
    with its own client, all at once): each time, linking again moves everything once,
    loses nothing, duplicates nothing. The last tries are not cut at all. (A table per
    try: moto's Query reads the whole table.)"""

    async def cut_at(n: int) -> bool:
        async with dynamo_stores() as store:
            identity = Identity("telegram", f"user-{n}")
            guest = guest_owner(identity)
            account = await store.create_account(f"user-{n}", "h", 1.0)
            owner = account_owner(account.id)
            await _guest_with_history(store, guest, owner)
            fault = FailAt(n)
            store.table.events.register("before-send.dynamodb", fault)
            try:
                await store.link_identity(identity, "Alice", account.id, 5.0)
                cut = False
            except PersonaBridgeError:
                cut = True
            finally:
                store.table.events.unregister("before-send.dynamodb", fault)
            if cut:
                await store.link_identity(identity, "Alice", account.id, 6.0)
            await _moved_completely(store, guest, owner)
            return cut

    cuts = await asyncio.gather(*(cut_at(n) for n in range(1, 17)))
    assert cuts[:10] == [True] * 10  # a link is many writes: each was cut once
    assert not cuts[-1]


async def test_an_account_deletion_cut_short_is_finished_by_the_next(dynamo_stores: Any) -> None:
    async with dynamo_stores() as store:
        for n in range(1, 100):
            account = await store.create_account(f"user-{n}", "h", 1.0)
            owner = account_owner(account.id)
            identity = Identity("telegram", f"u{n}")
            await store.link_identity(identity, "Alice", account.id, 2.0)
            await store.put_web_session(f"session-{n}", account.id, 1e12)
            await store.put_link_code(f"code-{n}", account.id, 1e12)
            await chat(store, direct(owner), *(f"turn {i}" for i in range(30)))
            await store.set_preference(owner, "persona", "ada")
            fault = FailAt(n)
            store.table.events.register("before-send.dynamodb", fault)
            try:
                await store.delete_account(account.id)
                completed = True
            except PersonaBridgeError:
                completed = False
            finally:
                store.table.events.unregister("before-send.dynamodb", fault)
            if not completed:
                await store.delete_account(account.id)
            assert await store.get_account(account.id) is None
            assert await store.find_account(f"user-{n}") is None
            assert await store.get_identity(identity) is None
            assert await store.get_web_session(f"session-{n}", 0.0) is None
            assert await store.take_link_code(f"code-{n}", 0.0) is None
            assert await store.export_owner(owner) == []
            leftovers = await store.table.query(
                None,
                KeyConditionExpression="PK = :pk",
                ExpressionAttributeValues={":pk": {"S": keys.owner_pk(owner)}},
            )
            assert leftovers == []
            if completed:
                break
        assert n > 4, n


# -- what DynamoDB leaves undone is sent again ------------------------------------------


def _answer(url: str, body: dict[str, object], status: int = 200) -> AioAWSResponse:
    headers = {"content-type": "application/x-amz-json-1.0", "x-amzn-requestid": "injected"}
    return AioAWSResponse(url, status, headers, engine_tests._Body(json.dumps(body).encode()))


async def test_unprocessed_batch_items_are_sent_again(dynamo_stores: Any) -> None:
    async with dynamo_stores() as store:
        owner = guest_owner(ALICE)
        await chat(store, direct(owner), *(f"turn {n}" for n in range(30)))
        left = {"times": 2}

        def nothing_done(request: Any, **_: object) -> AioAWSResponse | None:
            if left["times"] == 0:
                return None
            left["times"] -= 1
            sent = json.loads(request.body)
            return _answer(request.url, {"UnprocessedItems": sent["RequestItems"]})

        store.table.events.register("before-send.dynamodb.BatchWriteItem", nothing_done)
        await store.forget_owner(owner)
        assert left["times"] == 0 and store.stats.resends >= 2
        assert await store.export_owner(owner) == []


async def test_a_transaction_cancelled_by_throttling_is_sent_again(dynamo_stores: Any) -> None:
    async with dynamo_stores() as store:
        key = direct(guest_owner(ALICE))
        left = {"times": 2}

        def throttled(request: Any, **_: object) -> AioAWSResponse | None:
            if left["times"] == 0:
                return None
            left["times"] -= 1
            actions = json.loads(request.body)["TransactItems"]
            reasons = [{"Code": "ThrottlingError", "Message": "slow down"}] + [
                {"Code": "None"} for _ in actions[1:]
            ]
            body = {
                "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                "message": "Transaction cancelled",
                "CancellationReasons": reasons,
            }
            return _answer(request.url, body, status=400)

        store.table.events.register("before-send.dynamodb.TransactWriteItems", throttled)
        version, _ = await store.append_turns(key, said("hello"), 0, 1.0)
        assert left["times"] == 0 and store.stats.resends == 2
        assert await texts(store, key) == ["hello"] and version == 1
