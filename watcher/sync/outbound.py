"""TracOS → ERP: export unsynced work orders through the format and the sink, then mark them.

Order of work per batch: render each order as a file; claim the files' names from the
sink (exclusive across workers); keep only the documents still unsynced at the version
read; have the sink write them durably; only then mark them synced, conditionally, in one
bulk write; release the claims. A document changed in between keeps ``isSynced`` unset and
goes out again; where it changed to a synced version (an ERP file landed meanwhile), the
file is repaired from the store (``watcher.sync.repair``): the claims only save work.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterable, Mapping, Sequence, Set
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from itertools import islice
from typing import Final

import anyio

from watcher.core.errors import StoreUnavailable, Unexportable
from watcher.core.tracos import read_tracos
from watcher.erp import ErpFormat, OutboundFile, OutboundSink
from watcher.store import JournalEvent, StoredDocument, SyncMark, WorkOrderStore
from watcher.sync.batches import Exported, OutboundDone, Refused
from watcher.sync.bookkeeping import Bookkeeping
from watcher.sync.pausing import Pauses
from watcher.sync.repair import Repair
from watcher.sync.reported import ReportedVersions
from watcher.sync.retrying import StoreRetry, attempted
from watcher.sync.tracing import listed, traced

log = logging.getLogger("watcher.outbound")
WRITE_ATTEMPTS: Final = 5  # per batch; files still failing are tried again later
MARKED_KEPT: Final = 10_000  # exports this worker marked, remembered (the newest)


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
    retry: StoreRetry
    batch_size: int
    poll_seconds: float
    retry_max_seconds: float
    where: str  # for the log line: where the files went
    books: Bookkeeping
    pauses: Pauses  # `watcher pause outbound` holds new exports
    repair: Repair  # an outbound file written, then its order changed: to the stored version
    reported: ReportedVersions = field(default_factory=ReportedVersions)
    unwritten: set[str] = field(default_factory=set)  # keys whose file could not be written
    _lock: anyio.Lock = field(default_factory=anyio.Lock)  # one export at a time
    _stopping: bool = False  # a stop: no batch starts, the one in flight finishes
    _listed: set[str] = field(default_factory=set)  # keys this run listed as unexportable
    _refusals_said: dict[str, str] = field(default_factory=dict)  # key → its mark's refusal
    # key → the version this worker last marked: a second read of that same version (a
    # sweep after a reconnect, a stream event read meanwhile) is this export, not another's
    _marked: dict[str, Hashable] = field(default_factory=dict)

    async def run(self) -> None:
        """Follow the store's unsynced documents for as long as the worker runs."""
        await self.sink.recover()
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._rewrite_later)
            tg.start_soon(self.repair.settle_all, self.batch_size)  # what a crash left
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
        await self.pauses.wait("outbound")  # held by `watcher pause outbound`
        newest = list({doc.key: doc for doc in docs}.values())
        size = self.batch_size
        async with self._lock:
            for start in range(0, len(newest), size):
                if self._stopping:
                    return  # the rest stays unsynced: the next start's sweep exports it
                await self._export_batch(newest[start : start + size])

    async def finish(self) -> None:
        """At a stop: no export batch starts from now on, and the one in flight ends as a
        batch does (written, marked, logged and journalled). Cut short, a batch whose marks
        the store applied would be said nowhere: synced, never journalled or logged."""
        self._stopping = True
        async with self._lock:
            pass

    @traced(
        "outbound export",
        lambda _, docs: listed("watcher.orders", [_order_number(d) for d in docs]),
    )
    async def _export_batch(self, docs: Sequence[StoredDocument]) -> None:
        """Claim the files' names, keep what is still unsynced at the version read, write
        it, mark it, release: a stale read (another worker's newer export meanwhile, a
        paused process) never overwrites a newer file, in any process."""
        ready, refused = self._render_all(docs)
        rendered = [item.doc.key for item in ready]
        if refused or rendered:  # said at once, whatever becomes of the rest of the batch
            found = OutboundDone(datetime.now(UTC), [], refused, rendered, self.where)
            await self.books.outbound(found)
        if ready:
            await self._export_ready(ready)

    async def _export_ready(self, ready: list[Export]) -> None:
        async with self.sink.claim([item.file for item in ready]) as held:
            mine = [item for index, item in enumerate(ready) if index in held]
            current = await self._still_current(mine)
            failed = await self._write_all(current)
            written = [item for item in current if item not in failed]
            now = datetime.now(UTC)
            refused: dict[str, str] = {}  # marks the store refused for good, by key
            marked = await self.retry(partial(self._mark_all, written, now, refused))
        answered = {*marked, *refused}  # built once: per item, a batch of 1,000 cost 20 ms
        changed = [i.number for i in written if i.doc.key not in answered]
        await self.repair.settle(changed)  # written, then changed: maybe to a synced version
        busy = [item for index, item in enumerate(ready) if index not in held]
        self.unwritten.update(item.doc.key for item in [*failed, *busy])
        self._remember(item for item in written if item.doc.key in marked)
        kept = {item.doc.key for item in current}
        outcomes = [
            *(self._written(item, marked, refused) for item in written),
            *(
                _exported(item, JournalEvent.SUPERSEDED)
                for item in mine
                if item.doc.key not in kept and not self._done_here(item)
            ),
            *(_exported(item, JournalEvent.NOT_WRITTEN) for item in failed),
        ]
        await self.books.outbound(OutboundDone(now, outcomes, [], [], self.where))

    def _remember(self, exported: Iterable[Export]) -> None:
        for item in exported:
            self._marked.pop(item.doc.key, None)
            self._marked[item.doc.key] = item.doc.version
        for key in list(islice(self._marked, max(0, len(self._marked) - MARKED_KEPT))):
            del self._marked[key]

    def _done_here(self, item: Export) -> bool:
        """Whether this worker already exported and marked exactly this version: then a
        stale read of it is nothing to say (another worker's export is: ``superseded``)."""
        if self._marked.get(item.doc.key) != item.doc.version:
            return False
        log.debug("order %d: this version went out already", item.number)
        return True

    async def _mark_all(
        self, written: list[Export], now: datetime, refused: dict[str, str]
    ) -> set[str]:
        refused.clear()  # a retried call reports afresh
        return await self.store.mark_synced([_mark(item) for item in written], now, refused)

    def _written(self, item: Export, marked: Set[str], refused: Mapping[str, str]) -> Exported:
        """A written export's outcome: marked, changed meanwhile, or its mark refused by the
        store (said once per reason, until the document is marked)."""
        key = item.doc.key
        if key in marked:
            self._refusals_said.pop(key, None)
            return _exported(item, JournalEvent.EXPORTED)
        if key not in refused:
            return _exported(item, JournalEvent.CHANGED_DURING_EXPORT)
        said = self._refusals_said.get(key) != refused[key]
        self._refusals_said[key] = refused[key]
        event = JournalEvent.MARK_REFUSED
        return Exported(item.doc, item.number, item.file.name, event, refused[key], said)

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

    def _render_all(self, docs: Sequence[StoredDocument]) -> tuple[list[Export], list[Refused]]:
        """Each document as its file, or the reason it cannot be (said once per version;
        a later change to the document tries it again)."""
        ready: list[Export] = []
        refused: list[Refused] = []
        for doc in docs:
            try:
                order = read_tracos(doc.doc)
                ready.append(Export(doc, order.number, self.format.render(order)))
            except Unexportable as exc:
                first = self.reported.first_time(doc.key, doc.version)  # by any run
                if first or doc.key not in self._listed:  # listed as stuck, said once
                    self._listed.add(doc.key)
                    refused.append(Refused(doc, str(exc), said=first))
        for item in ready:
            self.reported.forget(item.doc.key)
            self._listed.discard(item.doc.key)
        self.reported.save()
        return ready, refused

    async def _write_all(self, ready: list[Export]) -> list[Export]:
        """Write every file, retrying failures a few times; return those still not written."""
        pending = ready
        if not pending:
            return []

        async def write() -> None:
            nonlocal pending
            failed = await self.sink.write([item.file for item in pending])
            pending = [item for index, item in enumerate(pending) if index in failed]
            if pending:
                raise WriteFailed(f"{len(pending)} outbound files not written")

        try:
            await attempted(write, WriteFailed, WRITE_ATTEMPTS, self.retry_max_seconds)
        except WriteFailed:
            log.error(
                "%d outbound files not written: they stay unsynced, tried later", len(pending)
            )
        return pending


def _exported(item: Export, event: JournalEvent) -> Exported:
    return Exported(item.doc, item.number, item.file.name, event)


def _mark(item: Export) -> SyncMark:
    return SyncMark(item.doc.key, item.doc.version)


def _order_number(doc: StoredDocument) -> int:
    """The number a span lists for ``doc`` (0 for a document without a usable one)."""
    number = doc.doc.get("number")
    return number if isinstance(number, int) and not isinstance(number, bool) else 0
