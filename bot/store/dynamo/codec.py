"""Items between Python and DynamoDB's wire format, with boto3's type (de)serialisers.

boto3 is used for its :class:`~boto3.dynamodb.types.TypeSerializer` and
:class:`~boto3.dynamodb.types.TypeDeserializer` only (pure functions, no I/O). DynamoDB
numbers are decimals: floats go in through :class:`~decimal.Decimal` (``repr`` keeps
them exact) and come out as ``int`` or ``float`` through the typed readers below.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import (  # type: ignore[import-untyped]
    TypeDeserializer,
    TypeSerializer,
)

from bot.errors import StoreError

#: An item (or an attribute value map) in DynamoDB's JSON: ``{"name": {"S": "..."}}``.
Wire = dict[str, Any]
#: An item as Python values: str, Decimal, bool, dict, list, set, bytes, None.
Item = dict[str, object]

_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()


def _plain(value: object) -> object:
    """What TypeSerializer accepts: floats become exact Decimals."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def wire_value(value: object) -> Wire:
    """One attribute value in wire format."""
    return dict(_SERIALIZER.serialize(_plain(value)))


def to_wire(item: Mapping[str, object]) -> Wire:
    """An item (or a key) in wire format."""
    return {name: wire_value(value) for name, value in item.items()}


def from_wire(wire: Mapping[str, Any]) -> Item:
    """An item from wire format."""
    return {name: _DESERIALIZER.deserialize(value) for name, value in wire.items()}


def values(**named: object) -> Wire:
    """``ExpressionAttributeValues``: ``values(v=1)`` gives ``{":v": {"N": "1"}}``."""
    return {f":{name}": wire_value(value) for name, value in named.items()}


# -- typed readers ----------------------------------------------------------------------


def text(item: Mapping[str, object], name: str, default: str | None = None) -> str:
    value = item.get(name, default)
    if not isinstance(value, str):
        raise StoreError(f"DynamoDB item {_where(item)} has no text attribute {name!r}")
    return value


def optional_text(item: Mapping[str, object], name: str) -> str | None:
    value = item.get(name)
    return value if isinstance(value, str) else None


def integer(item: Mapping[str, object], name: str, default: int | None = None) -> int:
    value = item.get(name)
    if isinstance(value, Decimal):
        return int(value)
    if value is None and default is not None:
        return default
    raise StoreError(f"DynamoDB item {_where(item)} has no number attribute {name!r}")


def number(item: Mapping[str, object], name: str, default: float | None = None) -> float:
    value = item.get(name)
    if isinstance(value, Decimal):
        return float(value)
    if value is None and default is not None:
        return default
    raise StoreError(f"DynamoDB item {_where(item)} has no number attribute {name!r}")


def _where(item: Mapping[str, object]) -> str:
    return f"({item.get('PK')!r}, {item.get('SK')!r})"
