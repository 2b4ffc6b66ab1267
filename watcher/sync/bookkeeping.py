"""The books of finished batches: observers that turn a batch's outcome into counters,
the console's recent events, log lines and journal entries, each on its own — the pattern
of stamina's hooks and dramatiq's middleware. Every counter is a ``Count`` and every
journal event a ``JournalEvent``: named once.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from watcher.core.tracos import OrderUpsert, Outcome
from watcher.erp import NotFiled, Taken
from watcher.store import JournalEvent, StoredDocument
from watcher.sync.batches import (
    Exported,
    FiledFile,
    InboundDone,
    OutboundDone,
    Refused,
    changed,
    order_outcomes,
    quarantine_reason,
    tally,
    tally_all,
)
from watcher.sync.conflicts import count_clashes, log_clashes
from watcher.sync.journal_entries import Journaling
from watcher.sync.journaling import Recorder
from watcher.sync.stats import ORDERS, RECENT, Count, Failure, Stats

# The pipelines' own logger names: operators filter JSON log lines on them.
in_log = logging.getLogger("watcher.inbound")
out_log = logging.getLogger("watcher.outbound")


class Observer(Protocol):
    """Something that keeps books of finished batches."""

    async def inbound(self, done: InboundDone) -> None: ...

    async def outbound(self, done: OutboundDone) -> None: ...


class Bookkeeping:
    """The observers of a worker's batches, told in turn."""

    def __init__(self, observers: Sequence[Observer]) -> None:
        self.observers = tuple(observers)

    async def inbound(self, done: InboundDone) -> None:
        for observer in self.observers:
            await observer.inbound(done)

    async def outbound(self, done: OutboundDone) -> None:
        for observer in self.observers:
            await observer.outbound(done)


def standard_books(stats: Stats, journal: Recorder, more: Sequence[Observer] = ()) -> Bookkeeping:
    """Counters and recent events, log lines, any others (receipts), then the journal."""
    return Bookkeeping([Counting(stats), Logging(), *more, Journaling(journal)])


class Counting:
    """Counters, latencies, failures and the console's recent events."""

    def __init__(self, stats: Stats) -> None:
        self.stats = stats

    async def inbound(self, done: InboundDone) -> None:
        """Counted per batch, not per file: a burst's batch is a thousand one-order files."""
        stats, now = self.stats, done.filed_at
        filed = [item for item in done.files if not isinstance(item.where, NotFiled)]
        used = [item.taken for item in filed if item.taken.verdict is not None]
        if used:
            stats.count(Count.FILES_ARCHIVED, len(used))
            wall = time.time()
            stats.latency_in.extend([max(0.0, wall - taken.landed) for taken in used])
        for item in filed:
            if (why := quarantine_reason(item.taken)) is not None:
                self._failed(item.taken, f"{why[0]} at {why[1]}", now)
        if done.refiled:  # kept without their orders: those were counted with their batch
            return
        count_clashes(done.clashes, stats)
        recent: deque[tuple[OrderUpsert, Outcome]] = deque(maxlen=RECENT)
        for item in filed:
            recent.extend(order_outcomes(item, RECENT))
        for order, outcome in recent:
            stats.event(now, "in", str(order.number), str(outcome))
        stats.count(Count.FILES_SEEN, len(done.files))
        for outcome, count in tally_all(done).items():
            stats.count(ORDERS[outcome], count)

    def _failed(self, taken: Taken, said: str, now: datetime) -> None:
        self.stats.count(Count.FILES_FAILED)
        self.stats.failure(now, "in", taken.shown, said)
        self.stats.event(now, "in", taken.shown, "failed")

    async def outbound(self, done: OutboundDone) -> None:
        stats, now = self.stats, done.at
        for key in done.rendered:
            stats.unexportable.pop(key, None)
        for refused in done.unexportable:
            subject = _subject(refused.doc)
            stats.unexportable.pop(refused.doc.key, None)  # re-inserted: the newest come last
            stats.unexportable[refused.doc.key] = Failure(now, "out", subject, refused.reason)
            if refused.said:
                stats.failure(now, "out", subject, refused.reason)
                stats.count(Count.UNEXPORTABLE)
        if not done.exports:
            return
        self._marks_refused(done)
        marked = [e for e in done.exports if e.event is JournalEvent.EXPORTED]
        stats.latency_out.extend(
            max(0.0, (now - item.doc.changed_at).total_seconds())
            for item in marked
            if item.doc.changed_at is not None
        )
        for item in marked[-RECENT:]:  # the console keeps these few: the rest are not made
            stats.event(now, "out", str(item.number), "exported")
        stats.count(Count.EXPORTED, len(marked))
        stats.count(Count.CHANGED_DURING_EXPORT, changed(done))

    def _marks_refused(self, done: OutboundDone) -> None:
        """Orders whose mark the store refused are listed until they are marked."""
        stats, now = self.stats, done.at
        for item in done.exports:
            if item.event is JournalEvent.EXPORTED:
                stats.marks_refused.pop(item.doc.key, None)
            elif item.event is JournalEvent.MARK_REFUSED and item.said:  # or as listed
                refused = Failure(now, "out", f"order {item.number}", item.reason)
                stats.marks_refused.pop(item.doc.key, None)  # re-inserted: the newest come last
                stats.marks_refused[item.doc.key] = refused
                stats.failure(refused.time, "out", refused.subject, refused.reason)


class Logging:
    """The log lines: one per batch, one per quarantined file or unexportable order."""

    async def inbound(self, done: InboundDone) -> None:
        each = in_log.isEnabledFor(logging.DEBUG)  # a line per file only when debugging
        for item in done.files:
            if not isinstance(item.where, NotFiled):
                _log_filed(item, item.where, each)
        log_clashes(done.clashes)
        counts = {str(outcome): n for outcome, n in tally_all(done).items()}
        if counts and not done.refiled:
            shown = ", ".join(f"{n} {o}" for o, n in counts.items())
            in_log.info("%d files: orders %s", len(done.files), shown, extra={"counts": counts})

    async def outbound(self, done: OutboundDone) -> None:
        for refused in done.unexportable:
            if refused.said:
                _log_unexportable(refused)
        for item in done.exports:
            if item.event is JournalEvent.MARK_REFUSED and item.said:
                _log_mark_refused(item)
        events = Counter(e.event for e in done.exports)
        written = events[JournalEvent.EXPORTED] + events[JournalEvent.CHANGED_DURING_EXPORT]
        superseded = events[JournalEvent.SUPERSEDED]
        if not written and not superseded:
            return
        marked, meanwhile = events[JournalEvent.EXPORTED], changed(done)
        note = f"; {meanwhile} changed meanwhile and were not marked" if meanwhile else ""
        if superseded:
            note += f"; {superseded} not written: newer already, or exported by another worker"
        counts = {"exported": marked, "changed_during_export": meanwhile}
        fields = {"outcome": "exported", "to": done.where, "counts": counts}
        out_log.info("exported %d orders to %s%s", marked, done.where, note, extra=fields)
        if out_log.isEnabledFor(logging.DEBUG):
            numbers = [e.number for e in done.exports if e.event is JournalEvent.EXPORTED]
            out_log.debug(
                "exported orders %s", ", ".join(map(str, numbers)), extra={"orders": numbers}
            )


def _log_filed(item: FiledFile, where: str, each: bool) -> None:
    taken = item.taken
    if (why := quarantine_reason(taken)) is not None:
        reason, path = why
        fields = {"file": taken.shown, "outcome": "quarantined", "reason": reason, "path": path}
        said = f"{reason} at {path}"
        in_log.warning(
            "%s quarantined as %s: %s", taken.shown, where, said, extra=fields | {"to": where}
        )
    if taken.verdict is not None and each:
        counts = tally(item.outcomes)
        shown = ", ".join(f"{n} {o}" for o, n in counts.items()) or "no orders"
        in_log.debug("%s: %s", taken.shown, shown, extra={"file": taken.shown, "counts": counts})


def _log_unexportable(refused: Refused) -> None:
    doc = refused.doc
    fields = {"order": doc.doc.get("number"), "document": doc.key, "reason": refused.reason}
    out_log.warning(
        "%s (document %s) cannot be exported: %s",
        _subject(doc),
        doc.key,
        refused.reason,
        extra=fields | {"outcome": "unexportable"},
    )


def _log_mark_refused(item: Exported) -> None:
    fields = {"order": item.number, "document": item.doc.key, "reason": item.reason}
    out_log.warning(
        "order %d (document %s) was written to %s but cannot be marked synced (it stays"
        " unsynced): %s",
        item.number,
        item.doc.key,
        item.file,
        item.reason,
        extra=fields | {"outcome": "mark_refused"},
    )


def _subject(doc: StoredDocument) -> str:
    return f"order {doc.doc.get('number', '?')}"
