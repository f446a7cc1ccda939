"""moto's DynamoDB server, made as atomic as DynamoDB, run in a process of its own.

``python tests/support/moto_server.py`` (with the repository on ``PYTHONPATH``) prints
the port it serves on, then serves until its standard input closes. The tests'
``moto_endpoint`` fixture (:mod:`tests.support.dynamo`) and the benchmarks start it, so
that the fake server's work runs beside them, not under their GIL.
"""

from __future__ import annotations

import copy
import logging
import sys
import threading
from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

import moto.dynamodb.models as moto_dynamodb
import pytest
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.server import ThreadedMotoServer


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
    port, then serves until its standard input closes (the test session ended or died)."""
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


if __name__ == "__main__":
    serve_moto()
