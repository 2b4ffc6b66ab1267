"""The outbound trigger reports its sweeps and its signs of life, on every store adapter:
what the metrics turn into ``watcher_sweeps_total`` and the stream's progress timestamp."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
