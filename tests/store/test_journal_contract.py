"""One contract for the sync journal on both production stores (SQLite, a real MongoDB)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import anyio
import msgspec
import pytest
from pymongo import MongoClient

from tests.helpers.builders import NOW, T0
from tests.helpers.stores import make_settings
from watcher.core.settings import Settings
from watcher.store import WorkOrderStore
from watcher.store.configured import build_journal, build_store
from watcher.store.journal import Entry, HistoryQuery, Journal, order_id
from watcher.store.mongo_journal import TTL_INDEX, journal_name

pytestmark = pytest.mark.anyio


@pytest.fixture
async def opened(any_settings: Settings) -> AsyncIterator[tuple[WorkOrderStore, Journal]]:
    store = build_store(any_settings)
    await store.open()
    journal = build_journal(any_settings, store)
    assert journal is not None
    await journal.open()
    yield store, journal
    await journal.close()
    if any_settings.mongo_uri:
        client: MongoClient[dict[str, Any]]
        with MongoClient(any_settings.mongo_uri) as client:
            name = journal_name(any_settings.mongo_collection)
            client[any_settings.mongo_database].drop_collection(name)
    await store.close()


@pytest.fixture
def journal(opened: tuple[WorkOrderStore, Journal]) -> Journal:
    return opened[1]


def entry(number: int | None = 1, at_ms: int = 0, **fields: Any) -> Entry:
    values: dict[str, Any] = {"direction": "in", "event": "inserted", "file": f"{number}.json"}
    values.update(fields)
    return Entry(at=NOW + timedelta(milliseconds=at_ms), number=number, **values)


async def test_an_order_story_comes_back_whole_oldest_first(journal: Journal) -> None:
    """Every field survives the store, and entries come oldest first, ties in writing order."""
    full = entry(
        7,
        at_ms=5,
        direction="out",
        event="exported",
        file="7.json",
        to="there",
        version=T0,
        reason="why",
        counts={"inserted": 2},
        worker="w-1",
    )
    first, tie = entry(7, event="inserted"), entry(7, event="stale")
    await journal.record([full, entry(8)])
    await journal.record([first, tie])
    assert await journal.history(HistoryQuery(number=7)) == [first, tie, full]
    assert await journal.history(HistoryQuery(number=9)) == []


async def test_a_file_story_has_its_own_entries_and_its_orders(journal: Journal) -> None:
    mine = [entry(1, file="a.json"), entry(2, 1, file="a.json"), entry(None, 2, file="a.json")]
    await journal.record([*mine, entry(3, file="b.json")])
    assert await journal.history(HistoryQuery(file="a.json")) == mine


async def test_entries_written_again_add_no_line(journal: Journal) -> None:
    """Each entry's id is made with it: the same batch written twice (a retry after a lost
    reply, a write that timed out but went through), or again within a larger one, is one
    set of lines."""
    batch = [entry(4, at_ms=i, event=f"e{i}") for i in range(3)]
    await journal.record(batch)
    await journal.record(batch)
    later = entry(4, at_ms=9, event="later")
    await journal.record([*batch, later])
    assert await journal.history(HistoryQuery(number=4)) == [*batch, later]


async def test_a_file_and_the_orders_made_with_its_entry_read_back_whole(
    journal: Journal,
) -> None:
    """Orders whose ids point at their file's entry (as an inbound batch makes them) read
    back as they were made, by number and by file, among entries of other files."""
    own = entry(
        None, 2, event="partly_rejected", file="f.json", to="f.json", reason="why", worker="w"
    )
    own = msgspec.structs.replace(own, counts={"inserted": 2})
    orders = [
        entry(n, 1, file="f.json", version=T0, worker="w", id=order_id(own.id, n)) for n in range(2)
    ]
    other = entry(0, at_ms=3, event="updated", file="g.json", worker="w")
    await journal.record([*orders, own, other])
    await journal.record([*orders, own])
    assert await journal.history(HistoryQuery(file="f.json")) == [*orders, own]
    assert await journal.history(HistoryQuery(number=0)) == [orders[0], other]
    assert await journal.history(HistoryQuery(number=1)) == [orders[1]]
    assert await journal.history(HistoryQuery(file="f.json", limit=1)) == [own]


async def test_every_shape_of_an_order_entry_reads_back_as_made(journal: Journal) -> None:
    """A file of one order archived (the order's entry, with ``to``), one with a trace, one
    without a file or version: each as it was made, by number and by file."""
    alone = entry(6, file="6.json", to="6-1.json", version=T0, worker="w")
    traced = entry(6, 1, file="6.json", worker="w", trace="ab" * 16)
    bare = entry(6, 2, file=None, event="stale")
    await journal.record([alone, traced, bare])
    assert await journal.history(HistoryQuery(number=6)) == [alone, traced, bare]
    assert await journal.history(HistoryQuery(file="6.json")) == [alone, traced]


async def test_limit_keeps_the_newest_and_since_the_later(journal: Journal) -> None:
    entries = [entry(1, at_ms=i, event=f"e{i}") for i in range(10)]
    await journal.record(entries)
    assert await journal.history(HistoryQuery(number=1, limit=3)) == entries[-3:]
    later = HistoryQuery(number=1, since=NOW + timedelta(milliseconds=6))
    assert await journal.history(later) == entries[6:]


async def test_forget_by_age_then_by_count(journal: Journal) -> None:
    old = [entry(1, at_ms=-86_400_000 * 40 + i) for i in range(3)]
    recent = [entry(1, at_ms=i, event=f"e{i}") for i in range(5)]
    await journal.record([*old, *recent])
    assert await journal.forget(NOW - timedelta(days=30), keep=100) == 3
    assert await journal.history(HistoryQuery(number=1)) == recent
    assert await journal.forget(NOW - timedelta(days=30), keep=2) == 3
    assert await journal.history(HistoryQuery(number=1)) == recent[-2:]


async def test_concurrent_writers_lose_nothing(
    any_settings: Settings, opened: tuple[WorkOrderStore, Journal]
) -> None:
    """Two workers' journals on one store: every entry of both, each once."""
    store, first = opened
    second = build_journal(any_settings, store)
    assert second is not None
    await second.open()

    async def write(journal: Journal, worker: str) -> None:
        for batch in range(20):
            made = [entry(5, at_ms=batch, worker=worker, event=f"{batch}") for _ in range(10)]
            await journal.record(made)

    async with anyio.create_task_group() as tg:
        tg.start_soon(write, first, "a")
        tg.start_soon(write, second, "b")
    found = await first.history(HistoryQuery(number=5))
    assert sorted((e.worker, e.event) for e in found) == sorted(
        (w, str(b)) for w in "ab" for b in range(20) for _ in range(10)
    )
    assert [e.at for e in found] == sorted(e.at for e in found)


async def test_a_store_without_a_journal_reads_as_empty(any_settings: Settings) -> None:
    """An inspection command on a store made before the journal existed finds nothing."""
    store = build_store(any_settings)
    await store.open()
    try:
        journal = build_journal(any_settings, store)
        assert journal is not None
        await journal.open(create=False)
        assert await journal.history(HistoryQuery(number=1)) == []
    finally:
        await store.close()


async def test_history_days_zero_means_no_journal(any_settings: Settings) -> None:
    off = make_settings(any_settings.state_dir.parent, history_days=0.0)
    assert build_journal(off, build_store(off)) is None


@pytest.mark.system
async def test_mongodb_expires_entries_by_a_ttl_index(mongo_settings: Settings) -> None:
    """The TTL follows HISTORY_DAYS, also when it changes between two starts."""
    store = build_store(mongo_settings)
    await store.open()
    try:
        for days in (30.0, 2.5):
            settings = make_settings(
                mongo_settings.state_dir.parent,
                mongo_uri=mongo_settings.mongo_uri,
                mongo_database=mongo_settings.mongo_database,
                mongo_collection=mongo_settings.mongo_collection,
                history_days=days,
            )
            journal = build_journal(settings, store)
            assert journal is not None
            await journal.open()
            client: MongoClient[dict[str, Any]]
            with MongoClient(mongo_settings.mongo_uri) as client:
                name = journal_name(mongo_settings.mongo_collection)
                indexes = client[mongo_settings.mongo_database][name].index_information()
            assert indexes[TTL_INDEX]["expireAfterSeconds"] == round(days * 86400)
    finally:
        await store.close()
