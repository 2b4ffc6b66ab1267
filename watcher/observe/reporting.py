"""The worker's reporting: snapshots to the console and metrics, its status file, and the
store's counts — each on its own schedule.

Nothing here ever waits on the store: a stuck store call must not freeze the console, the
heartbeat or the metrics. The counts come from a task of their own, and a call left
unanswered shows as such (``Stats.store_state``). Writing the status file is a side
effect: a full disk or a read-only folder is a problem shown and retried, never fatal.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import anyio

from watcher.core.errors import StoreUnavailable
from watcher.core.settings import Settings
from watcher.core.tracos import age
from watcher.erp import InboundSource
from watcher.fs import disk_space
from watcher.observe.heartbeat import status_path, write_worker_status
from watcher.store import WorkOrderStore
from watcher.sync import Snapshot, Stats, StoreState

log = logging.getLogger(__name__)
STATUS_SECONDS: Final = 2.0  # store counts and the status file (health allows 10 s)
STATUS_FILE: Final = "status file"  # the problem's key while it cannot be written
Reporter = Callable[[Snapshot], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Reporting:
    settings: Settings
    stats: Stats
    store: WorkOrderStore
    source: InboundSource

    async def run(self, report: Reporter | None, every: float) -> None:
        """Hand snapshots to ``report`` every ``every`` seconds; rewrite the status file."""
        ticks_per_status = max(1, round(STATUS_SECONDS / every))
        for tick in itertools.count():
            if tick % ticks_per_status == 0:
                await self.write_status()
            if report is not None:
                await report(self.stats.snapshot(datetime.now(UTC)))
            await anyio.sleep(every)

    async def write_status(self) -> None:
        """This worker's status file; a failure is a problem of its own, retried next time."""
        stats = self.stats
        problems = tuple(v for k, v in stats.problems.items() if k != STATUS_FILE)
        snapshot = replace(stats.snapshot(datetime.now(UTC)), problems=problems)
        try:
            await anyio.to_thread.run_sync(
                write_worker_status, self.settings, snapshot, self.store.mode
            )
        except OSError as exc:
            path = status_path(self.settings)
            reason = f"cannot write the status file {path}: {exc.strerror or exc}"
            if stats.problem(STATUS_FILE, reason):
                log.error("%s; tried again every %.0f s", reason, STATUS_SECONDS)
        else:
            if stats.solved(STATUS_FILE):
                log.warning("the status file is written again")

    async def count_waiting(self) -> None:
        """Files dropped during a start-up outage show as waiting (inbound counts later)."""
        while True:
            self.stats.waiting_files = len(await self.source.waiting())
            await anyio.sleep(STATUS_SECONDS)

    async def refresh_backlog(self) -> None:
        """The oldest file waiting and the files in flight (the source's listing, not the
        store: this goes on through a store outage)."""
        while True:
            backlog = await self.source.backlog()
            landed = backlog.oldest_landed
            self.stats.waiting_age = None if landed is None else max(0.0, time.time() - landed)
            self.stats.in_flight = backlog.in_flight
            self.stats.disk = await anyio.to_thread.run_sync(disk_space, self._folders())
            await anyio.sleep(STATUS_SECONDS)  # a stat per file waiting: ~60 ms for 10,000

    def _folders(self) -> dict[str, Path]:
        chosen = self.settings
        return {
            "inbound": chosen.inbound_dir,
            "outbound": chosen.outbound_dir,
            "archive": chosen.archive_dir,
            "failed": chosen.failed_dir,
            "state": chosen.state_dir,
        }

    async def refresh_counts(self) -> None:
        """The store's counts on their own schedule; only this task waits for them."""
        stats = self.stats
        while True:
            stats.asked_since = datetime.now(UTC)
            try:
                stored, unsynced = await self.store.counts()
                oldest = await self.store.oldest_unsynced()
            except StoreUnavailable as exc:  # an idle worker notices an outage here first
                stats.store = StoreState(False, str(exc), stats.store.next_attempt)
            else:
                stats.stored, stats.unsynced = stored, unsynced
                stats.counts_at = datetime.now(UTC)
                stats.unsynced_age = age(oldest, stats.counts_at)
                if not stats.store.connected and stats.store.next_attempt is None:
                    stats.store = StoreState()
            finally:
                stats.asked_since = None
            await anyio.sleep(STATUS_SECONDS)
