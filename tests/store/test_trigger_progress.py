"""The outbound trigger reports its sweeps and its signs of life, on every store adapter:
what the metrics turn into ``watcher_sweeps_total`` and the stream's progress timestamp."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from tests.helpers.builders import tracos_doc
from tests.helpers.conditions import wait_for
from watcher.store import StoredDocument, WorkOrderStore

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
