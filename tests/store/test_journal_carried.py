"""Journal entries taken along by the store's next write (``PendingEntries``), on both
production stores: in the same SQLite transaction, in the same MongoDB command."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.errors import NotPrimaryError

from tests.helpers.builders import NOW, T0, order, tracos_doc
from tests.helpers.stores import all_unsynced
from watcher.core.errors import StoreDamaged, StoreUnavailable
from watcher.core.settings import Settings
from watcher.core.tracos import Outcome
from watcher.store import SyncMark, WorkOrderStore
from watcher.store.configured import build_journal, build_store
from watcher.store.journal import (
    CarriesJournal,
    Entry,
    HistoryQuery,
    Journal,
    PendingEntries,
    new_id,
    order_id,
)
from watcher.store.mongo_carry import Carrier
from watcher.store.mongo_journal import journal_name
from watcher.store.sqlite import SqliteStore

pytestmark = pytest.mark.anyio
Opened = tuple[WorkOrderStore, Journal, PendingEntries]
EMBEDDED_ONLY = pytest.mark.parametrize("any_settings", ["sqlite"], indirect=True)


@pytest.fixture
async def opened(any_settings: Settings) -> AsyncIterator[Opened]:
    """A store that carries the entries waiting in a ``PendingEntries``, and its journal."""
    store = build_store(any_settings)
    journal = build_journal(any_settings, store)
    assert journal is not None and isinstance(store, CarriesJournal)
    pending = PendingEntries()
    store.carry(pending)
    await store.open()
    await journal.open()
    yield store, journal, pending
    await journal.close()
    if any_settings.mongo_uri:
        client: MongoClient[dict[str, Any]]
        with MongoClient(any_settings.mongo_uri) as client:
            for name in (
                journal_name(any_settings.mongo_collection),
                any_settings.mongo_collection,
            ):
                client[any_settings.mongo_database].drop_collection(name)
    await store.close()


def a_files_entries(name: str, *numbers: int) -> list[Entry]:
    """A file's entry and its orders' (their ids pointing at it), as inbound makes them."""
    own = Entry(at=NOW, direction="in", event="archived", file=name, to=f"archive/{name}")
    orders = [
        Entry(at=NOW, direction="in", event="inserted", number=n, file=name, id=order_id(own.id, i))
        for i, n in enumerate(numbers)
    ]
    return [*orders, own]


async def story(journal: Journal, name: str) -> list[str]:
    return [e.event for e in await journal.history(HistoryQuery(file=name))]


async def test_an_upsert_writes_the_waiting_entries_in_its_own_write(opened: Opened) -> None:
    store, journal, pending = opened
    pending.add(a_files_entries("a.json", 1, 2))
    assert await store.upsert([order(3, T0)], NOW) == [Outcome.INSERTED]
    assert len(pending) == 0 and pending.since is None
    assert await story(journal, "a.json") == ["inserted", "inserted", "archived"]
    assert [e.number for e in await journal.history(HistoryQuery(number=2))] == [2]


async def test_a_mark_writes_the_waiting_entries_too(opened: Opened) -> None:
    store, journal, pending = opened
    await store.put_documents([tracos_doc(5)])
    [doc] = await all_unsynced(store)
    out = Entry(at=NOW, direction="out", event="exported", number=4, file="4.json", id=new_id())
    pending.add([out])
    assert await store.mark_synced([SyncMark(doc.key, doc.version)], NOW) == {doc.key}
    assert len(pending) == 0
    assert await journal.history(HistoryQuery(number=4)) == [out]


async def test_entries_written_already_count_as_written(opened: Opened) -> None:
    """A write repeated (its reply lost, its commit not known) writes each entry once."""
    store, journal, pending = opened
    entries = a_files_entries("b.json", 1)
    await journal.record(entries)
    pending.add(entries)
    await store.upsert([order(1, T0)], NOW)
    assert len(pending) == 0
    assert await story(journal, "b.json") == ["inserted", "archived"]


@EMBEDDED_ONLY  # MongoDB's failed command: tests/store/test_mongo_faults.py
async def test_entries_of_a_write_that_fails_wait_for_the_next(
    opened: Opened, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store's write rolled back: its journal entries with it, and they wait again."""
    store, journal, pending = opened
    assert isinstance(store, SqliteStore)

    checks = []

    def replaced() -> None:  # found so at the commit, not before the transaction
        checks.append(1)
        if len(checks) > 1:
            raise StoreDamaged("the file was replaced (injected)")

    pending.add(a_files_entries("c.json", 1))
    with monkeypatch.context() as patched:
        patched.setattr(store, "_check_same_file", replaced)
        with pytest.raises(StoreDamaged):
            await store.upsert([order(1, T0)], NOW)
    assert len(pending) == 2 and await story(journal, "c.json") == []
    assert await store.find() == []
    await store.upsert([order(1, T0)], NOW)
    assert len(pending) == 0 and await story(journal, "c.json") == ["inserted", "archived"]


@EMBEDDED_ONLY  # the embedded store's journal table
async def test_the_journals_trouble_never_fails_the_stores_write(
    opened: Opened, any_settings: Settings
) -> None:
    """The journal table dropped: the upsert is stored all the same, and its entries wait
    for a write of their own (where the trouble is said)."""
    store, _, pending = opened
    with sqlite3.connect(any_settings.sqlite_path) as db:
        db.execute("DROP TABLE journal")
    pending.add(a_files_entries("d.json", 1))
    assert await store.upsert([order(1, T0)], NOW) == [Outcome.INSERTED]
    assert len(pending) == 2
    assert [d["number"] for d in await store.find()] == [1]


class _Journal:
    """A journal collection whose inserts meet a step-down."""

    async def insert_many(self, docs: list[Any], ordered: bool) -> None:
        raise NotPrimaryError("not primary")


class _Database(dict[str, Any]):
    name = "db"


class _Orders:
    name = "orders"
    write_concern = None
    database = _Database(orders_journal=_Journal())


async def test_entries_an_answered_write_could_not_insert_are_put_back_with_the_outage() -> None:
    """A server without the client-level bulkWrite: the store's write answered, the
    entries' own insert met a step-down. They wait again, and the outage is told (its
    caller never saw it): the journal's writer shows the store unavailable."""
    pending, told = PendingEntries(), list[Exception]()
    pending.unwritten = told.append
    pending.add(a_files_entries("1.json", 1))

    async def answered(ops: Any) -> dict[str, Any]:
        return {"nUpserted": 1}

    details = await Carrier(pending, _Orders(), client=None).write([object()], answered)
    assert details == {"nUpserted": 1} and len(pending) == 2
    [why] = told
    assert isinstance(why, StoreUnavailable) and "not primary" in str(why)
