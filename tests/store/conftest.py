"""Every Store implementation, each run through the one contract: the ``store`` fixture
(``tests/support/stores.py``) opens each kind in turn for the tests of this folder.
``DynamoStore`` runs against moto's DynamoDB server on loopback
(``tests/support/dynamo.py``), on a fresh table per test.
"""

from __future__ import annotations

from tests.support.stores import ALL_KINDS, store_kinds

store_kind = store_kinds(*ALL_KINDS)
