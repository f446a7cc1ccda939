"""The ``store`` fixture: every Store implementation, each run through the one contract.

Adding an implementation (say ``DynamoStore`` against a local endpoint) is one more
entry in ``STORES``; no test changes. ``DynamoStore`` runs against moto's DynamoDB
server on loopback (``ThreadedMotoServer``, one per test session, in a process of its
own), on a fresh table per test.
"""

from __future__ import annotations

import copy
import logging
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import moto.dynamodb.models as moto_dynamodb
import pytest
from aiobotocore.session import AioSession
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.server import ThreadedMotoServer

from bot.store.base import Store
from bot.store.dynamo import DynamoStore
from bot.store.dynamo.admin import ATTRIBUTES, KEY_SCHEMA
from bot.store.memory import MemoryStore
from bot.store.sqlite import SqliteStore

#: How to make a fresh, empty store of each kind, given a private temporary directory.
STORES: dict[str, Callable[[Path], Store]] = {
    "memory": lambda tmp_path: MemoryStore(),
    "sqlite": lambda tmp_path: SqliteStore(tmp_path / "store" / "personabridge.db"),
    # without the window cache, every window is read from the file
    "sqlite-nocache": lambda tmp_path: SqliteStore(tmp_path / "nocache.db", window_cache=0),
}
#: Stores that need a server: made by a fixture of that name, which gives a factory.
SERVED: dict[str, str] = {"dynamodb": "dynamo_stores"}
REGION = "us-east-1"
TABLE: dict[str, object] = {
    "BillingMode": "PAY_PER_REQUEST",
    "KeySchema": KEY_SCHEMA,
    "AttributeDefinitions": ATTRIBUTES,
}
TTL = {"TimeToLiveSpecification": {"Enabled": True, "AttributeName": "expires_at"}}

DynamoStores = Callable[..., AbstractAsyncContextManager[DynamoStore]]


def _one_request_at_a_time(app: Any) -> Any:
    """DynamoDB applies every write, and every transaction, atomically; moto's threaded
    server runs requests concurrently and checks conditions and writes in separate
    steps, so two conditional writes could both pass. One request at a time makes the
    fake as atomic as the real thing (and the race tests meaningful)."""
    lock = threading.Lock()

    def serial(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        with lock:
            return list(app(environ, start_response))

    return serial


def _snapshot_only_what_a_transaction_names(env: pytest.MonkeyPatch) -> None:
    """moto deep-copies a whole table per action before a transaction, to roll back
    (about 70 ms per action at 1,400 items: the concurrency test would take minutes).
    A transaction can only change the items it names, so back up those instead."""
    backend = moto_dynamodb.DynamoDBBackend
    original = backend.transact_write_items

    def deepcopy(value: Any, memo: Any = None) -> Any:
        return value if isinstance(value, moto_dynamodb.Table) else copy.deepcopy(value, memo)

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        saved = []
        for action in transact_items:
            op = next(iter(action.values()))
            table = self.tables.get(op.get("TableName"))
            if table is None:
                continue
            attrs = op.get("Key") or op.get("Item")
            hash_key = DynamoType(attrs[table.hash_key_attr])
            range_key = DynamoType(attrs[table.range_key_attr])
            item = table.get_item(hash_key, range_key)
            saved.append((table, hash_key, range_key, copy.deepcopy(item)))
        try:
            original(self, transact_items)
        except BaseException:
            for table, hash_key, range_key, item in reversed(saved):
                if item is None:
                    table.items.get(hash_key, {}).pop(range_key, None)
                else:
                    table.items[hash_key][range_key] = item
            raise

    env.setattr(moto_dynamodb, "copy", SimpleNamespace(deepcopy=deepcopy))
    env.setattr(backend, "transact_write_items", transact_write_items)


def serve_moto() -> None:
    """Serve moto's DynamoDB on 127.0.0.1 (a free port), as fixed up above: prints the
    port, then serves until its standard input closes (the test session ended or died).
    Run by ``moto_endpoint`` as ``python tests/store/conftest.py``, in a process of its
    own so that the fake server's work runs beside the tests, not under their GIL."""
    env = pytest.MonkeyPatch()
    _snapshot_only_what_a_transaction_names(env)
    logging.getLogger("werkzeug").disabled = True  # a line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    wsgi = server._server
    assert wsgi is not None
    wsgi.app = _one_request_at_a_time(wsgi.app)
    print(server.get_host_and_port()[1], flush=True)
    sys.stdin.read()
    server.stop()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """The URL of moto's DynamoDB server (``serve_moto``), with dummy credentials in the
    environment: never AWS."""
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
            [sys.executable, __file__],
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


@pytest.fixture(params=[pytest.param(name, id=name) for name in [*STORES, *SERVED]])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param in SERVED:
        make: DynamoStores = request.getfixturevalue(SERVED[request.param])
        async with make() as served:
            yield served
        return
    async with STORES[request.param](tmp_path) as opened:
        yield opened


if __name__ == "__main__":
    serve_moto()
