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

    async def run(self) -> None:
        """Follow the store's unsynced documents for as long as the worker runs."""
        await anyio.to_thread.run_sync(folders.remove_stale_temps, self.settings.outbound_dir)
        while True:
            try:
                await self.store.follow_unsynced(self.export, self.settings.poll_seconds)
            except StoreUnavailable:
                await self.retry(self.store.ping)

    async def export(self, docs: Sequence[StoredDocument]) -> None:
        size = self.settings.batch_size
        for start in range(0, len(docs), size):
            await self._export_batch(docs[start : start + size])

    async def _export_batch(self, docs: Sequence[StoredDocument]) -> None:
        ready = [item for item in map(self._translate, docs) if item is not None]
        if not ready:
            return
        await self._write_all(ready)
        now = datetime.now(UTC)
        marks = [SyncMark(doc.key, doc.version) for doc, _ in ready]
        marked = await self.retry(lambda: self.store.mark_synced(marks, now))
        self._record(ready, marked, now)

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

    async def _write_all(self, ready: list[Export]) -> None:
        """Write every file, retrying the failed ones with back-off until they are on disk."""
        pending = ready
        async for attempt in stamina.retry_context(
            on=WriteFailed, attempts=None, timeout=None, wait_max=self.settings.retry_max_seconds
        ):
            with attempt:
                pending = await self._write_some(pending)
                if pending:
                    raise WriteFailed(f"{len(pending)} outbound files not written")

    async def _write_some(self, items: list[Export]) -> list[Export]:
        """Write in ``outbound_concurrency`` threads, fsync the folder; return the failures."""
        workers = max(1, min(self.settings.outbound_concurrency, len(items)))
        slices = [items[i::workers] for i in range(workers)]
        failed: list[Export] = []
        async with anyio.create_task_group() as tg:
            for part in slices:
                tg.start_soon(self._write_slice, part, failed)
        await anyio.to_thread.run_sync(folders.sync_folder, self.settings.outbound_dir)
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
                self._write_error(order.orderNo, exc)
        return failed

    def _write_error(self, number: int, exc: OSError) -> None:
        reason = f"cannot write {number}.json: {exc.strerror or exc}"
        self.stats.failure(datetime.now(UTC), "out", f"order {number}", reason)
        self.stats.count("export_errors")
        log.error("%s; it stays unsynced and is retried", reason)

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
