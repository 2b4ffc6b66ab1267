"""How the embedded store keeps a TracOS document in a SQLite row, and reads it back typed.

The document is JSON with its dates tagged as MongoDB's Extended JSON spells them
(``{"$date": "2025-10-01T00:04:29.045000Z"}``), so that a date comes back a ``datetime``
and a string stays a string — the same types the MongoDB adapter returns. Stores written
before the tags (``user_version`` 0) are migrated once when opened.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import msgspec

from watcher import __version__
from watcher.core.errors import StoreTooNew
from watcher.core.tracos import normalise_date
from watcher.store.port import UPSERT_DATES, Document

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
MILLISECOND: Final = timedelta(milliseconds=1)
DATE: Final = "$date"
ROW_FORMAT: Final = 1  # PRAGMA user_version of a store whose dates are tagged
# the columns of ``workorders`` this release knows (``sqlite.SCHEMA``): any other is a newer one's
COLUMNS: Final = frozenset({"number", "updated_at", "synced", "seq", "changed_at", "doc"})
LEGACY_DATE_FIELDS: Final = ("createdAt", "updatedAt", "deletedAt", "syncedAt")
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(dict[str, Any]).decode


# A document as a row, less what the store adds as it writes it (``seq``, ``changed_at``):
# number, ``updated_at`` (see ``version_of``), synced (0 or 1), the JSON.
Row = tuple[int, int | None, int, bytes]


def row_of(doc: Document) -> Row:
    return doc["number"], version_of(doc), int(doc.get("isSynced") is True), encode(doc)


def to_millis(value: datetime) -> int:
    return (value - EPOCH) // MILLISECOND


def from_millis(value: int) -> datetime:
    return EPOCH + value * MILLISECOND


def encode(doc: Document) -> bytes:
    """The row's JSON: dates tagged, everything else as it is."""
    return _encode({k: {DATE: v} if isinstance(v, datetime) else v for k, v in doc.items()})


def encode_set(doc: Document) -> bytes:
    """The row's JSON of a document whose dates are tagged already, but for those an
    inbound write sets (``UPSERT_DATES``, given as ``datetime``)."""
    for key in UPSERT_DATES:
        value = doc.get(key)
        if isinstance(value, datetime):
            doc[key] = {DATE: value}
    return _encode(doc)


def encoded_date(value: datetime) -> str:
    """A tagged date alone, for SQL's ``json(?)`` (the conditional mark's ``syncedAt``)."""
    return _encode({DATE: normalise_date(value)}).decode()


def decode_untagged(row: str | bytes) -> Document:
    """The document with its dates left in their row form (to be written back as they are)."""
    return _decode(row)


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


def object_ids() -> Iterator[str]:
    """ObjectId-shaped ids (time, random, counter) without ObjectId's per-call cost."""
    middle = os.urandom(5).hex()
    for counter in itertools.count(int.from_bytes(os.urandom(3))):
        yield "%08x%s%06x" % (int(time.time()), middle, counter & 0xFFFFFF)  # noqa: UP031 (faster)


def migrate(db: sqlite3.Connection, path: Path) -> None:
    """Tag the dates of rows written before tags existed (they were plain RFC 3339 strings);
    a store from a newer release is refused (``StoreTooNew``), never written to or retried."""
    found = db.execute("PRAGMA user_version").fetchone()[0]
    _refuse_newer(db, path, found)
    if found >= ROW_FORMAT:
        return  # nothing to write: a command that only looks never waits for the write lock
    db.execute("BEGIN IMMEDIATE")
    try:
        if db.execute("PRAGMA user_version").fetchone()[0] < ROW_FORMAT:  # not done meanwhile
            rows = db.execute("SELECT number, doc FROM workorders").fetchall()
            docs = ((n, _with_legacy_dates(_decode(doc))) for n, doc in rows)
            tagged = ((encode(doc), version_of(doc), n) for n, doc in docs)
            db.executemany("UPDATE workorders SET doc = ?, updated_at = ? WHERE number = ?", tagged)
            db.execute(f"PRAGMA user_version = {ROW_FORMAT}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _refuse_newer(db: sqlite3.Connection, path: Path, found: int) -> None:
    """A higher ``user_version``, or columns this release does not know: a newer release's."""
    extra = sorted({row[1] for row in db.execute("PRAGMA table_info(workorders)")} - COLUMNS)
    if found <= ROW_FORMAT and not extra:
        return
    what = f"store format {found}" + (f", with columns {', '.join(extra)}" if extra else "")
    raise StoreTooNew(
        f"embedded store {path} was written by a newer release of watcher ({what}; this"
        f" release {__version__} reads format {ROW_FORMAT} at most): run that release,"
        " or point DATA_STATE_DIR at another folder"
    )


def _with_legacy_dates(doc: Document) -> Document:
    for field in LEGACY_DATE_FIELDS:
        value = doc.get(field)
        if isinstance(value, str):
            try:
                when = msgspec.convert(value, datetime)
            except msgspec.ValidationError:
                continue  # not a date then: it stays the string it is
            if when.tzinfo is not None:
                doc[field] = when
    return doc
