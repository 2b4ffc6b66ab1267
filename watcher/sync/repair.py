"""Convergence: an outbound file still there ends up holding the stored version of its order.

Every writer checks after writing. An export whose mark was refused (the document changed
meanwhile), and an inbound write that changed an order, then settle those orders: where
the stored document is synced and its outbound file holds anything else, the stored
version is written, or, where the stored version is the ERP's own (``tracos.erps_own``),
the file is withdrawn: the ERP has that version, and an older one left behind would
depend on whether TracOS's was exported before the ERP's arrived. Then it is checked
again, until the file and the store agree. The last write (or removal) of a file is
therefore always followed by a check that found the store holding what the file holds; a
later store change is again someone's write and check. No lock is needed (a claim only
saves duplicate work): any number of workers converge. See docs/erp-contract-returns.md
for what the ERP sees.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from watcher.core.errors import StoreUnavailable, Unexportable
from watcher.core.tracos import TracosWorkOrder, erps_own, read_tracos
from watcher.erp import ErpFormat, OutboundFile, OutboundSink
from watcher.store import Entry, JournalEvent, WorkOrderStore
from watcher.sync.journaling import Recorder
from watcher.sync.retrying import StoreRetry
from watcher.sync.stats import Count, Stats

log = logging.getLogger(__name__)
_PROBE_DATE: Final = datetime(1970, 1, 1, tzinfo=UTC)
# Numbers a format's names are tried with: far apart, with and without room for padding
_PROBES: Final = (7, 4242, 1_234_567, 2**40 + 3)
_UNKNOWN: Final = ("", "\0")
CHUNK: Final = 1000  # orders settled at a time
REWRITTEN: Final = "the file held another version than the store's synced one: rewritten"
WITHDRAWN: Final = (
    "the file held another version than the ERP's own, which is stored: withdrawn"
    " (its own versions are not sent back)"
)


@dataclass
class Repair:
    format: ErpFormat
    sink: OutboundSink
    store: WorkOrderStore
    stats: Stats
    retry: StoreRetry
    journal: Recorder
    _pattern: tuple[str, str] | None = field(default=_UNKNOWN, init=False)  # see ``_name``

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
        withdrawn: set[int] = set()  # files this settle removed: the store is asked again
        done = 0
        while pending:
            held = await self._held(pending)
            if not any(data is not None for data in held.values()) and not withdrawn:
                break
            writes, removals = await self._plan(held, withdrawn)
            failed = await self.sink.write(list(writes.values())) if writes else set()
            unremoved = await self.sink.withdraw(list(removals.values())) if removals else set()
            # checked again: the store may have moved on while we wrote (a failed write
            # leaves the file as it was, for the next settle or `watcher verify`)
            written = [n for index, n in enumerate(writes) if index not in failed]
            removed = [n for index, n in enumerate(removals) if index not in unremoved]
            withdrawn.update(removed)
            pending = sorted({*written, *removed})
            await self._note(written, {n: writes[n].name for n in written}, REWRITTEN)
            await self._note(removed, {n: removals[n] for n in removed}, WITHDRAWN)
            done += len(pending)
        return done

    async def _held(self, numbers: list[int]) -> dict[int, bytes | None]:
        """What each order's outbound file holds now (None: there is none)."""
        names = {number: name for number in numbers if (name := self._name(number))}
        held = await self.sink.read(list(names.values()))
        return dict(zip(names, held, strict=True))

    async def _plan(
        self, held: dict[int, bytes | None], withdrawn: set[int]
    ) -> tuple[dict[int, OutboundFile], dict[int, str]]:
        """The files to write (the stored version) and those to withdraw, by number.

        The ERP's own version stored: a file holding another version is withdrawn (the ERP
        has a newer one of its own: nothing goes back, docs/erp-contract-returns.md). A
        TracOS version synced: a file holding another one is rewritten. One this settle
        withdrew whose order changed since: the stored version is written, synced or not
        (an export may have written it just before the withdrawal)."""
        docs = await self.retry(lambda: self.store.find(list(held)))
        writes: dict[int, OutboundFile] = {}
        removals: dict[int, str] = {}
        for doc in docs:
            number = doc["number"]
            data, wanted = held[number], self._render(doc)
            if wanted is not None and data == wanted.data:
                continue
            if erps_own(doc):
                if data is not None and (name := self._name(number)):
                    removals[number] = name
            elif wanted is not None and (
                (data is not None and doc.get("isSynced") is True) or number in withdrawn
            ):
                writes[number] = wanted
        return writes, removals

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
        if self._pattern is _UNKNOWN:
            self._pattern = _name_pattern(self.format)
        if self._pattern is not None:
            prefix, suffix = self._pattern
            return f"{prefix}{number}{suffix}"
        return _probe_name(self.format, number)

    def _render(self, doc: dict[str, object]) -> OutboundFile | None:
        try:
            return self.format.render(read_tracos(doc))
        except Unexportable:
            return None  # the exporter reports it (once per version)

    async def _note(self, done: Sequence[int], names: dict[int, str], reason: str) -> None:
        if not done:
            return
        self.stats.count(Count.REPAIRED, len(done))
        what = "rewrote" if reason is REWRITTEN else "withdrew"
        log.info(
            "%s %d outbound files that held another version than the store's",
            what,
            len(done),
            extra={"outcome": "repaired", "counts": {"repaired": len(done)}},
        )
        if not self.journal.on:
            return
        now = datetime.now(UTC)
        entries = [
            Entry(
                at=now,
                direction="out",
                event=JournalEvent.REPAIRED,
                number=number,
                file=names[number],
                reason=reason,
                worker=self.journal.worker,
            )
            for number in done
        ]
        await self.journal.record(entries)


def _name_pattern(format: ErpFormat) -> tuple[str, str] | None:
    """(prefix, suffix) when the format names every probe ``prefix + number + suffix``
    (every built-in format does): then a name costs no render. None: render each."""
    patterns = set()
    for number in _PROBES:
        name = _probe_name(format, number)
        prefix, found, suffix = (name or "").partition(str(number))
        if not found:
            return None
        patterns.add((prefix, suffix))
    return patterns.pop() if len(patterns) == 1 else None


def _probe_name(format: ErpFormat, number: int) -> str | None:
    probe = TracosWorkOrder(
        number=number,
        status="created",
        title="",
        createdAt=_PROBE_DATE,
        updatedAt=_PROBE_DATE,
    )
    try:
        return format.render(probe).name
    except Unexportable:
        return None
