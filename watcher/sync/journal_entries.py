"""The journal's entries of a finished batch, written once the batch is done."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from watcher.core.tracos import INT64_MAX, NUMBER, UPDATED_AT
from watcher.erp import NotFiled, Taken
from watcher.store import Entries, Entry, JournalEvent, OrderEntries, StoredDocument
from watcher.sync.batches import (
    FiledFile,
    InboundDone,
    OutboundDone,
    order_outcomes,
    orders_and_outcomes,
    quarantine_reason,
    tally,
)
from watcher.sync.conflicts import clash_entries
from watcher.sync.journaling import Recorder


class Journaling:
    """The journal's entries of each batch, written once the batch is done."""

    def __init__(self, journal: Recorder) -> None:
        self.journal = journal

    async def inbound(self, done: InboundDone) -> None:
        if self.journal.on:
            await self.journal.record(Entries(inbound_parts(done, self.journal.worker)))

    async def outbound(self, done: OutboundDone) -> None:
        if self.journal.on:
            await self.journal.record(outbound_entries(done, self.journal.worker))


def inbound_entries(done: InboundDone, worker: str) -> list[Entry]:
    """One entry per order and one per file; a file of one order, archived, is one entry
    (the order's, with ``to``): one row, not two, for the commonest file. Files filed away
    late get their file's entry alone: their orders' were written with their batch."""
    return list(Entries(inbound_parts(done, worker)))


def inbound_parts(done: InboundDone, worker: str) -> list[Sequence[Entry]]:
    """``inbound_entries`` in parts: a file's orders made with its entry are columns
    (``OrderEntries``) until written, not 270,000 entries beside the batch's orders."""
    parts: list[Sequence[Entry]] = []
    entries: list[Entry] = []
    taken = [item.taken for item in done.files]
    for item in done.files:
        event, to, _ = filing(item.taken, item.where)
        if done.refiled:
            entries.append(_file_entry(item, done.filed_at, worker))
        elif event is JournalEvent.ARCHIVED and len(item.outcomes) == 1:
            entries += _order_entries(item, done.stored_at, worker, to=to)
        else:  # the file's entry made first: its orders' ids point at it
            own = _file_entry(item, done.filed_at, worker)
            parts += [entries, _file_orders(item, done.stored_at, worker, own.id)]
            entries = [own]
    parts += [entries, clash_entries(done.clashes, taken, worker, done.stored_at)]
    return parts


def _file_orders(item: FiledFile, at: datetime, worker: str, of: bytes) -> OrderEntries:
    """What became of each order of the file, as columns; their ids point at ``of``."""
    orders, outcomes = orders_and_outcomes(item)
    numbers, versions = list(map(NUMBER, orders)), list(map(UPDATED_AT, orders))
    return OrderEntries.of_columns(
        numbers, versions, outcomes, of=of, at=at, file=item.taken.shown, worker=worker
    )


def _order_entries(
    item: FiledFile,
    at: datetime,
    worker: str,
    *,
    to: str | None = None,
) -> list[Entry]:
    """What became of each order of the file, and which version it was (a file of one
    order: each entry an id of its own)."""
    file = item.taken.shown
    return [
        Entry(
            at=at,
            direction="in",
            event=outcome.value,
            number=order.number,
            file=file,
            to=to,
            version=order.updatedAt,
            worker=worker,
        )
        for order, outcome in order_outcomes(item)
    ]


def _file_entry(item: FiledFile, at: datetime, worker: str) -> Entry:
    """Where the file went (or why it did not), with its orders counted by outcome."""
    event, to, reason = filing(item.taken, item.where)
    return Entry(
        at=at,
        direction="in",
        event=event,
        file=item.taken.shown,
        to=to,
        reason=reason,
        counts=tally(item.outcomes) or None,
        worker=worker,
    )


def filing(taken: Taken, where: str | NotFiled) -> tuple[JournalEvent, str | None, str | None]:
    """The journal's event, destination and reason for ``taken`` filed to ``where``."""
    if isinstance(where, NotFiled):
        event = JournalEvent.CLAIMED if where is NotFiled.LATER else JournalEvent.RETAKEN
        return event, None, where.value
    why = quarantine_reason(taken)
    if why is None:
        return JournalEvent.ARCHIVED, where, None
    reason = f"{why[0]} at {why[1]}"
    if taken.verdict is None:
        return JournalEvent.QUARANTINED, where, reason
    return JournalEvent.PARTLY_REJECTED, where, reason


# Why an export of this kind was not marked, as the journal says it.
UNSENT_REASONS = {
    JournalEvent.SUPERSEDED: "not written: a newer version went out, or another worker exported it",
    JournalEvent.NOT_WRITTEN: "the file could not be written: it stays unsynced and is tried again",
}


def outbound_entries(done: OutboundDone, worker: str) -> list[Entry]:
    """Unexportable documents first, then the written exports, then those not written."""
    entries = [
        _out_entry(done.at, JournalEvent.UNEXPORTABLE, r.doc, worker, reason=r.reason)
        for r in done.unexportable
        if r.said
    ]
    written = (JournalEvent.EXPORTED, JournalEvent.CHANGED_DURING_EXPORT, JournalEvent.MARK_REFUSED)
    for kinds in (written, (JournalEvent.SUPERSEDED,), (JournalEvent.NOT_WRITTEN,)):
        entries += [
            _out_entry(
                done.at,
                e.event,
                e.doc,
                worker,
                file=e.file,
                reason=e.reason or UNSENT_REASONS.get(e.event),
            )
            for e in done.exports
            if e.event in kinds and e.said
        ]
    return entries


def _out_entry(
    at: datetime,
    event: JournalEvent,
    doc: StoredDocument,
    worker: str,
    *,
    file: str | None = None,
    reason: str | None = None,
) -> Entry:
    updated = doc.doc.get("updatedAt")
    return Entry(
        at=at,
        direction="out",
        event=event,
        number=_number(doc.doc.get("number")),
        file=file,
        version=updated if isinstance(updated, datetime) else None,
        reason=reason,
        worker=worker,
    )


def _number(value: object) -> int | None:
    """A stored document's number as the journal keys it (none when it is not a number)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if -INT64_MAX <= value <= INT64_MAX else None
