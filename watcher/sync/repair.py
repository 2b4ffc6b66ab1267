"""Convergence: an outbound file still there ends up holding the stored version of its order.

Every writer checks after writing. An export whose mark was refused (the document changed
meanwhile), and an inbound write that changed an order, then settle those orders: where
the stored document is synced and its outbound file holds anything else, the stored
version is written, and checked again, until the file and the store agree. The last write
to a file is therefore always followed by a check that found the store holding what the
file holds; a later store change is again someone's write and check. No lock is needed
(a claim only saves duplicate work): any number of workers converge. See
docs/erp-contract-returns.md for what the ERP sees.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from watcher.core.errors import StoreUnavailable, Unexportable
from watcher.core.tracos import TracosWorkOrder, read_tracos
from watcher.erp import ErpFormat, OutboundFile, OutboundSink
from watcher.store import Entry, JournalEvent, WorkOrderStore
from watcher.sync.journaling import Recorder
from watcher.sync.retrying import StoreRetry
from watcher.sync.stats import Count, Stats

log = logging.getLogger(__name__)
_PROBE_DATE: Final = datetime(1970, 1, 1, tzinfo=UTC)
CHUNK: Final = 1000  # orders settled at a time


@dataclass
class Repair:
    format: ErpFormat
    sink: OutboundSink
    store: WorkOrderStore
    stats: Stats
    retry: StoreRetry
    journal: Recorder

    async def settle(self, numbers: Sequence[int]) -> int:
        """Make each of these orders' outbound files (those still there) hold the stored
        version wherever that version is synced; the files rewritten. An unsynced one is
        the exporter's: it writes it, then checks in turn. A few at a time: a batch file of
        100,000 orders costs no more memory here than one of a thousand."""
        rewritten = 0
        for start in range(0, len(numbers), CHUNK):
            rewritten += await self._settle(numbers[start : start + CHUNK])
        return rewritten

    async def _settle(self, numbers: Collection[int]) -> int:
        pending = sorted(set(numbers))
        rewritten = 0
        while pending:
            present = await self._present(pending)
            if not present:
                break
            stale = await self._stale(present)
            files = list(stale.values())
            failed = await self.sink.write(files) if files else set()
            # checked again: the store may have moved on while we wrote (a failed write
            # leaves the file as it was, for the next settle or `watcher verify`)
            pending = [n for index, n in enumerate(stale) if index not in failed]
            await self._note(pending, stale)
            rewritten += len(pending)
        return rewritten

    async def _present(self, numbers: list[int]) -> dict[int, OutboundFile]:
        """The orders whose outbound file is there, each with that file as it is now."""
        names = [self._name(number) for number in numbers]
        held = await self.sink.read([name for name in names if name])
        found = iter(held)
        return {
            number: OutboundFile(name, data)
            for number, name in zip(numbers, names, strict=True)
            if name and (data := next(found)) is not None
        }

    async def _stale(self, present: dict[int, OutboundFile]) -> dict[int, OutboundFile]:
        """The stored, synced versions whose file holds something else, by number."""
        docs = await self.retry(lambda: self.store.find(list(present)))
        stale = {}
        for doc in docs:
            if doc.get("isSynced") is not True:
                continue
            wanted = self._render(doc)
            if wanted is not None and wanted.data != present[doc["number"]].data:
                stale[doc["number"]] = wanted
        return stale

    async def settle_all(self, batch_size: int) -> None:
        """Settle every stored order, a batch at a time (at start: an export cut short by a
        crash between its write and its check). Best effort: an outage ends it."""
        try:
            async with aclosing(self.store.iter_documents(batch_size)) as batches:
                async for batch in batches:
                    await self.settle([n for d in batch if isinstance(n := d.get("number"), int)])
        except StoreUnavailable as exc:
            log.warning("outbound files not all checked against the store: %s", exc)

    def _name(self, number: int) -> str | None:
        """The file name an order's export gets (a format names it by the number alone)."""
        probe = TracosWorkOrder(
            number=number,
            status="created",
            title="",
            createdAt=_PROBE_DATE,
            updatedAt=_PROBE_DATE,
        )
        try:
            return self.format.render(probe).name
        except Unexportable:
            return None

    def _render(self, doc: dict[str, object]) -> OutboundFile | None:
        try:
            return self.format.render(read_tracos(doc))
        except Unexportable:
            return None  # the exporter reports it (once per version)

    async def _note(self, done: Sequence[int], files: dict[int, OutboundFile]) -> None:
        if not done:
            return
        self.stats.count(Count.REPAIRED, len(done))
        log.info(
            "rewrote %d outbound files that held another version than the store's",
            len(done),
            extra={"outcome": "repaired", "counts": {"repaired": len(done)}},
        )
        if not self.journal.on:
            return
        now = datetime.now(UTC)
        reason = "the file held another version than the store's synced one: rewritten"
        entries = [
            Entry(
                at=now,
                direction="out",
                event=JournalEvent.REPAIRED,
                number=number,
                file=files[number].name,
                reason=reason,
                worker=self.journal.worker,
            )
            for number in done
        ]
        await self.journal.record(entries)
