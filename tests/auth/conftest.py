"""Fixtures for the accounts service tests."""

from __future__ import annotations

import pytest

from auth import TEST_PARAMS, AccountService, LoginThrottle, PasswordHasher
from bot.store.base import Store
from tests.support.clocks import Clock
from tests.support.stores import store_kinds


@pytest.fixture
def clock() -> Clock:
    return Clock(1_700_000_000.0)


store_kind = store_kinds("memory", "sqlite")


@pytest.fixture
def service(store: Store, clock: Clock) -> AccountService:
    return AccountService(
        store,
        hasher=PasswordHasher(TEST_PARAMS),
        throttle=LoginThrottle(limits={"account": 10, "address": 30}, clock=clock),
        clock=clock,
    )
