"""A kill -9 of the MongoDB server under load, then a restart on the same storage and port:
nothing lost, nothing doubled, the journal's labels right.

The server keeps its data on disk and syncs on commit, as the worker's majority write
concern implies of a real deployment (an acknowledged write survives the crash). The
worker runs in the test, with the production retry policy; ERP files land before and
while the server is down, TracOS documents before and after.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.helpers.builders import erp, tracos_doc
from tests.helpers.conditions import wait_for
from tests.helpers.harness import claimed_files, waiting_files
from tests.helpers.mongo_server import MongoServer
from tests.helpers.stores import make_settings, unique_collection
from tests.helpers.workers import drop, names, opened_store, running
from watcher.app import Worker
from watcher.core.settings import Settings
from watcher.core.tracos import read_tracos
from watcher.erp.formats.challenge import FORMAT as CHALLENGE
from watcher.store.configured import build_journal
from watcher.store.journal import HistoryQuery
from watcher.sync.stats import Count

pytestmark = [pytest.mark.anyio, pytest.mark.system, pytest.mark.usefixtures("real_backoff")]
SINGLE_FILES = 240  # one order each, then batches of BATCH_ORDERS: a few hundred orders
BATCH_FILES, BATCH_ORDERS = 12, 5
TRACOS_FIRST = 100_000  # TracOS's numbers, apart from the ERP's
TRACOS_BEFORE, TRACOS_PER_RESTART = 60, 20  # TracOS documents: more after each restart
QUIET_SECONDS = 120.0
KILLS_AT = (40, 140, 240)  # files archived: the server is killed once past each


@pytest.fixture
def disk_server(tmp_path: Path) -> Iterator[MongoServer]:
    """A SecantusDB replica set on disk that syncs on commit (killed and restarted here)."""
    server = MongoServer(storage=str(tmp_path / "db"), sync_on_commit=True).start()
    try:
        yield server
    finally:
        server.stop()


def erp_files(first: int, singles: int, batches: int) -> dict[str, bytes]:
    """``singles`` one-order files, then ``batches`` files of BATCH_ORDERS orders, each
    order number once, from ``first``."""
    files, number = {}, first
    for _ in range(singles):
        files[f"o{number}.json"] = json.dumps(erp(orderNo=number)).encode()
        number += 1
    for _ in range(batches):
        orders = [erp(orderNo=n) for n in range(number, number + BATCH_ORDERS)]
        files[f"b{number}.json"] = json.dumps(orders).encode()
        number += BATCH_ORDERS
    return files


def drop_all(settings: Settings, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        drop(settings.inbound_dir, name, data)


def numbers_in(files: dict[str, bytes]) -> list[int]:
    found: list[int] = []
    for data in files.values():
        loaded = json.loads(data)
        found += [o["orderNo"] for o in (loaded if isinstance(loaded, list) else [loaded])]
    return found


async def put_tracos(settings: Settings, numbers: range) -> None:
    async with opened_store(settings) as store:
        await store.put_documents([tracos_doc(n) for n in numbers])


async def stored(settings: Settings) -> list[dict[str, Any]]:
    async with opened_store(settings) as store:
        return await store.find()


def quiet(settings: Settings, files: int, worker: Worker, tracos: int) -> bool:
    """Every file filed away, none waiting or claimed, every TracOS order exported."""
    done = len(names(settings.archive_dir)) + len(names(settings.failed_dir)) >= files
    idle = not waiting_files(settings) and not claimed_files(settings)
    return done and idle and worker.stats.counters[Count.EXPORTED] >= tracos


async def journal_events(
    settings: Settings, numbers: list[int], direction: str
) -> dict[int, list[str]]:
    """Each order's events in ``direction`` (inbound: its outcomes), oldest first."""
    async with opened_store(settings) as store:
        journal = build_journal(settings, store)
        assert journal is not None
        await journal.open()
        try:
            return {
                n: [
                    e.event
                    for e in await journal.history(HistoryQuery(n))
                    if e.direction == direction
                ]
                for n in numbers
            }
        finally:
            await journal.close()


async def kill_in_a_call(server: MongoServer, worker: Worker, settings: Settings, at: int) -> None:
    """SIGKILL the server once ``at`` files are archived, while a store call is in flight."""

    def due() -> bool:
        return len(names(settings.archive_dir)) >= at and bool(worker.stats.calls)

    await wait_for(due, f"{at} files archived and a store call under way")
    server.kill()  # at once, from the loop (a few ms): the call is still in flight


def progress(settings: Settings, worker: Worker) -> dict[str, int]:
    return {
        "archived": len(names(settings.archive_dir)),
        "exported": worker.stats.counters[Count.EXPORTED],
    }


async def test_a_server_killed_under_load_loses_and_doubles_nothing(
    tmp_path: Path, disk_server: MongoServer
) -> None:
    """Three SIGKILLs, each while a store call is in flight, each followed by a restart on
    the same storage and port once the worker has seen the outage: every order stored
    once, every file archived, every TracOS version exported and marked once with its
    file holding it, and the journal says "inserted" and "exported", once each."""
    settings = make_settings(
        tmp_path,
        mongo_uri=disk_server.uri,
        mongo_database="watcher_tests",
        mongo_collection=unique_collection("crash"),
        batch_size=20,
    )
    before = erp_files(1, SINGLE_FILES, BATCH_FILES)
    during = erp_files(1 + len(numbers_in(before)), SINGLE_FILES // 2, BATCH_FILES // 2)
    tracos = range(TRACOS_FIRST, TRACOS_FIRST + TRACOS_BEFORE + TRACOS_PER_RESTART * len(KILLS_AT))
    await put_tracos(settings, tracos[:TRACOS_BEFORE])
    drop_all(settings, before)
    figures: dict[str, Any] = {"kills": []}
    async with running(settings) as worker:
        for kill, at in enumerate(KILLS_AT):
            await kill_in_a_call(disk_server, worker, settings, at)
            figures["kills"].append(progress(settings, worker))
            if kill == 0:
                drop_all(settings, during)  # files keep landing while the server is down
            await wait_for(lambda: not worker.stats.store.connected, "the worker sees it down")
            await anyio.to_thread.run_sync(disk_server.start)  # same storage, same port
            more = TRACOS_BEFORE + TRACOS_PER_RESTART * kill
            await put_tracos(settings, tracos[more : more + TRACOS_PER_RESTART])
        began = time.monotonic()
        files = len(before) + len(during)
        await wait_for(lambda: quiet(settings, files, worker, len(tracos)), "quiet", QUIET_SECONDS)
        figures["seconds to quiet after the restart"] = round(time.monotonic() - began, 1)
        figures["counters"] = {str(c): n for c, n in worker.stats.counters.items() if n}
    docs = await stored(settings)
    erp_numbers = numbers_in(before) + numbers_in(during)
    by_number = Counter(d["number"] for d in docs)
    assert [n for n, count in by_number.items() if count > 1] == []  # nothing doubled
    assert sorted(by_number) == sorted(erp_numbers + list(tracos))
    assert names(settings.archive_dir) == sorted([*before, *during]) and not names(
        settings.failed_dir
    )
    synced = {d["number"]: d for d in docs if d["number"] >= TRACOS_FIRST}
    assert all(d.get("isSynced") is True for d in synced.values())
    assert names(settings.outbound_dir) == sorted(f"{n}.json" for n in synced)
    for number, doc in synced.items():  # each outbound file holds the stored version
        written = (settings.outbound_dir / f"{number}.json").read_bytes()
        assert written == CHALLENGE.render(read_tracos(doc)).data
    assert figures["counters"]["exported"] == len(tracos)  # each version marked once
    assert "changed_during_export" not in figures["counters"]
    events = await journal_events(settings, erp_numbers, "in")
    labels = Counter(event for said in events.values() for event in set(said))
    assert labels == {"inserted": len(erp_numbers)}, labels  # never "unchanged" for its own
    exports = await journal_events(settings, list(tracos), "out")
    labels = Counter(event for said in exports.values() for event in set(said))
    assert labels == {"exported": len(tracos)}, labels
    figures["orders"] = len(docs)
    figures["journal lines per order"] = dict(Counter(len(said) for said in events.values()))
    figures["journal lines per export"] = dict(Counter(len(said) for said in exports.values()))
    print("kill -9 of the server under load:", figures)  # the figures for the closing note
