"""The embedded store's rows: tagged dates, and stores written before the tags migrated once."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers.builders import T0, ms_dates, order, tracos_doc
from watcher.core.tracos import OrderUpsert, Outcome
from watcher.store import rows, sqlite_schema
from watcher.store.port import SyncMark, apply_upsert
from watcher.store.sqlite import OLDEST_UNSYNCED, SqliteStore

pytestmark = pytest.mark.anyio


def test_a_date_and_a_string_come_back_as_they_went_in() -> None:
    """Encoding tags dates only; decoding gives aware datetimes back and leaves strings."""
    doc = {"number": 1, "updatedAt": T0, "note": "2025-10-01T00:04:29.045000Z"}
    assert rows.decode(rows.encode(doc)) == doc


stored_values = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8)
stored_docs = st.dictionaries(
    st.sampled_from(["createdAt", "updatedAt", "deletedAt", "syncedAt", "note", "_id", "status"]),
    stored_values | ms_dates,
)
upserts = st.builds(
    order,
    number=st.integers(0, 2**63 - 1),
    updated=ms_dates,
    status=st.sampled_from([None, "pending", "completed"]),
    deletedAt=st.none() | ms_dates,
)


@given(st.none() | stored_docs, upserts, ms_dates)
def test_an_upserted_row_is_the_whole_document_encoded(
    stored: dict[str, object] | None, upsert: OrderUpsert, now: datetime
) -> None:
    """Encoding only what the write sets gives the bytes that re-encoding the document would
    (``apply_upsert``, the fields both stores write: one added there shows here)."""
    before = rows.encode(stored) if stored is not None else None
    whole = apply_upsert(rows.decode(before) if before else None, upsert, now)
    whole.setdefault("_id", "new")
    synced_at = rows.Date(now)
    fast = (
        rows.updated((before, 1, None), upsert, synced_at, lambda: "new")
        if before
        else rows.inserted(upsert, synced_at, "new")
    )
    assert fast == rows.encode(whole)


# the table as releases before schema v2 made it
LEGACY_SCHEMA = """
CREATE TABLE workorders (
    number INTEGER PRIMARY KEY, updated_at INTEGER, synced INTEGER NOT NULL,
    seq INTEGER NOT NULL, changed_at INTEGER NOT NULL, doc TEXT NOT NULL
);
CREATE INDEX workorders_seq ON workorders (seq);
"""


def _legacy_store(path: Path) -> None:
    """A store as the previous release wrote it: dates as plain strings, user_version 0."""
    path.parent.mkdir(parents=True)
    doc: dict[str, object] = {
        "_id": "legacy",
        "number": 7,
        "status": "pending",
        "title": "old",
        "createdAt": "2025-09-30T00:00:00.000000Z",
        "updatedAt": "2025-10-01T00:04:29.045000Z",
        "deleted": False,
        "isSynced": True,
        "syncedAt": "2025-10-02T00:00:00.000000Z",
        "note": "not a date",
    }
    with sqlite3.connect(path) as db:
        db.executescript(LEGACY_SCHEMA)
        millis = rows.to_millis(T0)
        db.execute("INSERT INTO workorders VALUES (7, ?, 1, 1, 0, ?)", (millis, json.dumps(doc)))


async def test_a_store_from_before_the_tags_is_migrated_at_open(tmp_path: Path) -> None:
    """Its dates read back as datetimes, once; newer-wins still compares them."""
    path = tmp_path / "state" / "tracos.sqlite3"
    _legacy_store(path)
    store = SqliteStore(path)
    await store.open()
    try:
        [doc] = await store.find([7])
        assert isinstance(doc["updatedAt"], datetime) and doc["updatedAt"] == T0
        assert isinstance(doc["syncedAt"], datetime) and doc["note"] == "not a date"
        assert await store.upsert([order(7, title="same version")], T0) == [Outcome.UNCHANGED]
    finally:
        await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == sqlite_schema.FORMAT


async def test_the_oldest_unsynced_is_read_from_an_index(tmp_path: Path) -> None:
    """Asked every two seconds: SQLite answers it from the partial index, not a scan."""
    store = SqliteStore(tmp_path / "state" / "tracos.sqlite3")
    await store.open()
    await store.close()
    with sqlite3.connect(tmp_path / "state" / "tracos.sqlite3") as db:
        plan = db.execute(f"EXPLAIN QUERY PLAN {OLDEST_UNSYNCED}").fetchall()
    assert "USING INDEX workorders_unsynced_age" in plan[0][-1]


async def test_a_batch_of_marks_is_one_statement_per_chunk_not_one_per_document(
    tmp_path: Path,
) -> None:
    """1,200 marks (one changed since it was read) are three UPDATEs of up to 500 rows,
    each telling which rows it marked: the changed one is not among them."""
    store = SqliteStore(tmp_path / "tracos.sqlite3")
    await store.open()
    await store.put_documents([tracos_doc(n) for n in range(1, 1201)])
    read = [doc async for batch in store.iter_unsynced(2000) for doc in batch]
    await store.put_documents([tracos_doc(7, title="changed")])
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)  # the statements SQLite runs, as run
    marked = await store.mark_synced([SyncMark(d.key, d.version) for d in read], T0)
    store._db.set_trace_callback(None)
    assert marked == {str(n) for n in range(1, 1201)} - {"7"}
    assert [s.split()[0] for s in statements if not s.startswith(("BEGIN", "COMMIT"))] == [
        "UPDATE"
    ] * 3
    assert (await store.counts())[1] == 1
    await store.close()


def test_a_block_of_ids_continues_the_counter_and_wraps_it_as_one_at_a_time_does() -> None:
    """A batch's new ids, made as one block with one time: ObjectId-shaped, the three-byte
    counter wrapping to zero, and never one the ids made before or after repeat."""
    ids = rows.ObjectIds()
    ids._counter = rows.COUNTER - 3
    made = [next(ids), *ids.block(4), next(ids), *ids.block(0), *ids.block(2)]
    assert [int(i[-6:], 16) for i in made] == [
        rows.COUNTER - 3,
        rows.COUNTER - 2,
        rows.COUNTER - 1,
        0,
        1,
        2,
        3,
        4,
    ]
    assert len(set(made)) == len(made)
    assert all(len(i) == 24 and int(i, 16) >= 0 and i[8:18] == made[0][8:18] for i in made)


def test_versions_computed_together_are_each_ones_milliseconds() -> None:
    """``millis_of`` floors as ``to_millis`` does: before 1970, in any zone, sub-millisecond."""
    from datetime import UTC, timedelta, timezone

    dates = [
        datetime(1969, 12, 31, 23, 59, 59, 999_500, tzinfo=UTC),
        datetime(2025, 1, 1, 5, 30, 0, 123_999, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        T0,
    ]
    assert (
        list(rows.millis_of(dates))
        == [rows.to_millis(d) for d in dates]
        == [
            -1,
            1_735_689_600_123,
            rows.to_millis(T0),
        ]
    )
