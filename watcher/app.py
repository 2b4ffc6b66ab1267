"""The composition root: settings → store → inbound, outbound and reporting in one task group."""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Final

import anyio

from watcher import folders
from watcher.errors import ConfigError, StoreUnavailable
from watcher.inbound import Inbound
from watcher.outbound import Outbound
from watcher.retrying import StoreRetry
from watcher.settings import Settings
from watcher.stats import Snapshot, Stats, StoreState
from watcher.status import write_worker_status
from watcher.store import WorkOrderStore
from watcher.store.mongo import MongoStore
from watcher.store.sqlite import SqliteStore

log = logging.getLogger(__name__)
GRACE_SECONDS: Final = 1.5  # after a stop request, how long the batch in flight may take
STATUS_SECONDS: Final = 2.0  # store counts and the status file (health allows 10 s)
Reporter = Callable[[Snapshot], Awaitable[None]]


def build_store(settings: Settings) -> WorkOrderStore:
    if settings.mongo_uri:
        return MongoStore.connect(
            settings.mongo_uri, settings.mongo_database, settings.mongo_collection
        )
    return SqliteStore(settings.sqlite_path)


def prepare_folders(settings: Settings) -> None:
    """Create the folders; an unusable inbound or outbound folder stops start-up."""
    for folder in (
        settings.inbound_dir,
        settings.outbound_dir,
        settings.archive_dir,
        settings.failed_dir,
        settings.state_dir,
    ):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create folder {folder}: {exc.strerror or exc}") from None
        if not os.access(folder, os.R_OK | os.W_OK | os.X_OK):
            raise ConfigError(f"folder {folder} is not readable and writable by this user")
    device = settings.inbound_dir.stat().st_dev
    for variable, folder in (
        ("DATA_ARCHIVE_DIR", settings.archive_dir),
        ("DATA_FAILED_DIR", settings.failed_dir),
    ):
        if folder.stat().st_dev != device:
            raise ConfigError(
                f"{variable} ({folder}) must be on the same file system as DATA_INBOUND_DIR:"
                " files are moved by atomic rename"
            )


class Worker:
    """One running worker: its store, pipelines and stats."""

    def __init__(
        self,
        settings: Settings,
        store: WorkOrderStore | None = None,
        attempts: int | None = None,
    ) -> None:
        """``attempts`` bounds store retries (``once``); None waits out any outage (``run``)."""
        prepare_folders(settings)
        self.settings = settings
        self.store = store or build_store(settings)
        self.stats = Stats(started=datetime.now(UTC))
        self.retry = StoreRetry(self.stats, settings.retry_max_seconds, attempts)
        self.claims = folders.ClaimDir.create(settings.inbound_dir)
        self.inbound = Inbound(settings, self.store, self.stats, self.claims, self.retry)
        self.outbound = Outbound(settings, self.store, self.stats, self.retry)

    async def open(self) -> None:
        await self.retry(self.store.open)
        await anyio.to_thread.run_sync(self._resume_claims)
        log.info("watching %s (store mode: %s)", self.settings.inbound_dir, self.store.mode)

    def _resume_claims(self) -> None:
        folders.remove_stale_temps(self.settings.failed_dir)  # reports cut short by a crash
        done = [self.settings.archive_dir, self.settings.failed_dir]
        for orphan in folders.orphaned_claims(self.settings.inbound_dir):
            names = folders.resume(orphan, self.settings.inbound_dir, done)
            if names:
                log.warning("resumed %d files left claimed by a stopped worker", len(names))

    async def close(self) -> None:
        """Release the claim folder (a later start resumes anything left in it)."""
        self.claims.release()
        await self.store.close()

    async def serve(
        self, stop: anyio.Event, report: Reporter | None = None, every: float = 1.0
    ) -> None:
        """Open (waiting out a store outage), run until ``stop``, close; ``stop`` ends any of it."""
        try:
            if await _unless_stopped(stop, self.open):
                await self.run(stop, report, every)
        finally:
            await self.close()

    async def run(
        self, stop: anyio.Event, report: Reporter | None = None, every: float = 1.0
    ) -> None:
        """Until ``stop``: inbound and outbound together; then finish the batch in flight.

        ``report`` gets a snapshot every ``every`` seconds (a live console wants 4 a second).
        """
        inbound_done = anyio.Event()

        async def inbound() -> None:
            await self.inbound.run(stop)
            inbound_done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(inbound)
            tg.start_soon(self.outbound.run)
            tg.start_soon(self._report, report, every)
            await stop.wait()
            with anyio.move_on_after(GRACE_SECONDS):
                await inbound_done.wait()
            tg.cancel_scope.cancel()

    async def once(self) -> None:
        """Process what is waiting in both directions, then return."""
        while True:
            await self.inbound.drain()
            if not self.inbound.deferred:
                break
            # files not yet valid JSON: judge them once they have been quiet long enough
            await anyio.sleep(max(0.05, min(self.inbound.deferred.values()) - time.time()))
        await self.outbound.export(await self.store.find_unsynced())

    async def _report(self, report: Reporter | None, every: float) -> None:
        """Hand snapshots to the reporter; refresh counts and the status file now and then."""
        ticks_per_status = max(1, round(STATUS_SECONDS / every))
        for tick in itertools.count():
            if tick % ticks_per_status == 0:
                await self._refresh_status()
            if report is not None:
                await report(self.stats.snapshot(datetime.now(UTC)))
            await anyio.sleep(every)

    async def _refresh_status(self) -> None:
        try:
            self.stats.unsynced = (await self.store.counts())[1]
            if not self.stats.store.connected and self.stats.store.next_attempt is None:
                self.stats.store = StoreState()
        except StoreUnavailable as exc:  # an idle worker notices an outage here first
            state = self.stats.store
            self.stats.store = StoreState(False, str(exc), state.next_attempt)
        snapshot = self.stats.snapshot(datetime.now(UTC))
        await anyio.to_thread.run_sync(
            write_worker_status, self.settings, snapshot, self.store.mode
        )


async def _unless_stopped(stop: anyio.Event, work: Callable[[], Awaitable[None]]) -> bool:
    """Run ``work`` unless ``stop`` is set first; True when it finished."""
    finished = False
    async with anyio.create_task_group() as tg:

        async def cancel_on_stop() -> None:
            await stop.wait()
            tg.cancel_scope.cancel()

        tg.start_soon(cancel_on_stop)
        await work()
        finished = True
        tg.cancel_scope.cancel()
    return finished
