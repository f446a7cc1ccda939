"""Fixtures of the reliability tests.

The DynamoDB fixtures (``moto_endpoint``, ``aio_session``, ``dynamo_stores``) are the
store suite's own (``tests/store/conftest.py``: moto's server in a subprocess on
loopback), loaded from that file under a name of its own: a conftest cannot be
imported by its module name, which every test folder shares.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def _load_store_fixtures() -> object:
    name = "_store_conftest_for_reliability"
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).resolve().parents[1] / "store" / "conftest.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_store = _load_store_fixtures()
moto_endpoint = _store.moto_endpoint  # type: ignore[attr-defined]
aio_session = _store.aio_session  # type: ignore[attr-defined]
dynamo_stores = _store.dynamo_stores  # type: ignore[attr-defined]
