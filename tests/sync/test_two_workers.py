"""Two worker processes on the same folders and the same store, on both stores (docs/spec.md §3)."""

from __future__ import annotations

import random
import re
import signal
from pathlib import Path

import anyio
import pytest

from tests.helpers.builders import tracos_doc
from tests.helpers.conditions import wait_until
from tests.helpers.harness import (
    TRACOS_FIRST,
    Inputs,
    check_invariants,
    claimed_files,
    start_worker,
    stored,
    waiting_files,
)
from tests.helpers.workers import opened_store, unsynced_count
from watcher.core.settings import Settings
from watcher.observe.history import ORDER_EVENTS
from watcher.store.configured import build_journal
from watcher.store.journal import HistoryQuery

pytestmark = [pytest.mark.anyio, pytest.mark.system]
EXPORTED = re.compile(r"exported (\d+) orders")
FILED = {"archived", "quarantined", "partly_rejected", *ORDER_EVENTS}  # one order: its entry


async def test_each_file_once_each_order_marked_once(
    any_settings: Settings, tmp_path: Path
) -> None:
    """Every file processed exactly once, every TracOS version marked once, newest wins."""
    settings = any_settings
    rng = random.Random(11)
    inputs = Inputs()
    settings.inbound_dir.mkdir(parents=True)
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    files = 200 if settings.mongo_uri is None else 80  # the MongoDB test server scans per upsert
    with logs[0].open("w") as log_a, logs[1].open("w") as log_b:
        workers = [start_worker(settings, log_a), start_worker(settings, log_b)]
        try:
            wait_until(lambda: all("watching" in p.read_text() for p in logs), "both started")
            async with opened_store(settings) as store:
                for round_ in range(5):
                    inputs.burst(settings.inbound_dir, rng, files)
                    await store.put_documents(
                        [tracos_doc(TRACOS_FIRST + round_ * 60 + i) for i in range(60)]
                    )
                await _until_done(settings)
                # a worker logs its marks just after making them: wait for the lines
                wait_until(lambda: _marks(logs) >= 300, "the first 300 marks logged")
                edited = rng.sample(range(TRACOS_FIRST, TRACOS_FIRST + 300), 50)
                await store.put_documents([tracos_doc(n, title="edited") for n in edited])
                await _until_done(settings)
        finally:
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            codes = [worker.wait(timeout=20) for worker in workers]
    assert codes == [0, 0]
    assert _marks(logs) == 350  # one mark per version, never two (the logs are complete now)
    check_invariants(settings, inputs, await stored(settings), "two workers")
    await _journal_agrees(settings, inputs, edited)


async def _journal_agrees(settings: Settings, inputs: Inputs, edited: list[int]) -> None:
    """One journal for both workers: each file filed away once, each version exported once."""
    async with opened_store(settings) as store:
        journal = build_journal(settings, store)
        assert journal is not None
        await journal.open(create=False)
        for index in range(1, inputs.files + 1):
            story = await journal.history(HistoryQuery(file=f"f{index:06d}.json"))
            filed = [e.event for e in story if e.to is not None]  # where the file went
            assert len(filed) == 1 and filed[0] in FILED, (index, story)
        for number in range(TRACOS_FIRST, TRACOS_FIRST + 300):
            story = await journal.history(HistoryQuery(number=number))
            exported = [e for e in story if e.event == "exported"]
            assert len(exported) == 1 + (number in edited), (number, story)


def _marks(logs: list[Path]) -> int:
    return sum(int(n) for path in logs for n in EXPORTED.findall(path.read_text()))


async def _until_done(settings: Settings) -> None:
    await anyio.to_thread.run_sync(lambda: wait_until(lambda: _done(settings), "all done", 60))


def _done(settings: Settings) -> bool:
    if waiting_files(settings) or claimed_files(settings):
        return False
    return anyio.run(unsynced_count, settings) == 0
