"""A worker trusts a session it checked live for a few seconds (auth.session_cache):
a web message then costs no session reads, and a session revoked on another worker
stops working here once those seconds have passed."""

from __future__ import annotations

from dataclasses import dataclass, field

from auth import TEST_PARAMS, AccountService, PasswordHasher
from bot.store.memory import MemoryStore
from tests.support.clocks import Clock


@dataclass
class Reads:
    """Our MemoryStore's fault hook, used only to count the session and account reads."""

    calls: list[str] = field(default_factory=list)

    def __call__(self, operation: str) -> None:
        if operation in ("get_web_session", "get_account"):
            self.calls.append(operation)


def worker(store: MemoryStore, clock: Clock, seconds: float = 5.0) -> AccountService:
    return AccountService(
        store,
        hasher=PasswordHasher(TEST_PARAMS),
        clock=clock,
        session_cache_seconds=seconds,
    )


async def test_a_checked_session_costs_no_reads_for_a_few_seconds() -> None:
    reads, clock = Reads(), Clock(1000.0)
    async with MemoryStore(fail=reads) as store:
        accounts = worker(store, clock)
        account = await accounts.sign_up("alice", "correct horse battery")
        session = await accounts.sessions.start(account.id)
        for _ in range(3):
            assert await accounts.session_account(session.token) == account
        assert reads.calls == ["get_web_session", "get_account"]
        clock.now += 5.0
        assert await accounts.session_account(session.token) == account
        assert reads.calls == ["get_web_session", "get_account"] * 2


async def test_a_session_revoked_on_another_worker_stops_within_the_cache_time() -> None:
    clock = Clock(1000.0)
    async with MemoryStore() as store:
        here, there = worker(store, clock), worker(store, clock)
        account = await here.sign_up("alice", "correct horse battery")
        session = await here.sessions.start(account.id)
        assert await here.session_account(session.token) == account
        await there.log_out(session.token)
        assert await there.session_account(session.token) is None  # at once there
        clock.now += 4.9
        assert await here.session_account(session.token) == account  # the bound...
        clock.now += 0.1
        assert await here.session_account(session.token) is None  # ...and no longer


async def test_logout_and_deletion_on_this_worker_take_effect_at_once() -> None:
    clock = Clock(1000.0)
    async with MemoryStore() as store:
        accounts = worker(store, clock)
        account = await accounts.sign_up("alice", "correct horse battery")
        first = await accounts.sessions.start(account.id)
        second = await accounts.sessions.start(account.id)
        assert await accounts.session_account(first.token) == account
        assert await accounts.session_account(second.token) == account
        await accounts.log_out(first.token)
        assert await accounts.session_account(first.token) is None
        await accounts.delete_account(account, "correct horse battery", address="127.0.0.1")
        assert await accounts.session_account(second.token) is None


async def test_never_past_the_sessions_own_expiry() -> None:
    clock = Clock(1000.0)
    async with MemoryStore() as store:
        accounts = AccountService(
            store,
            hasher=PasswordHasher(TEST_PARAMS),
            clock=clock,
            session_ttl=2.0,
            session_cache_seconds=60.0,
        )
        account = await accounts.sign_up("alice", "correct horse battery")
        session = await accounts.sessions.start(account.id)
        assert await accounts.session_account(session.token) == account
        clock.now += 2.0
        assert await accounts.session_account(session.token) is None
