"""DynamoDB for the tests: moto's server on loopback (``ThreadedMotoServer``, one per test
session, in a process of its own: :mod:`tests.support.moto_server`) and a fresh table per
test. A pytest plugin (registered in ``tests/conftest.py``): ``moto_endpoint``,
``aio_session`` and ``dynamo_stores`` serve every folder.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest
from aiobotocore.session import AioSession

from bot.store.dynamo import DynamoStore
from bot.store.dynamo.admin import ATTRIBUTES, KEY_SCHEMA

REGION = "us-east-1"
TABLE: dict[str, object] = {
    "BillingMode": "PAY_PER_REQUEST",
    "KeySchema": KEY_SCHEMA,
    "AttributeDefinitions": ATTRIBUTES,
}
TTL = {"TimeToLiveSpecification": {"Enabled": True, "AttributeName": "expires_at"}}

DynamoStores = Callable[..., AbstractAsyncContextManager[DynamoStore]]


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """The URL of moto's DynamoDB server (:func:`tests.support.moto_server.serve_moto`),
    with dummy credentials in the environment: never AWS."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", REGION)
        env.delenv("AWS_PROFILE", raising=False)
        env.delenv("AWS_SESSION_TOKEN", raising=False)
        env.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
        root = Path(__file__).resolve().parents[2]
        with subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("moto_server.py"))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=root,
            env={**os.environ, "PYTHONPATH": str(root)},
            text=True,
        ) as server:
            assert server.stdin is not None and server.stdout is not None
            port = server.stdout.readline().strip()
            try:
                assert port.isdigit(), f"moto's server did not start: {port!r}"
                yield f"http://127.0.0.1:{port}"
            finally:
                server.stdin.close()
                server.wait(timeout=30)


@pytest.fixture(scope="session")
def aio_session() -> AioSession:
    """One botocore session for every test's clients: it caches the service model."""
    return AioSession()


@pytest.fixture
def dynamo_stores(moto_endpoint: str, aio_session: AioSession) -> DynamoStores:
    """``async with dynamo_stores() as store``: a DynamoStore on a fresh table (dropped
    afterwards); ``dynamo_stores(table=name)`` opens another store (its own client) on
    an existing table; extra keywords go to the store."""

    @asynccontextmanager
    async def make(table: str | None = None, **options: object) -> AsyncIterator[DynamoStore]:
        fresh = table is None
        name = table or f"pb-{secrets.token_hex(6)}"
        options.setdefault("session", aio_session)
        async with DynamoStore(
            name,
            endpoint_url=moto_endpoint,
            region=REGION,
            **options,  # type: ignore[arg-type]
        ) as store:
            if fresh:  # what `db create` makes (tested on its own), in two calls
                await store.table.call("CreateTable", TableName=name, **TABLE)
                await store.table.call("UpdateTimeToLive", TableName=name, **TTL)
            try:
                yield store
            finally:
                if fresh:
                    await store.table.call("DeleteTable", TableName=name)

    return make
