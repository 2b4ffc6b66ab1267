"""An inbound write's row, encoded once (``rows.inserted``, ``rows.updated``), is byte for
byte the row the builder before it made: a dict merge (``apply_upsert``), the dates tagged
after, the id added last. That builder is kept here, as it was, to compare with."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers.builders import T0, ms_dates, order, tracos_doc
from watcher.core.tracos import OrderUpsert, normalise_date
from watcher.store import rows
from watcher.store.port import UPSERT_DATES, SyncMark, apply_upsert
from watcher.store.sqlite import SqliteStore

pytestmark = pytest.mark.anyio

# --- the builder before rows were encoded from Structs (commit 039dd9a), unchanged ---
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(dict[str, Any]).decode
_UPSERT_DATES = UPSERT_DATES  # the dates an inbound write sets, as the port lists them


def _old_encode_set(doc: dict[str, Any]) -> bytes:
    for key in _UPSERT_DATES:
        value = doc.get(key)
        if isinstance(value, datetime):
            doc[key] = {"$date": value}
    return _encode(doc)


def _old_decode_untagged_marked(row: str | bytes, synced: int, synced_at: int | None) -> Any:
    doc = _decode(row)
    if synced_at is not None:
        doc["isSynced"] = synced == 1
        doc["syncedAt"] = {"$date": rows.from_millis(synced_at)}
    return doc


def old_row(
    order: OrderUpsert, stored: tuple[Any, ...] | None, now: datetime, new_id: str
) -> bytes:
    """``SqliteStore._upserted`` as it was: ``stored`` is (JSON, synced, synced_at)."""
    now = normalise_date(now)
    doc = apply_upsert(_old_decode_untagged_marked(*stored) if stored else None, order, now)
    doc.setdefault("_id", new_id)
    return _old_encode_set(doc)


# --- what varies: stored documents, sync columns, upserts ---
ODD_ZONES = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-11))]
odd_dates = st.datetimes(
    min_value=datetime(1971, 1, 1),
    max_value=datetime(2200, 1, 1),
    timezones=st.sampled_from(ODD_ZONES),
)
titles = st.text(st.characters(codec="utf-8"), max_size=12) | st.sampled_from(
    ["Ünïcødé ✓", "汉字 \u202e", "\U0001f527 fix", 'quote " and \\ slash', "\x00\x1f"]
)
stored_values = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | titles
stored_docs = st.dictionaries(
    st.sampled_from(
        [
            "_id",
            "number",
            "status",
            "title",
            "description",
            "createdAt",
            "updatedAt",
            "deleted",
            "deletedAt",
            "isSynced",
            "syncedAt",
            "note",
        ]
    ),
    stored_values | ms_dates | st.lists(stored_values, max_size=2),
)
upserts = st.builds(
    order,
    number=st.integers(0, 2**63 - 1),
    updated=odd_dates | ms_dates,
    status=st.sampled_from([None, "pending", "completed", "in_progress"]),
    title=titles,
    description=titles,
    createdAt=odd_dates,
    deleted=st.booleans(),
    deletedAt=st.none() | odd_dates,
)
marks = st.tuples(st.sampled_from([0, 1]), st.none() | st.integers(0, 2**42))


def new_row(
    upsert: OrderUpsert, stored: tuple[Any, ...] | None, now: datetime, new_id: str
) -> bytes:
    synced_at = rows.Date(normalise_date(now))
    if stored is None:
        return rows.inserted(upsert, synced_at, new_id)
    return rows.updated(stored, upsert, synced_at, lambda: new_id)


@given(upserts, odd_dates)
def test_a_new_order_is_the_row_the_dict_merge_made(upsert: OrderUpsert, now: datetime) -> None:
    """With or without status, deletedAt, in any zone, any title: the same bytes."""
    assert new_row(upsert, None, now, "6b16b71299e51725dd642d5c") == old_row(
        upsert, None, now, "6b16b71299e51725dd642d5c"
    )


@given(stored_docs, marks, upserts, odd_dates, st.booleans())
def test_an_updated_order_is_the_row_the_dict_merge_made(
    doc: dict[str, Any],
    mark: tuple[int, int | None],
    upsert: OrderUpsert,
    now: datetime,
    str_row: bool,
) -> None:
    """Whatever the stored document holds (its own keys, order, marks in the columns): the
    same bytes, key order included."""
    json_row = rows.encode(doc)
    stored = (json_row.decode() if str_row else json_row, *mark)
    assert new_row(upsert, stored, now, "fresh") == old_row(upsert, stored, now, "fresh")


def test_an_updated_order_keeps_an_empty_stored_document_as_the_merge_did() -> None:
    """``{}`` stored (never written by us, but possible): the insert's fields, as before."""
    stored = (b"{}", 0, None)
    assert new_row(order(3), stored, T0, "x") == old_row(order(3), stored, T0, "x")


# --- the whole store: a mixed batch against the rows of the builder before ---
def _rows(path: Path) -> dict[int, tuple[Any, ...]]:
    with sqlite3.connect(path) as db:
        found = db.execute("SELECT number, doc, synced, synced_at FROM workorders").fetchall()
    db.close()
    return {number: tuple(rest) for number, *rest in found}


def _mixed_batch() -> Iterator[OrderUpsert]:
    later = T0 + timedelta(days=2)
    yield order(1, later)  # an update of a plain TracOS document
    yield order(2, later, status=None, title="Ünïcødé ✓ 汉字")  # update, status kept
    yield order(3, later, deleted=True, deletedAt=later)  # deleted by the ERP
    yield order(4, later)  # un-deleted: deletedAt goes
    yield order(5, later)  # a marked one (sync state in the columns)
    yield order(6, T0 - timedelta(days=9))  # stale: not written
    yield order(7, later)  # a text version
    yield order(8, later, title="after a non-date")  # no date at all
    yield order(9, later + timedelta(microseconds=7))  # unsynced by resend
    yield order(20, later, status=None)  # new, no status: "created"
    yield order(21, later, deleted=True, deletedAt=T0.astimezone(ODD_ZONES[1]))
    yield order(22, later, title='\U0001f527 \x00 \\ "')
    yield order(23, later.astimezone(ODD_ZONES[2]) + timedelta(microseconds=999))


async def test_a_mixed_batch_writes_the_rows_the_builder_before_wrote(tmp_path: Path) -> None:
    """New orders, updates, deleted and undeleted, marked and unmarked, text versions, odd
    zones and unicode titles: each row written is byte for byte the previous builder's."""
    path = tmp_path / "tracos.sqlite3"
    store = SqliteStore(path, threads=False)
    await store.open()
    await store.put_documents(
        [
            tracos_doc(1),
            tracos_doc(2, status="on_hold", note=["kept", 1.5, None]),
            tracos_doc(3),
            tracos_doc(4, deleted=True, deletedAt=T0, isSynced=True, syncedAt=T0),
            tracos_doc(5),
            tracos_doc(6),
            tracos_doc(7, updatedAt="2025-10-01T00:00:00Z"),
            tracos_doc(8, updatedAt="yesterday", isSynced="odd"),
            tracos_doc(9, isSynced=True),
        ]
    )
    swept = [d async for batch in store.iter_unsynced(100) for d in batch]
    await store.mark_synced([SyncMark(d.key, d.version) for d in swept if d.key == "5"], T0)
    await store.unsync([9])
    before = _rows(path)
    now = T0 + timedelta(days=3, microseconds=1234)
    batch = list(_mixed_batch())
    await store.upsert(batch, now)
    await store.close()
    after = _rows(path)
    written = [o for o in batch if o.number != 6]
    for upsert in written:
        doc, *_ = after[upsert.number]
        new_id = json.loads(doc)["_id"]
        previous = before.get(upsert.number)
        written_bytes = doc if isinstance(doc, bytes) else doc.encode()
        assert written_bytes == old_row(upsert, previous, now, new_id), upsert.number
    assert after[6] == before[6]
