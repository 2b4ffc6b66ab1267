"""Two workers, one paused mid-export: a stale export never overwrites a newer file
(docs/guarantees.md). Worker A reads v1 of every document and is SIGSTOPped while writing;
TracOS writes v2; worker B exports v2; A resumes. Every document synced at v2 must have v2's
bytes on disk."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import anyio
import pytest

from tests.helpers.builders import T0, tracos_doc
from tests.helpers.conditions import wait_until
from tests.helpers.harness import TRACOS_FIRST, start_worker, stored
from tests.helpers.workers import cli, opened_store, unsynced_count
from watcher.core.settings import Settings
from watcher.core.tracos import read_tracos
from watcher.erp.formats.challenge import FORMAT as CHALLENGE

pytestmark = [pytest.mark.anyio, pytest.mark.system]
SLOW_EXPORT = {"INBOUND_BATCH_SIZE": "20", "OUTBOUND_CONCURRENCY": "1"}  # a wide window


def version(number: int, v: int) -> dict[str, object]:
    return tracos_doc(number, title=f"v{v}", updatedAt=T0 + timedelta(hours=v))


def exported_files(settings: Settings) -> int:
    try:
        return sum(1 for e in os.scandir(settings.outbound_dir) if e.name.endswith(".json"))
    except FileNotFoundError:
        return 0


@pytest.mark.parametrize("second", ["run", "once"])
async def test_a_paused_stale_export_never_overwrites_a_newer_file(
    any_settings: Settings, tmp_path: Path, second: str
) -> None:
    """B is a second worker, or `watcher once` run beside A."""
    settings = any_settings
    count = 1500 if settings.mongo_uri is None else 300  # the test server scans per upsert
    numbers = range(TRACOS_FIRST, TRACOS_FIRST + count)
    async with opened_store(settings) as store:
        await store.put_documents([version(n, 1) for n in numbers])
    with (tmp_path / "a.log").open("w") as log_a, (tmp_path / "b.log").open("w") as log_b:
        a = start_worker(settings, log_a, SLOW_EXPORT)
        b: subprocess.Popen[str] | None = None
        try:
            wait_until(lambda: exported_files(settings) > 0, "A exporting", 60)
            _pause_outside_a_store_transaction(settings, a)
            assert exported_files(settings) < count, "A finished before it could be paused"
            async with opened_store(settings) as store:
                await store.put_documents([version(n, 2) for n in numbers])
            if second == "run":
                b = start_worker(settings, log_b, SLOW_EXPORT)
            else:
                await anyio.to_thread.run_sync(lambda: cli(settings, "once", env=SLOW_EXPORT))
            await _wait_unsynced(settings, lambda left: left <= 20, "B exporting all it may")
            a.send_signal(signal.SIGCONT)
            await _wait_unsynced(settings, lambda left: left == 0, "everything synced")
        finally:
            a.send_signal(signal.SIGCONT)
            for worker in (a, b):
                if worker is not None:
                    worker.send_signal(signal.SIGTERM)
            codes = [w.wait(timeout=30) for w in (a, b) if w is not None]
    assert set(codes) == {0}
    docs = await stored(settings)
    stale = [
        number
        for number in numbers
        if (settings.outbound_dir / f"{number}.json").read_bytes()
        != CHALLENGE.render(read_tracos(docs[number])).data
    ]
    assert all(docs[n].get("isSynced") is True and docs[n]["title"] == "v2" for n in numbers)
    assert stale == [], f"{len(stale)} documents synced at v2 with another version on disk"


def _pause_outside_a_store_transaction(settings: Settings, worker: subprocess.Popen[str]) -> None:
    """SIGSTOP ``worker``, but not while it holds the embedded store's write lock: a paused
    writer holding it is a store outage for everyone (another attack), not this race."""
    for _ in range(100):
        worker.send_signal(signal.SIGSTOP)
        if settings.mongo_uri or _store_writable(settings.sqlite_path):
            return
        worker.send_signal(signal.SIGCONT)
        time.sleep(0.002)
    raise AssertionError("the worker always held the store's write lock")


def _store_writable(path: Path) -> bool:
    db = sqlite3.connect(path, timeout=0.05, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        db.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        db.close()


async def _wait_unsynced(settings: Settings, done: Callable[[int], bool], what: str) -> None:
    def check() -> bool:
        return done(anyio.run(unsynced_count, settings))

    await anyio.to_thread.run_sync(lambda: wait_until(check, what, 90))
