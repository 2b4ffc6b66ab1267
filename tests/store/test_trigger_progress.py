"""The outbound trigger reports its sweeps and its signs of life, on every store adapter:
what the metrics turn into ``watcher_sweeps_total`` and the stream's progress timestamp."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Final

import anyio
import pytest

from tests.helpers.builders import tracos_doc
from tests.helpers.conditions import wait_for
from watcher.store import StoredDocument, WorkOrderStore, sqlite
from watcher.store.sqlite import SqliteStore

pytestmark = pytest.mark.anyio


async def test_a_sweep_is_counted_and_an_idle_trigger_still_progresses(
    store: WorkOrderStore,
) -> None:
    """The first sweep counts the unsynced orders it found; while nothing changes, the
    trigger still shows life (a resume point moving on, a look at the embedded store)."""
    await store.put_documents([tracos_doc(1), tracos_doc(2)])
    handed: list[Any] = []

    async def handle(batch: list[StoredDocument]) -> None:
        handed.extend(batch)

    trigger = store.trigger
    async with anyio.create_task_group() as tg:
        tg.start_soon(store.follow_unsynced, handle, 0.05, 1000)
        await wait_for(lambda: trigger.sweeps == 1, "the first sweep")
        assert (trigger.swept_orders, len(handed)) == (2, 2)
        assert trigger.sweep_seconds >= trigger.last_sweep_seconds > 0
        first = trigger.progressed_at
        assert first is not None
        await wait_for(lambda: (trigger.progressed_at or 0) > first, "progress while idle")
        tg.cancel_scope.cancel()
    assert trigger.sweeps == 1  # an idle trigger does not sweep again


async def test_another_writers_commit_wakes_the_embedded_trigger_without_its_look(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TracOS's put (another connection, as another process's) is handed over as its
    commit reaches the store's file, not at the trigger's next look for other writers
    (made a minute long here; it is 0.2 s): the look is only the fallback."""
    monkeypatch.setattr(sqlite, "WAKE_POLL_SECONDS", 60.0)
    path = tmp_path / "tracos.sqlite3"
    store, tracos = SqliteStore(path), SqliteStore(path)
    await store.open()
    await tracos.open()
    handed: list[StoredDocument] = []

    async def handle(batch: list[StoredDocument]) -> None:
        handed.extend(batch)

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(store.follow_unsynced, handle, 0.05, 1000)
            await wait_for(lambda: store.trigger.sweeps == 1, "the first sweep")
            await tracos.put_documents([tracos_doc(7)])
            await wait_for(lambda: len(handed) == 1, "TracOS's order handed over", deadline=20)
            tg.cancel_scope.cancel()
    finally:
        await tracos.close()
        await store.close()
    assert [doc.doc["number"] for doc in handed] == [7]


WRITER: Final = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA cache_size=5")  # a small cache: the transaction's pages spill to the WAL
db.execute("CREATE TABLE IF NOT EXISTS other (x)")
db.execute("BEGIN")
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    db.execute("INSERT INTO other VALUES (randomblob(4000))")
db.execute("COMMIT")
"""


async def test_a_long_transaction_of_another_process_is_looked_at_as_often_as_a_poll(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process's transaction writes the WAL for a second and a half before it
    commits: each write wakes the trigger, which then looks at most every 50 ms (a look
    per write was thousands of looks and a core's time)."""
    path = tmp_path / "tracos.sqlite3"
    store = SqliteStore(path)
    await store.open()
    looks = 0
    real = store._data_version

    def counted() -> int:
        nonlocal looks
        looks += 1
        return real()

    monkeypatch.setattr(store, "_data_version", counted)

    async def handle(batch: list[StoredDocument]) -> None:
        pass

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(store.follow_unsynced, handle, 0.05, 1000)
            await wait_for(lambda: store.trigger.sweeps == 1, "the first sweep")
            before = looks
            await anyio.run_process([sys.executable, "-c", WRITER, str(path), "1.5"])
            during = looks - before
            tg.cancel_scope.cancel()
    finally:
        await store.close()
    assert during <= 60, f"{during} looks in a 1.5 s transaction (30 at most every 50 ms)"
