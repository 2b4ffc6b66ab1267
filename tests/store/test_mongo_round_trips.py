"""What the MongoDB adapter sends per batch, counted on a real server (docs/performance.md): the
commands each store call issues, as the driver's command monitoring sees them.

The test server scans collections for conditional upserts, so its speed says nothing;
the number of commands (round trips) and their size are what a production server gets too.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import bson
import pytest
from pymongo import AsyncMongoClient
from pymongo.monitoring import (
    CommandFailedEvent,
    CommandListener,
    CommandStartedEvent,
    CommandSucceededEvent,
)

from tests.helpers.builders import NOW, T0, erp, order, tracos_doc
from tests.helpers.stores import make_settings, unique_collection
from tests.helpers.workers import drop, names
from watcher.app import build_worker
from watcher.core.tracos import Outcome
from watcher.store import SyncMark, mongo_carry
from watcher.store.journal import Entry, HistoryQuery, PendingEntries, new_id
from watcher.store.mongo import MongoStore
from watcher.store.mongo_journal import MongoJournal, journal_name

pytestmark = [pytest.mark.anyio, pytest.mark.system]
BATCH = 1000
MONITORING = frozenset({"hello", "isMaster", "ismaster", "endSessions"})  # not ours
WRITES = frozenset({"update", "insert", "bulkWrite"})


@dataclass
class Commands(CommandListener):
    """Every command the client sends (less the driver's own monitoring), and its bytes."""

    names: Counter[str] = field(default_factory=Counter)
    sent: int = 0
    received: int = 0

    def started(self, event: CommandStartedEvent) -> None:
        if event.command_name not in MONITORING:
            self.names[event.command_name] += 1
            self.sent += len(bson.encode(event.command))

    def succeeded(self, event: CommandSucceededEvent) -> None:
        if event.command_name not in MONITORING:
            self.received += len(bson.encode(event.reply))

    def failed(self, event: CommandFailedEvent) -> None:
        pass

    def reset(self) -> None:
        self.names.clear()
        self.sent = self.received = 0

    def writes(self) -> Counter[str]:
        return Counter({name: n for name, n in self.names.items() if name in WRITES})

    def note(self, what: str) -> str:
        total = sum(self.names.values())
        kb = f"{self.sent / 1024:.0f} KB sent, {self.received / 1024:.0f} KB received"
        line = f"{what}: {total} commands {dict(self.names)}, {kb}"
        print(line)  # the figures docs/performance.md quotes (pytest -s)
        return line


@pytest.fixture
async def counted(mongo_uri: str) -> AsyncIterator[tuple[MongoStore, Commands]]:
    """A MongoStore on a fresh collection, through a client whose commands are counted."""
    commands = Commands()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongo_uri, tz_aware=True, event_listeners=[commands]
    )
    store = MongoStore(client["watcher_tests"][unique_collection("trips")], client)
    await store.open()
    commands.reset()
    yield store, commands
    await store.collection.drop()
    await store.close()


@pytest.fixture(params=["bulkWrite", "older server"])
async def carrying(
    request: pytest.FixtureRequest, mongo_uri: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[MongoStore, Commands, PendingEntries, MongoJournal]]:
    """A counted MongoStore that takes the journal's waiting entries along with its writes:
    through the client-level bulkWrite (this server has it), or as on a server without it."""
    if request.param == "older server":
        monkeypatch.setattr(mongo_carry, "CLIENT_BULK_WIRE", 99)  # newer than this server
    commands = Commands()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongo_uri, tz_aware=True, event_listeners=[commands]
    )
    name = unique_collection("trips")
    store = MongoStore(client["watcher_tests"][name], client)
    pending = PendingEntries()
    store.carry(pending)
    journal = MongoJournal(client["watcher_tests"][journal_name(name)], 86400)
    await store.open()
    await journal.open()
    commands.reset()
    yield store, commands, pending, journal
    await store.collection.drop()
    await client["watcher_tests"].drop_collection(journal_name(name))
    await store.close()


def journalled(numbers: range) -> list[Entry]:
    return [
        Entry(at=NOW, direction="in", event="inserted", number=n, file=f"{n}.json", id=new_id())
        for n in numbers
    ]


def erp_order(number: int, updated: timedelta = timedelta(0)) -> Any:
    title = f"Example workorder #{number}"
    return order(number, T0 + updated, title=title, description=f"{title} description")


async def test_an_inbound_batch_of_1000_orders_is_one_bulk_write(
    counted: tuple[MongoStore, Commands],
) -> None:
    """1,000 new orders: one ``update`` command of about 400 bytes an order. A batch with
    orders not newer than the stored ones: that command, whose refusals are then read back
    in one ``find`` (never a find + getMore)."""
    store, commands = counted
    batch = [erp_order(n) for n in range(BATCH)]
    assert await store.upsert(batch, NOW) == [Outcome.INSERTED] * BATCH
    assert commands.names == {"update": 1}, commands.note("upsert of 1,000 new orders")
    commands.note("upsert of 1,000 new orders")
    assert commands.sent < 500 * BATCH
    commands.reset()
    again = [erp_order(n, timedelta(seconds=n % 2)) for n in range(100)]  # half newer
    assert await store.upsert(again, NOW) == [Outcome.UNCHANGED, Outcome.UPDATED] * 50
    assert commands.names == {"update": 1, "find": 1}, commands.note("half unchanged")
    commands.note("upsert of 100 orders, 50 of them unchanged")


async def test_a_sweep_reads_one_reply_per_batch(counted: tuple[MongoStore, Commands]) -> None:
    """2,500 unsynced documents in batches of 1,000: the find and a getMore per batch after
    it, at most ceil(2500 / 1000) + 1 commands, and never all documents at once."""
    store, commands = counted
    docs = [tracos_doc(n) for n in range(2500)]
    await store.collection.insert_many(docs)  # as TracOS would, in one command
    commands.reset()
    sizes = []
    async with aclosing(store.iter_unsynced(BATCH)) as batches:
        async for batch in batches:
            sizes.append(len(batch))
    assert sizes == [1000, 1000, 500]
    reads = commands.names["find"] + commands.names["getMore"]
    assert commands.names["find"] == 1 and reads <= math.ceil(2500 / BATCH) + 1
    assert set(commands.names) <= {"find", "getMore", "killCursors"}
    commands.note("sweep of 2,500 unsynced documents")


async def test_an_outbound_batch_checks_and_marks_in_one_command_each(
    counted: tuple[MongoStore, Commands],
) -> None:
    """The export of 1,000 documents: one ``find`` (still current?) and one ``update``
    (the conditional marks); a mark that misses one asks which, in one more ``find``."""
    store, commands = counted
    await store.collection.insert_many([tracos_doc(n) for n in range(BATCH)])
    [batch] = [b async for b in store.iter_unsynced(BATCH)]
    marks = [SyncMark(d.key, d.version) for d in batch]
    commands.reset()
    assert len(await store.unsynced_at(marks)) == BATCH
    assert commands.names == {"find": 1}, commands.note("still current? (1,000)")
    commands.note("check of 1,000 exports")
    commands.reset()
    assert len(await store.mark_synced(marks, NOW)) == BATCH
    assert commands.names == {"update": 1}, commands.note("marks")
    commands.note("conditional marks of 1,000 exports")
    commands.reset()
    assert await store.mark_synced(marks[:10], NOW) == set()  # already marked: none modified
    assert commands.names == {"update": 1, "find": 1}


async def test_a_burst_of_inbound_batches_is_one_command_each_with_the_journal(
    carrying: tuple[MongoStore, Commands, PendingEntries, MongoJournal],
) -> None:
    """Five batches of 200 orders, each batch's entries made after it: every batch after
    the first takes the entries before it along. One ``bulkWrite`` a batch where the
    server has it; an ``update`` and an ``insert`` where it has not."""
    store, commands, pending, journal = carrying
    one_command = mongo_carry.CLIENT_BULK_WIRE == 25
    per_batch = []
    for start in range(0, 1000, 200):
        numbers = range(start, start + 200)
        commands.reset()
        assert set(await store.upsert([erp_order(n) for n in numbers], NOW)) == {Outcome.INSERTED}
        per_batch.append(commands.writes())
        pending.add(journalled(numbers))
    assert sum(commands.names.values()) == sum(per_batch[-1].values())  # nothing but writes
    expected = {"bulkWrite": 1} if one_command else {"update": 1, "insert": 1}
    assert per_batch == [{"update": 1}, *[expected] * 4], commands.note("burst")
    commands.note(f"inbound batch of 200 orders with 200 entries ({expected})")
    assert len(pending) == 200  # the last batch's: written with the next write, or alone
    assert [e.number for e in await journal.history(HistoryQuery(number=799))] == [799]
    assert await journal.history(HistoryQuery(number=800)) == []


async def test_an_outbound_batch_is_its_check_and_its_marks_with_the_journal(
    carrying: tuple[MongoStore, Commands, PendingEntries, MongoJournal],
) -> None:
    """The export of 1,000 documents: the check (``find``), then the marks with the
    entries waiting in one ``bulkWrite`` (or an ``update`` and an ``insert``)."""
    store, commands, pending, journal = carrying
    await store.collection.insert_many([tracos_doc(n) for n in range(BATCH)])
    [batch] = [b async for b in store.iter_unsynced(BATCH)]
    marks = [SyncMark(d.key, d.version) for d in batch]
    pending.add(journalled(range(BATCH, BATCH + 1000)))
    commands.reset()
    assert len(await store.unsynced_at(marks)) == BATCH
    assert len(await store.mark_synced(marks, NOW)) == BATCH
    one_command = mongo_carry.CLIENT_BULK_WIRE == 25
    expected = {"find": 1, "bulkWrite": 1} if one_command else {"find": 1, "update": 1, "insert": 1}
    assert commands.names == expected, commands.note("outbound batch")
    commands.note(f"outbound batch of 1,000 with 1,000 entries ({expected})")
    assert len(pending) == 0
    assert len(await journal.history(HistoryQuery(number=BATCH + 999))) == 1


async def test_watcher_once_writes_each_batch_and_its_journal_in_one_command(
    tmp_path: Path, mongo_uri: str
) -> None:
    """``watcher once`` over 40 one-order files in batches of 10: one write command per
    batch (the first an ``update``, each later one a ``bulkWrite`` with the journal of
    the batch before), and the last batch's entries in one ``insert`` at the end."""
    settings = make_settings(
        tmp_path,
        mongo_uri=mongo_uri,
        mongo_database="watcher_tests",
        mongo_collection=unique_collection("once"),
        batch_size=10,
    )
    for n in range(40):
        drop(settings.inbound_dir, f"{n}.json", json.dumps(erp(orderNo=n)).encode())
    commands = Commands()
    uri, database, collection = mongo_uri, settings.mongo_database, settings.mongo_collection
    store = MongoStore.connect(uri, database, collection, event_listeners=[commands])
    worker = build_worker(settings, store)
    try:
        await worker.open()
        commands.reset()
        await worker.once()
        assert len(names(settings.archive_dir)) == 40
        assert commands.writes() == {"update": 1, "bulkWrite": 3}, commands.note("once")
        commands.reset()
    finally:
        await worker.close()
    assert commands.writes() == {"insert": 1}  # the last batch's entries, at the end
    check = MongoStore.connect(uri, database, collection)
    try:
        journal = MongoJournal(check.collection.database[journal_name(collection)], 86400)
        for n in (0, 15, 39):
            [entry] = await journal.history(HistoryQuery(number=n))
            assert (entry.event, entry.to) == ("inserted", f"{n}.json")
    finally:
        await check.collection.drop()
        await check.collection.database.drop_collection(journal_name(collection))
        await check.close()
