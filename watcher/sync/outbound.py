"""TracOS → ERP: export unsynced work orders through the format and the sink, then mark them.

Order of work per batch: render each order as a file; claim the files' names from the
sink (exclusive across workers); keep only the documents still unsynced at the version
read; have the sink write them durably; only then mark them synced, conditionally, in one
bulk write; release the claims. A document changed in between keeps ``isSynced`` unset and
goes out again; a version older than what another worker already wrote is never written.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence, Set
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Final

import anyio
import stamina

from watcher.core.errors import StoreUnavailable, Unexportable
from watcher.core.tracos import INT64_MAX, read_tracos
from watcher.erp.port import ErpFormat, OutboundFile, OutboundSink
from watcher.store import StoredDocument, SyncMark, WorkOrderStore
from watcher.store.journal import Entry
from watcher.sync.journaling import Recorder
from watcher.sync.reported import ReportedVersions
from watcher.sync.retrying import StoreRetry
from watcher.sync.stats import Count, Failure, Stats

log = logging.getLogger(__name__)
WRITE_ATTEMPTS: Final = 5  # per batch; files still failing are tried again later


class WriteFailed(Exception):
    """Some outbound files could not be written (disk full, permissions): retried."""


@dataclass(frozen=True, slots=True)
class Export:
    """A stored document and the file it becomes."""

    doc: StoredDocument
    number: int
    file: OutboundFile


@dataclass
class Outbound:
    format: ErpFormat
    sink: OutboundSink
    store: WorkOrderStore
    stats: Stats
    retry: StoreRetry
    batch_size: int
    poll_seconds: float
    retry_max_seconds: float
    where: str  # for the log line: where the files went
    journal: Recorder
    reported: ReportedVersions = field(default_factory=ReportedVersions)
    unwritten: set[str] = field(default_factory=set)  # keys whose file could not be written
    _lock: anyio.Lock = field(default_factory=anyio.Lock)  # one export at a time
    _entries: list[Entry] = field(default_factory=list)  # the batch's, for the journal

    async def run(self) -> None:
        """Follow the store's unsynced documents for as long as the worker runs."""
        await self.sink.recover()
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._rewrite_later)
            while True:
                try:
                    await self.store.follow_unsynced(
                        self.export, self.poll_seconds, self.batch_size
                    )
                except StoreUnavailable:
                    await self.retry(self.store.ping)

    async def sweep(self, only: Set[str] | None = None) -> None:
        """Export every unsynced document (or those with these keys), each batch as it comes
        from the store's cursor: a million unsynced orders are never in memory at once."""
        async with aclosing(self.store.iter_unsynced(self.batch_size)) as batches:
            async for batch in batches:
                await self.export(batch if only is None else [d for d in batch if d.key in only])

    async def export(self, docs: Sequence[StoredDocument]) -> None:
        """Export, then mark, in batches; one version per document (the newest read)."""
        newest = list({doc.key: doc for doc in docs}.values())
        size = self.batch_size
        async with self._lock:
            for start in range(0, len(newest), size):
                await self._export_batch(newest[start : start + size])

    async def _export_batch(self, docs: Sequence[StoredDocument]) -> None:
        """Claim the files' names, keep what is still unsynced at the version read, write
        it, mark it, release: a stale read (another worker's newer export meanwhile, a
        paused process) never overwrites a newer file, in any process."""
        ready = [item for item in map(self._render, docs) if item is not None]
        if ready:
            await self._export_ready(ready)
        entries, self._entries = self._entries, []
        await self.journal.record(entries)

    async def _export_ready(self, ready: list[Export]) -> None:
        async with self.sink.claim([item.file for item in ready]) as held:
            mine = [item for index, item in enumerate(ready) if index in held]
            current = await self._still_current(mine)
            failed = await self._write_all(current)
            written = [item for item in current if item not in failed]
            now = datetime.now(UTC)
            marks = [_mark(item) for item in written]
            marked = await self.retry(lambda: self.store.mark_synced(marks, now))
        busy = [item for index, item in enumerate(ready) if index not in held]
        self._record(written, marked, now, superseded=len(mine) - len(current))
        self.unwritten.update(item.doc.key for item in [*failed, *busy])
        self._journal(written, marked, now)
        self._journal_unsent(mine, current, failed, now)

    async def _still_current(self, items: list[Export]) -> list[Export]:
        if not items:
            return []
        keys = await self.retry(lambda: self.store.unsynced_at([_mark(item) for item in items]))
        return [item for item in items if item.doc.key in keys]

    async def _rewrite_later(self) -> None:
        """Files that could not be written are tried again, from the document as it is now
        (never the old content: a newer version may have gone out meanwhile)."""
        while True:
            await anyio.sleep(self.retry_max_seconds)
            if not self.unwritten:
                continue
            keys, self.unwritten = self.unwritten, set()
            await self.retry(partial(self.sweep, keys))

    def _render(self, doc: StoredDocument) -> Export | None:
        try:
            order = read_tracos(doc.doc)
            file = self.format.render(order)
        except Unexportable as exc:
            self._unexportable(doc, str(exc))
            return None
        self.reported.forget(doc.key)
        self.stats.unexportable.pop(doc.key, None)
        return Export(doc, order.number, file)

    def _unexportable(self, doc: StoredDocument, reason: str) -> None:
        """Listed as stuck; reported once per version, across restarts too (an earlier
        run's report is not repeated); a later change to the document tries it again."""
        first = self.reported.first_time(doc.key, doc.version)
        if not first and doc.key in self.stats.unexportable:
            return
        now = datetime.now(UTC)
        subject = f"order {doc.doc.get('number', '?')}"
        self.stats.unexportable.pop(doc.key, None)  # re-inserted: the newest come last
        self.stats.unexportable[doc.key] = Failure(now, "out", subject, reason)
        if not first:
            return  # reported by an earlier run: listed, not logged again
        self.stats.failure(now, "out", subject, reason)
        self.stats.count(Count.UNEXPORTABLE)
        fields = {"order": doc.doc.get("number"), "document": doc.key, "reason": reason}
        self._note(now, "unexportable", doc, reason=reason)
        log.warning(
            "%s (document %s) cannot be exported: %s",
            subject,
            doc.key,
            reason,
            extra=fields | {"outcome": "unexportable"},
        )

    async def _write_all(self, ready: list[Export]) -> list[Export]:
        """Write every file, retrying failures a few times; return those still not written."""
        pending = ready
        if not pending:
            return []
        try:
            async for attempt in stamina.retry_context(
                on=WriteFailed,
                attempts=WRITE_ATTEMPTS,
                timeout=None,
                wait_max=self.retry_max_seconds,
            ):
                with attempt:
                    failed = await self.sink.write([item.file for item in pending])
                    pending = [item for index, item in enumerate(pending) if index in failed]
                    if pending:
                        raise WriteFailed(f"{len(pending)} outbound files not written")
        except WriteFailed:
            log.error(
                "%d outbound files not written: they stay unsynced, tried later", len(pending)
            )
        return pending

    def _record(
        self, ready: list[Export], marked: set[str], now: datetime, superseded: int
    ) -> None:
        for item in ready:
            if item.doc.key not in marked:
                continue
            if item.doc.changed_at is not None:
                latency = (now - item.doc.changed_at).total_seconds()
                self.stats.latency_out.append(max(0.0, latency))
            self.stats.event(now, "out", str(item.number), "exported")
        self.stats.count(Count.EXPORTED, len(marked))
        changed = len(ready) - len(marked)
        self.stats.count(Count.CHANGED_DURING_EXPORT, changed)
        if not ready and not superseded:
            return
        note = f"; {changed} changed meanwhile and were not marked" if changed else ""
        if superseded:
            note += f"; {superseded} not written: newer already, or exported by another worker"
        counts = {"exported": len(marked), "changed_during_export": changed}
        fields = {"outcome": "exported", "to": self.where, "counts": counts}
        log.info("exported %d orders to %s%s", len(marked), self.where, note, extra=fields)
        if log.isEnabledFor(logging.DEBUG):
            numbers = [item.number for item in ready if item.doc.key in marked]
            log.debug("exported orders %s", ", ".join(map(str, numbers)), extra={"orders": numbers})

    def _journal(self, written: list[Export], marked: set[str], now: datetime) -> None:
        for item in written:
            event = "exported" if item.doc.key in marked else "changed_during_export"
            self._note(now, event, item.doc, file=item.file.name)

    def _journal_unsent(
        self, mine: list[Export], current: list[Export], failed: list[Export], now: datetime
    ) -> None:
        """Exports not written: newer already (or another worker's), or the write failed."""
        kept = {item.doc.key for item in current}
        for item in mine:
            if item.doc.key not in kept:
                reason = "not written: a newer version went out, or another worker exported it"
                self._note(now, "superseded", item.doc, file=item.file.name, reason=reason)
        for item in failed:
            reason = "the file could not be written: it stays unsynced and is tried again"
            self._note(now, "not_written", item.doc, file=item.file.name, reason=reason)

    def _note(
        self,
        now: datetime,
        event: str,
        doc: StoredDocument,
        file: str | None = None,
        reason: str | None = None,
    ) -> None:
        """One journal entry about ``doc``, written with the batch's."""
        if not self.journal.on:
            return
        updated = doc.doc.get("updatedAt")
        self._entries.append(
            Entry(
                at=now,
                direction="out",
                event=event,
                number=_number(doc.doc.get("number")),
                file=file,
                version=updated if isinstance(updated, datetime) else None,
                reason=reason,
                worker=self.journal.worker,
            )
        )


def _number(value: object) -> int | None:
    """A stored document's number as the journal keys it (none when it is not a number)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if -INT64_MAX <= value <= INT64_MAX else None


def _mark(item: Export) -> SyncMark:
    return SyncMark(item.doc.key, item.doc.version)
