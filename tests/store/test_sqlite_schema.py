"""The embedded store's schema: what the file holds, and stores of earlier releases migrated.

``data/store-v1.sqlite3`` was written by the release before schema v2 (commit 1de3c8b)
running ``build_mixed_store``; ``data/store-v1.expected.json`` is what that release read
back from it (``read_back``); ``data/store-v2.*`` the same by the release before format 3
(the journal keyed by made-once ids; commit 039dd9a). All are committed: the old code is
not needed to test. The journal reads back as ``history --json`` shows it (no ids).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.builders import T0, order, tracos_doc
from watcher.core.tracos import ERP_VERSION
from watcher.store import journal, rows, sqlite_schema
from watcher.store.journal import Entry, HistoryQuery
from watcher.store.port import SyncMark
from watcher.store.sqlite import SqliteStore
from watcher.store.sqlite_journal import SqliteJournal

DATA = Path(__file__).parent / "data"
V1_STORE = DATA / "store-v1.sqlite3"
V1_EXPECTED = DATA / "store-v1.expected.json"
V2_STORE = DATA / "store-v2.sqlite3"
V2_EXPECTED = DATA / "store-v2.expected.json"
NUMBERS = range(1, 12)

pytestmark = pytest.mark.anyio


async def build_mixed_store(store: SqliteStore, log: SqliteJournal) -> None:
    """Inserted, updated, unchanged, marked, unmarked and text versions, and a journal."""
    await store.put_documents(
        [
            *(tracos_doc(n) for n in range(1, 7)),
            tracos_doc(7, updatedAt="2025-10-01T00:00:00Z"),  # a text version
            tracos_doc(8, updatedAt="yesterday", isSynced="odd"),
            tracos_doc(9, isSynced=True, syncedAt=T0),
        ]
    )
    later = T0 + timedelta(days=1)
    await store.upsert(
        [order(1, later), order(2, T0 - timedelta(days=9)), order(7, later), order(10, later)],
        later,
    )
    swept = [doc async for batch in store.iter_unsynced(100) for doc in batch]
    marks = [SyncMark(d.key, d.version) for d in swept if d.key in {"3", "4", "8"}]
    await store.mark_synced(marks, later + timedelta(minutes=1))
    await store.unsync([4, 10])
    await store.upsert([order(3, later + timedelta(hours=1), title="after its mark")], later)
    await store.put_documents([tracos_doc(11, status="pending")])
    await log.record(
        [
            Entry(at=later, direction="in", event="archived", file="a.json"),
            Entry(at=later, direction="in", event="updated", number=1, file="a.json"),
            Entry(at=later, direction="out", event="exported", number=3, version=T0),
        ]
    )


async def read_back(store: SqliteStore, log: SqliteJournal) -> dict[str, Any]:
    """Every document (row JSON, key order included), the unsynced sweep and the journal."""
    swept = [doc async for batch in store.iter_unsynced(3) for doc in batch]
    stories = [HistoryQuery(number=n) for n in NUMBERS] + [HistoryQuery(file="a.json")]
    return {
        "find": [rows.encode(doc).decode() for doc in await store.find()],
        "some": [rows.encode(doc).decode() for doc in await store.find([9, 3, 4, 99])],
        "unsynced": [
            [d.key, d.version, str(d.changed_at), rows.encode(d.doc).decode()] for d in swept
        ],
        "journal": [
            [journal.shown_json([e])[1:-1].decode() for e in await log.history(query)]
            for query in stories
        ],
        "counts": list(await store.counts()),
        "oldest": str(await store.oldest_unsynced()),
    }


async def _opened(path: Path) -> tuple[SqliteStore, SqliteJournal]:
    store = SqliteStore(path, threads=False)
    await store.open()
    log = SqliteJournal(store)
    await log.open()
    return store, log


async def _closed(store: SqliteStore, log: SqliteJournal) -> None:
    await log.close()
    await store.close()


def _without_ids(found: dict[str, Any], *added: str) -> dict[str, Any]:
    """The read-back with its random parts out (ids, and when an unsync happened), and
    the fields ``added`` since the previous release."""

    def plain(text: str) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(text)
        for key in ("_id", *added):
            doc.pop(key, None)
        return doc

    return {
        "find": [list(plain(d).items()) for d in found["find"]],
        "unsynced": [
            [key, version, list(plain(d).items())] for key, version, _, d in found["unsynced"]
        ],
        "journal": found["journal"],
        "counts": found["counts"],
    }


async def test_a_store_of_the_previous_release_is_migrated_with_nothing_lost(
    tmp_path: Path,
) -> None:
    """Every document, the unsynced sweep, the journal and the counts read back as the
    previous release read them, and the store goes on working after."""
    path = tmp_path / "tracos.sqlite3"
    shutil.copyfile(V1_STORE, path)
    store, log = await _opened(path)
    try:
        assert await read_back(store, log) == json.loads(V1_EXPECTED.read_text())
    finally:
        await _closed(store, log)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == sqlite_schema.FORMAT
    db.close()


@pytest.mark.parametrize("before", [V1_STORE, V2_STORE], ids=["format-1", "format-2"])
async def test_a_store_of_an_earlier_format_reads_back_as_that_release_read_it(
    tmp_path: Path, before: Path
) -> None:
    """Documents, sweep, journal and counts as the release that wrote it read them, once
    migrated; its journal's entries keep their order, and entries written after come after."""
    path = tmp_path / "tracos.sqlite3"
    shutil.copyfile(before, path)
    expected = json.loads(before.with_name(before.stem + ".expected.json").read_text())
    store, log = await _opened(path)
    try:
        assert await read_back(store, log) == expected
        later = Entry(at=T0 + timedelta(days=1), direction="in", event="stale", file="a.json")
        await log.record([later])
        story = await log.history(HistoryQuery(file="a.json"))
    finally:
        await _closed(store, log)
    assert [e.event for e in story] == ["archived", "updated", "stale"]
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == sqlite_schema.FORMAT
        assert db.execute("SELECT count(*) FROM journal").fetchone()[0] == 4
    db.close()


async def test_an_order_made_with_its_file_entry_is_a_row_without_json(tmp_path: Path) -> None:
    """The usual inbound entry (an order inserted or updated from a file of several) keeps
    no JSON of its own and one index entry (its number); the file's entry has the rest."""
    path = tmp_path / "tracos.sqlite3"
    store, log = await _opened(path)
    own = Entry(at=T0, direction="in", event="archived", file="f.json", to="f.json", worker="w")
    orders = [
        Entry(
            at=T0,
            direction="in",
            event="inserted",
            number=n,
            file="f.json",
            version=T0,
            worker="w",
            id=journal.order_id(own.id, n),
        )
        for n in range(3)
    ]
    try:
        await log.record([*orders, own])
        assert await log.history(HistoryQuery(file="f.json")) == [*orders, own]
    finally:
        await _closed(store, log)
    with sqlite3.connect(path) as db:
        rows_found = db.execute("SELECT number, file, entry FROM journal ORDER BY id").fetchall()
    db.close()
    assert rows_found[:3] == [(n, None, None) for n in range(3)]
    assert rows_found[3][:2] == (None, "f.json")


async def test_a_new_store_holds_what_the_previous_release_held_for_the_same_writes(
    tmp_path: Path,
) -> None:
    """The same writes give the same documents, byte for byte and in the same key order,
    the same sweep and the same versions as the previous release's store."""
    store, log = await _opened(tmp_path / "tracos.sqlite3")
    try:
        await build_mixed_store(store, log)
        found = await read_back(store, log)
    finally:
        await _closed(store, log)
    # an inbound write also keeps the ERP's own version now (docs/agreement.md)
    assert _without_ids(found, ERP_VERSION) == _without_ids(json.loads(V1_EXPECTED.read_text()))


async def test_a_mark_writes_the_sync_columns_and_leaves_the_document_as_it_was(
    tmp_path: Path,
) -> None:
    """A document's JSON is not rewritten by its mark; it reads back marked all the same."""
    path = tmp_path / "tracos.sqlite3"
    store = SqliteStore(path, threads=False)
    await store.open()
    try:
        await store.put_documents([tracos_doc(1), tracos_doc(2)])
        [first, _] = [doc async for batch in store.iter_unsynced(10) for doc in batch]
        with sqlite3.connect(path) as db:
            before = db.execute("SELECT doc FROM workorders WHERE number = 1").fetchone()
        db.close()
        assert await store.mark_synced([SyncMark(first.key, first.version)], T0) == {"1"}
        with sqlite3.connect(path) as db:
            after = db.execute("SELECT doc FROM workorders WHERE number = 1").fetchone()
        db.close()
        [doc] = await store.find([1])
    finally:
        await store.close()
    assert after == before
    assert (doc["isSynced"], doc["syncedAt"]) == (True, T0)


async def test_no_index_serves_only_the_sequence_and_it_still_grows(tmp_path: Path) -> None:
    """The newest ``seq`` comes from a counter (no index on ``seq`` alone), the marks still
    find their rows through the index of unsynced rows, and every write gets a new one."""
    path = tmp_path / "tracos.sqlite3"
    store = SqliteStore(path, threads=False)
    await store.open()
    try:
        await store.put_documents([tracos_doc(1), tracos_doc(2)])
        await store.put_documents([tracos_doc(1, title="again")])
        await store.unsync([2])  # synced already? no: nothing changes, nothing is counted
        await store.upsert([order(2, T0 + timedelta(days=1))], T0)
        await store.unsync([2])
        swept = [doc async for batch in store.iter_unsynced(10) for doc in batch]
    finally:
        await store.close()
    assert [(d.key, d.version) for d in swept] == [("1", 3), ("2", 5)]
    with sqlite3.connect(path) as db:
        indexed = db.execute("SELECT sql FROM sqlite_master WHERE type = 'index'").fetchall()
        plan = db.execute(
            "EXPLAIN QUERY PLAN SELECT number FROM workorders WHERE synced = 0 AND seq IN (1, 2)"
        ).fetchall()
    db.close()
    assert not [sql for (sql,) in indexed if sql and sql.endswith("(seq)") and "WHERE" not in sql]
    assert "workorders_unsynced" in plan[0][-1]


async def test_a_migrated_store_is_refused_by_the_previous_release_and_its_traces_go(
    tmp_path: Path,
) -> None:
    """What the previous release's check refuses (a higher format, a column it does not
    know) is there; the ``seq`` index it creates before refusing is dropped at next open."""
    path = tmp_path / "tracos.sqlite3"
    shutil.copyfile(V1_STORE, path)
    store, log = await _opened(path)
    await _closed(store, log)
    with sqlite3.connect(path) as db:
        columns = {row[1] for row in db.execute("PRAGMA table_info(workorders)")}
        # format-1 releases refuse a higher format or the synced_at column; format-2 ones a
        # format above 2
        assert db.execute("PRAGMA user_version").fetchone()[0] > 2 and "synced_at" in columns
        db.execute("CREATE INDEX IF NOT EXISTS workorders_seq ON workorders (seq)")
    db.close()
    store, log = await _opened(path)
    try:
        assert await read_back(store, log) == json.loads(V1_EXPECTED.read_text())
    finally:
        await _closed(store, log)
    with sqlite3.connect(path) as db:
        assert (
            db.execute("SELECT 1 FROM sqlite_master WHERE name = 'workorders_seq'").fetchone()
            is None
        )
    db.close()


async def test_two_processes_writing_in_turn_never_give_the_same_sequence_number(
    tmp_path: Path,
) -> None:
    """The counter is read and advanced in each write transaction, whoever writes: writes
    of two connections in turn come out of the sweep in the order they were made."""
    path = tmp_path / "tracos.sqlite3"
    first, second = SqliteStore(path, threads=False), SqliteStore(path, threads=False)
    await first.open()
    await second.open()
    try:
        for number in range(1, 7):
            writer = first if number % 2 else second
            await writer.put_documents([tracos_doc(number), tracos_doc(number + 10)])
        swept = [doc async for batch in first.iter_unsynced(100) for doc in batch]
    finally:
        await first.close()
        await second.close()
    assert [d.version for d in swept] == list(range(1, 13))
    assert [d.key for d in swept] == [str(n + k) for n in range(1, 7) for k in (0, 10)]
