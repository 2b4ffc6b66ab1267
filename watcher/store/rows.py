"""How the embedded store keeps a TracOS document in a SQLite row, and reads it back typed.

The document is JSON with its dates tagged as MongoDB's Extended JSON spells them
(``{"$date": "2025-10-01T00:04:29.045000Z"}``), so that a date comes back a ``datetime``
and a string stays a string — the same types the MongoDB adapter returns. A mark keeps
``isSynced`` and ``syncedAt`` in columns (``synced``, ``synced_at``) without touching the
JSON: once ``synced_at`` is set, the columns say what those two fields are.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import repeat
from operator import floordiv, sub
from typing import Any, Final

import msgspec

from watcher.core.tracos import ERP_VERSION, OrderUpsert, normalise_date
from watcher.store.port import Document, insert_fields

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
MILLISECOND: Final = timedelta(milliseconds=1)
DATE: Final = "$date"
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(dict[str, Any]).decode


# A document as a row, less what the store adds as it writes it (``seq``, ``changed_at``):
# number, ``updated_at`` (see ``version_of``), synced (0 or 1), the JSON.
Row = tuple[int, int | None, int, bytes]


def row_of(doc: Document) -> Row:
    return doc["number"], version_of(doc), int(doc.get("isSynced") is True), encode(doc)


def to_millis(value: datetime) -> int:
    return (value - EPOCH) // MILLISECOND


def millis_of(values: Iterable[datetime]) -> Iterator[int]:
    """``to_millis`` of each of ``values``, computed in C (no Python frame a value)."""
    return map(floordiv, map(sub, values, repeat(EPOCH)), repeat(MILLISECOND))


def from_millis(value: int) -> datetime:
    return EPOCH + value * MILLISECOND


def encode(doc: Document) -> bytes:
    """The row's JSON: dates tagged, everything else as it is."""
    return _encode({k: {DATE: v} if isinstance(v, datetime) else v for k, v in doc.items()})


class Date(msgspec.Struct, gc=False):
    """A date as a row tags it: ``{"$date": "2025-10-01T00:04:29.045000Z"}``."""

    at: datetime = msgspec.field(name=DATE)


class _Inserted(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    """A new order's JSON, its keys in the order ``apply_upsert`` gives them (the
    description first, the id last)."""

    description: str
    number: int
    status: str
    title: str
    createdAt: Date
    updatedAt: Date
    deleted: bool
    isSynced: bool
    syncedAt: Date
    erpUpdatedAt: Date  # ERP_VERSION
    deletedAt: Date | None = None  # absent when None
    id: str = msgspec.field(name="_id")


class _Created(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    """``_Inserted`` for an order with no status: ``created``, right after the description."""

    description: str
    status: str
    number: int
    title: str
    createdAt: Date
    updatedAt: Date
    deleted: bool
    isSynced: bool
    syncedAt: Date
    erpUpdatedAt: Date  # ERP_VERSION
    deletedAt: Date | None = None
    id: str = msgspec.field(name="_id")


def inserted(order: OrderUpsert, synced_at: Date, new_id: str) -> bytes:
    """The JSON of a new order's row: the fields of ``upsert_fields`` and ``insert_fields``,
    in one encode (``synced_at``: the batch's write time, made once)."""
    shape = _Created if order.status is None else _Inserted
    deleted_at, version = order.deletedAt, Date(order.updatedAt)
    return _encode(
        shape(
            description=order.description,
            status=order.status or "created",
            number=order.number,
            title=order.title,
            createdAt=Date(order.createdAt),
            updatedAt=version,
            deleted=order.deleted,
            isSynced=True,
            syncedAt=synced_at,
            erpUpdatedAt=version,  # the same value, one Struct
            deletedAt=None if deleted_at is None else Date(deleted_at),
            id=new_id,
        )
    )


Stored = tuple[str | bytes, int, int | None]  # a row's JSON, ``synced``, ``synced_at``


def written(
    order: OrderUpsert, stored: Stored | None, synced_at: Date, new_id: Callable[[], str]
) -> bytes:
    """The JSON of ``order``'s row after an inbound write: ``inserted`` for a new order
    (``stored`` None), ``updated`` over its stored row."""
    if stored is None:
        return inserted(order, synced_at, new_id())
    return updated(stored, order, synced_at, new_id)


def updated(
    stored: Stored, order: OrderUpsert, synced_at: Date, new_id: Callable[[], str]
) -> bytes:
    """The JSON of a stored order's row after an inbound write, as ``apply_upsert`` leaves
    the document: its own keys where they were (the columns' ``isSynced`` and ``syncedAt``
    where a mark that rewrote it would have put them), ``deletedAt`` moved last, new keys
    after. Its own dates stay in their row form; the written ones are ``Date``s."""
    text, _, marked = stored
    doc = _decode(text)
    if marked is not None:  # the values are the write's, set below
        doc["isSynced"] = None
        doc["syncedAt"] = None
    if not doc:
        doc = insert_fields(order)
    doc.pop("deletedAt", None)
    doc["number"] = order.number
    if order.status is not None:
        doc["status"] = order.status
    doc["title"] = order.title
    doc["createdAt"] = Date(order.createdAt)
    doc["updatedAt"] = Date(order.updatedAt)
    doc["deleted"] = order.deleted
    doc["isSynced"] = True
    doc["syncedAt"] = synced_at
    doc[ERP_VERSION] = Date(order.updatedAt)
    if order.deletedAt is not None:
        doc["deletedAt"] = Date(order.deletedAt)
    if "_id" not in doc:
        doc["_id"] = new_id()
    return _encode(doc)


def decode_untagged(row: str | bytes) -> Document:
    """The document with its dates left in their row form (to be written back as they are)."""
    return _decode(row)


def with_marks(doc: Document, synced: int, synced_at: int | None) -> Document:
    """The document with the sync state of its columns, as a mark that rewrote it would
    have left it (``isSynced`` where it was, ``syncedAt`` where it was or last)."""
    if synced_at is not None:
        doc["isSynced"] = synced == 1
        doc["syncedAt"] = from_millis(synced_at)
    return doc


def decode_marked(row: str | bytes, synced: int, synced_at: int | None) -> Document:
    """``decode`` of a row's JSON, with the sync state of its columns."""
    return with_marks(decode(row), synced, synced_at)


def decode(row: str | bytes) -> Document:
    """The document with its dates as aware ``datetime`` values again."""
    doc = _decode(row)
    for key, value in doc.items():
        if isinstance(value, dict) and len(value) == 1 and DATE in value:
            doc[key] = datetime.fromisoformat(value[DATE])
    return doc


def version_of(doc: Document) -> int | None:
    """``updatedAt`` in epoch milliseconds, or None when it is not a date.

    As in MongoDB, only a date is a version: a string (even an ISO one) or a number that
    TracOS stored there counts as older than any ERP version (docs/spec.md §3 Inbound 5).
    """
    value = doc.get("updatedAt")
    return to_millis(value) if isinstance(value, datetime) and value.tzinfo else None


def as_bson_would(doc: Document) -> Document:
    """Dates kept to the millisecond and in UTC, as a BSON date keeps them."""
    return {k: normalise_date(v) if isinstance(v, datetime) else v for k, v in doc.items()}


COUNTER: Final = 1 << 24  # an ObjectId's counter: three bytes


class ObjectIds:
    """ObjectId-shaped ids (time, random, counter) without ObjectId's per-call cost: one
    at a time (``next``), or a batch's at once (``block``)."""

    def __init__(self) -> None:
        self._middle = os.urandom(5).hex()
        self._counter = int.from_bytes(os.urandom(3))

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        counter = self._counter
        self._counter = (counter + 1) % COUNTER
        return "%08x%s%06x" % (int(time.time()), self._middle, counter)  # noqa: UP031 (faster)

    def block(self, count: int) -> Iterator[str]:
        """``count`` ids with one time (the batch's), formatted in C as they are taken: a
        new order's id cost 0.5 µs made one at a time, its time read each time."""
        first = self._counter
        self._counter = (first + count) % COUNTER
        counters = itertools.chain(
            range(first, min(first + count, COUNTER)), range(first + count - COUNTER)
        )
        template = "%08x%s%%06x" % (int(time.time()), self._middle)  # noqa: UP031 (hex only)
        return map(template.__mod__, counters)
