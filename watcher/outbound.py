"""TracOS → ERP: export unsynced work orders as ERP files, then mark them synced.

Order of work per batch: translate; write each file atomically (bounded concurrency);
fsync the folder once; only then mark the batch synced, conditionally, in one bulk write.
A document changed in between keeps ``isSynced`` unset and goes out again.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

import anyio
import stamina

from watcher import folders
from watcher.errors import StoreUnavailable, Unexportable
from watcher.mapping import encode_erp_file, read_tracos, tracos_to_erp
from watcher.model import ErpFileOrder
from watcher.retrying import StoreRetry
from watcher.settings import Settings
from watcher.stats import Failure, Stats
from watcher.store import StoredDocument, SyncMark, WorkOrderStore

log = logging.getLogger(__name__)
WRITE_ATTEMPTS: Final = 5  # per batch; files still failing are tried again later
Export = tuple[StoredDocument, ErpFileOrder]


class WriteFailed(Exception):
    """Some outbound files could not be written (disk full, permissions): retried."""


@dataclass
class Outbound:
    settings: Settings
    store: WorkOrderStore
    stats: Stats
    retry: StoreRetry
    reported: dict[str, Hashable] = field(default_factory=dict)  # key → version reported
    unwritten: set[str] = field(default_factory=set)  # keys whose file could not be written
    _lock: anyio.Lock = field(default_factory=anyio.Lock)  # one export at a time

    async def run(self) -> None:
        """Follow the store's unsynced documents for as long as the worker runs."""
        await anyio.to_thread.run_sync(folders.remove_stale_temps, self.settings.outbound_dir)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._rewrite_later)
            while True:
                try:
                    await self.store.follow_unsynced(self.export, self.settings.poll_seconds)
                except StoreUnavailable:
                    await self.retry(self.store.ping)

    async def export(self, docs: Sequence[StoredDocument]) -> None:
        """Export, then mark, in batches; one version per document (the newest read)."""
        newest = list({doc.key: doc for doc in docs}.values())
        size = self.settings.batch_size
        async with self._lock:
            for start in range(0, len(newest), size):
                await self._export_batch(newest[start : start + size])

    async def _export_batch(self, docs: Sequence[StoredDocument]) -> None:
        ready = [item for item in map(self._translate, docs) if item is not None]
        if not ready:
            return
        failed = await self._write_all(ready)
        written = [item for item in ready if item not in failed]
        now = datetime.now(UTC)
        marks = [SyncMark(doc.key, doc.version) for doc, _ in written]
        marked = await self.retry(lambda: self.store.mark_synced(marks, now))
        self._record(written, marked, now)
        self.unwritten.update(doc.key for doc, _ in failed)

    async def _rewrite_later(self) -> None:
        """Files that could not be written are tried again, from the document as it is now
        (never the old content: a newer version may have gone out meanwhile)."""
        while True:
            await anyio.sleep(self.settings.retry_max_seconds)
            if not self.unwritten:
                continue
            keys, self.unwritten = self.unwritten, set()
            pending = await self.retry(self.store.find_unsynced)
            await self.export([doc for doc in pending if doc.key in keys])

    def _translate(self, doc: StoredDocument) -> Export | None:
        try:
            order = tracos_to_erp(read_tracos(doc.doc))
        except Unexportable as exc:
            self._unexportable(doc, str(exc))
            return None
        self.reported.pop(doc.key, None)
        self.stats.unexportable.pop(doc.key, None)
        return doc, order

    def _unexportable(self, doc: StoredDocument, reason: str) -> None:
        """Report once per version; a later change to the document tries it again."""
        if self.reported.get(doc.key) == doc.version:
            return
        self.reported[doc.key] = doc.version
        now = datetime.now(UTC)
        subject = f"order {doc.doc.get('number', '?')}"
        self.stats.unexportable[doc.key] = Failure(now, "out", subject, reason)
        self.stats.failure(now, "out", subject, reason)
        self.stats.count("unexportable")
        log.warning("%s (document %s) cannot be exported: %s", subject, doc.key, reason)

    async def _write_all(self, ready: list[Export]) -> list[Export]:
        """Write every file, retrying failures a few times; return those still not written."""
        pending = ready
        try:
            async for attempt in stamina.retry_context(
                on=WriteFailed,
                attempts=WRITE_ATTEMPTS,
                timeout=None,
                wait_max=self.settings.retry_max_seconds,
            ):
                with attempt:
                    pending = await self._write_some(pending)
                    if pending:
                        raise WriteFailed(f"{len(pending)} outbound files not written")
        except WriteFailed:
            log.error(
                "%d outbound files not written: they stay unsynced, tried later", len(pending)
            )
        return pending

    async def _write_some(self, items: list[Export]) -> list[Export]:
        """Write in ``outbound_concurrency`` threads, fsync the folder; return the failures."""
        folder = self.settings.outbound_dir
        try:
            await anyio.to_thread.run_sync(lambda: folder.mkdir(parents=True, exist_ok=True))
        except OSError as exc:
            self._write_error("the outbound folder", exc)
            return items
        workers = max(1, min(self.settings.outbound_concurrency, len(items)))
        failed: list[Export] = []
        async with anyio.create_task_group() as tg:
            for part in (items[i::workers] for i in range(workers)):
                tg.start_soon(self._write_slice, part, failed)
        try:
            await anyio.to_thread.run_sync(folders.sync_folder, folder)
        except OSError as exc:  # not durable yet: none of them may be marked
            self._write_error("the outbound folder", exc)
            return items
        return failed

    async def _write_slice(self, part: list[Export], failed: list[Export]) -> None:
        failed.extend(await anyio.to_thread.run_sync(self._write_files, part))

    def _write_files(self, part: list[Export]) -> list[Export]:
        failed = []
        token = uuid.uuid4().hex[:8]
        for doc, order in part:
            try:
                folders.write_durably(
                    self.settings.outbound_dir,
                    f"{order.orderNo}.json",
                    encode_erp_file(order),
                    token,
                )
            except OSError as exc:
                failed.append((doc, order))
                self._write_error(f"{order.orderNo}.json", exc)
        return failed

    def _write_error(self, what: str, exc: OSError) -> None:
        reason = f"cannot write {what}: {exc.strerror or exc}"
        self.stats.failure(datetime.now(UTC), "out", what, reason)
        self.stats.count("export_errors")
        log.error("%s; not marked synced, tried again", reason)

    def _record(self, ready: list[Export], marked: set[str], now: datetime) -> None:
        for doc, order in ready:
            if doc.key not in marked:
                continue
            if doc.changed_at is not None:
                self.stats.latency_out.append(max(0.0, (now - doc.changed_at).total_seconds()))
            self.stats.event(now, "out", str(order.orderNo), "exported")
        self.stats.count("exported", len(marked))
        changed = len(ready) - len(marked)
        self.stats.count("changed_during_export", changed)
        note = f"; {changed} changed meanwhile and were not marked" if changed else ""
        log.info("exported %d orders to %s%s", len(marked), self.settings.outbound_dir, note)
