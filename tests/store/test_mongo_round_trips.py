"""What the MongoDB adapter sends per batch, counted on a real server (docs/performance.md): the
commands each store call issues, as the driver's command monitoring sees them.

The test server scans collections for conditional upserts, so its speed says nothing;
the number of commands (round trips) and their size are what a production server gets too.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import timedelta
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

from tests.helpers.builders import NOW, T0, order, tracos_doc
from tests.helpers.stores import unique_collection
from watcher.core.tracos import Outcome
from watcher.store import SyncMark
from watcher.store.mongo import MongoStore

pytestmark = [pytest.mark.anyio, pytest.mark.system]
BATCH = 1000
MONITORING = frozenset({"hello", "isMaster", "ismaster", "endSessions"})  # not ours


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
