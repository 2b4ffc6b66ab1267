"""kill -9 at random moments during a burst, many times over, then the invariants (docs/spec.md §7).

On both stores; smaller on MongoDB, whose test server scans the collection per upsert.
"""

from __future__ import annotations

import os
import random
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
    serving,
    start_worker,
    stored,
    waiting_files,
)
from tests.helpers.workers import opened_store, unsynced_count
from watcher.core.settings import Settings

pytestmark = [pytest.mark.anyio, pytest.mark.system]
EMBEDDED_ROUNDS = (20, 60)  # kills, files per burst
MONGO_ROUNDS = (10, 30)


async def tracos_changes(settings: Settings, rng: random.Random, count: int) -> None:
    """TracOS itself inserts and edits work orders (another process's writes)."""
    numbers = [TRACOS_FIRST + rng.randrange(200) for _ in range(count)]
    async with opened_store(settings) as store:
        await store.put_documents(
            [tracos_doc(n, title=f"v{rng.randrange(10**6)}") for n in numbers]
        )


async def test_kill_nine_many_times(any_settings: Settings, tmp_path: Path) -> None:
    """Every file archived or failed exactly once, newest orders stored, no mark without file."""
    settings = any_settings
    seed = int(os.environ.get("CRASH_SEED", random.randrange(10**6)))
    rng = random.Random(seed)
    note = f"reproduce with CRASH_SEED={seed} ({settings.store_label})"
    print(note)
    inputs = Inputs()
    settings.inbound_dir.mkdir(parents=True)
    rounds, size = MONGO_ROUNDS if settings.mongo_uri else EMBEDDED_ROUNDS
    with (tmp_path / "worker.log").open("w") as log:
        for _ in range(rounds):
            worker = start_worker(settings, log)
            inputs.burst(settings.inbound_dir, rng, size)
            await tracos_changes(settings, rng, 10)
            await anyio.sleep(rng.uniform(0.05, 1.2))  # a random moment to crash, by design
            worker.send_signal(signal.SIGKILL)
            worker.wait()
        worker = start_worker(settings, log)
        try:
            await anyio.to_thread.run_sync(
                lambda: wait_until(lambda: serving(settings, worker), note)
            )
            await anyio.to_thread.run_sync(lambda: _wait_until_quiet(settings, note))
        finally:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=20) == 0, note
    check_invariants(settings, inputs, await stored(settings), note)


def _wait_until_quiet(settings: Settings, note: str) -> None:
    def quiet() -> bool:
        if waiting_files(settings) or claimed_files(settings):
            return False
        return anyio.run(unsynced_count, settings) == 0

    wait_until(quiet, f"the restarted worker to finish ({note})", deadline=60)
