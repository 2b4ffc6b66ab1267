"""A write applied whose reply is lost, retried by the worker: no outcome, counter, file or
journal line differs from the same work without the fault, and nothing is written twice.

The reply is lost by a proxy on loopback between the worker and the real wire server
(``tests/helpers/lost_replies.py``), twice in a row: the driver's own retry of the write
is lost too (an election longer than its server selection), so the worker retries it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.builders import NOW, T0, erp, order, tracos_doc
from tests.helpers.conditions import wait_for
from tests.helpers.lost_replies import ReplyLosingProxy
from tests.helpers.stores import make_settings, unique_collection
from tests.helpers.workers import drop, names, opened_store, running, stored_docs
from watcher.app import Worker
from watcher.core.settings import Settings
from watcher.store.configured import build_journal
from watcher.store.journal import HistoryQuery
from watcher.sync.stats import Count

pytestmark = [pytest.mark.anyio, pytest.mark.system]
LOST = 2  # the write's reply, then that of the driver's own retry of it
NUMBERS = (1, 2, 3, 5)


@asynccontextmanager
async def through_proxy(mongo_uri: str) -> AsyncIterator[ReplyLosingProxy]:
    proxy = ReplyLosingProxy.to(mongo_uri)
    try:
        yield proxy
    finally:
        proxy.close()


def proxied_settings(root: Path, mongo_uri: str, proxy: ReplyLosingProxy) -> Settings:
    return make_settings(
        root,
        mongo_uri=proxy.uri_for(mongo_uri),
        mongo_database="watcher_tests",
        mongo_collection=unique_collection("lost"),
    )


def direct(settings: Settings, mongo_uri: str) -> Settings:
    """The same store, not through the proxy (TracOS's writes, the test's own)."""
    return make_settings(
        settings.state_dir.parent / "direct",
        mongo_uri=mongo_uri,
        mongo_database=settings.mongo_database,
        mongo_collection=settings.mongo_collection,
    )


async def stored_before(settings: Settings, mongo_uri: str) -> None:
    """Order 2 in an older version, order 3 in the one the file brings (both synced)."""
    async with opened_store(direct(settings, mongo_uri)) as store:
        await store.upsert([order(2, T0 - timedelta(hours=1)), order(3, T0)], NOW)


async def summary(settings: Settings, worker: Worker) -> dict[str, Any]:
    """What a run came to: counters, files, stored orders (each number once), the journal."""
    docs = await stored_docs(settings)
    async with opened_store(settings) as store:
        journal = build_journal(settings, store)
        assert journal is not None
        await journal.open()
        events = {n: [e.event for e in await journal.history(HistoryQuery(n))] for n in NUMBERS}
        await journal.close()
    return {
        "counters": {c: n for c, n in worker.stats.counters.items() if c is not Count.RETRIES},
        "archived": names(settings.archive_dir),
        "failed": names(settings.failed_dir),
        "outbound": names(settings.outbound_dir),
        "stored": sorted((d["number"], d["updatedAt"], d.get("isSynced")) for d in docs),
        "journal": events,
    }


async def inbound_run(root: Path, mongo_uri: str, lost: int) -> dict[str, Any]:
    """One file of three orders (new, newer, the same version) in one upsert batch."""
    async with through_proxy(mongo_uri) as proxy:
        settings = proxied_settings(root, mongo_uri, proxy)
        await stored_before(settings, mongo_uri)
        batch = [erp(orderNo=n) for n in (1, 2, 3)]
        drop(settings.inbound_dir, "batch.json", json.dumps(batch).encode())
        proxy.lose("update", lost, collection=settings.mongo_collection)
        async with running(settings) as worker:
            await wait_for(lambda: names(settings.archive_dir) == ["batch.json"], "archived")
            assert proxy.lost == ["update"] * lost
        return await summary(settings, worker)


async def test_a_lost_reply_on_an_inbound_batch_changes_nothing(
    tmp_path: Path, mongo_uri: str
) -> None:
    """The upsert of a new, a newer and an unchanged order is applied, its reply lost and
    the driver's retry's too: the worker's retry still says inserted, updated, unchanged."""
    clean = await inbound_run(tmp_path / "clean", mongo_uri, lost=0)
    faulty = await inbound_run(tmp_path / "faulty", mongo_uri, lost=LOST)
    assert faulty == clean
    counters = faulty["counters"]
    assert counters[Count.ORDERS_INSERTED] == counters[Count.ORDERS_UPDATED] == 1
    assert counters[Count.ORDERS_UNCHANGED] == 1
    assert [number for number, _, _ in faulty["stored"]] == [1, 2, 3]
    assert faulty["journal"][1] == ["inserted"] and faulty["journal"][2] == ["updated"]


async def outbound_run(root: Path, mongo_uri: str, lost: int) -> dict[str, Any]:
    """One unsynced TracOS order exported: its conditional mark's reply lost ``lost`` times."""
    async with through_proxy(mongo_uri) as proxy:
        settings = proxied_settings(root, mongo_uri, proxy)
        proxy.lose("update", lost, collection=settings.mongo_collection)
        async with running(settings) as worker:
            async with opened_store(direct(settings, mongo_uri)) as store:
                await store.put_documents([tracos_doc(5)])
            await wait_for(lambda: len(proxy.lost) == lost, "the marks' replies lost")
            exported = (Count.EXPORTED, Count.CHANGED_DURING_EXPORT)
            await wait_for(lambda: sum(worker.stats.counters[c] for c in exported) > 0, "marked")
        return await summary(settings, worker)


async def test_a_lost_reply_on_an_outbound_mark_changes_nothing(
    tmp_path: Path, mongo_uri: str
) -> None:
    """The conditional mark is applied, its reply lost and the driver's retry's too: the
    worker's retry finds its own mark, exported once, never "changed meanwhile"."""
    clean = await outbound_run(tmp_path / "clean", mongo_uri, lost=0)
    faulty = await outbound_run(tmp_path / "faulty", mongo_uri, lost=LOST)
    assert faulty == clean
    assert faulty["counters"][Count.EXPORTED] == 1
    assert faulty["counters"][Count.CHANGED_DURING_EXPORT] == 0
    assert faulty["outbound"] == ["5.json"] and faulty["journal"][5] == ["exported"]
