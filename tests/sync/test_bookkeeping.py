"""The books of a finished batch, kept by observers from plain values (pure, no fixtures
beyond a recorder that keeps nothing): counters, recent events and journal entries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest

from tests.helpers.builders import NOW, T0, order
from watcher.core.errors import RejectedInput
from watcher.core.tracos import Outcome
from watcher.erp.port import FileVerdict, NotFiled, Rejection, Taken
from watcher.store import StoredDocument
from watcher.store.journal import JournalEvent
from watcher.sync.batches import Exported, FiledFile, InboundDone, OutboundDone, Refused
from watcher.sync.bookkeeping import Bookkeeping, Counting
from watcher.sync.journal_entries import inbound_entries, outbound_entries
from watcher.sync.stats import Count, Stats

LATER = NOW + timedelta(seconds=1)
pytestmark = pytest.mark.anyio


def taken(name: str, *numbers: int, rejected: int = 0) -> Taken:
    refusals = [Rejection(i, "$.orderNo", "bad") for i in range(rejected)]
    verdict = FileVerdict([order(n) for n in numbers], refusals, is_batch=len(numbers) > 1)
    return Taken(name, name, NOW.timestamp(), verdict)


def bad(name: str) -> Taken:
    return Taken(name, name, NOW.timestamp(), error=RejectedInput("not JSON", "$"))


ONE = FiledFile(taken("1.json", 1), "1.json", [Outcome.INSERTED])
TWO = FiledFile(taken("b.json", 2, 3, rejected=1), "b.json", [Outcome.UPDATED, Outcome.STALE])
BAD = FiledFile(bad("x.json"), "x.json", [])
HELD = FiledFile(taken("4.json", 4), NotFiled.LATER, [Outcome.INSERTED])


def events(entries: Sequence[object]) -> list[str]:
    return [str(getattr(entry, "event", "")) for entry in entries]


def test_a_one_order_file_archived_is_one_entry_naming_where_it_went() -> None:
    """The commonest file costs one journal row: its order's, with ``to``."""
    [entry] = inbound_entries(InboundDone([ONE], NOW, LATER), "w")
    assert (entry.event, entry.number, entry.to, entry.at) == ("inserted", 1, "1.json", NOW)


def test_every_other_file_has_its_orders_and_its_filing() -> None:
    """Orders first, then where the file went (or why it stays claimed)."""
    entries = inbound_entries(InboundDone([TWO, BAD, HELD], NOW, LATER), "w")
    assert events(entries) == [
        "updated", "stale", "partly_rejected", "quarantined", "inserted", "claimed"
    ]  # fmt: skip
    assert entries[2].counts == {"updated": 1, "stale": 1}
    assert entries[3].reason == "not JSON at $"
    assert entries[5].to is None


def test_files_filed_away_late_are_their_filing_alone() -> None:
    """Their orders were journalled and counted with their batch."""
    done = InboundDone([HELD, ONE], LATER, LATER, refiled=True)
    assert events(inbound_entries(done, "w")) == ["claimed", "archived"]


async def test_counting_counts_files_orders_and_failures_once() -> None:
    """Files seen, archived and failed; orders by outcome; the quarantined file's reason."""
    stats = Stats(NOW)
    await Counting(stats).inbound(InboundDone([ONE, TWO, BAD, HELD], NOW, LATER))
    assert stats.counters == {
        Count.FILES_SEEN: 4,
        Count.FILES_ARCHIVED: 2,
        Count.FILES_FAILED: 2,
        Count.ORDERS_INSERTED: 2,
        Count.ORDERS_UPDATED: 1,
        Count.ORDERS_STALE: 1,
    }
    assert [f.subject for f in stats.failures] == ["b.json", "x.json"]
    assert [e.subject for e in stats.events if e.outcome != "failed"] == ["1", "2", "3"]


async def test_refiled_files_are_not_counted_again() -> None:
    stats = Stats(NOW)
    await Counting(stats).inbound(InboundDone([ONE], LATER, LATER, refiled=True))
    assert stats.counters == {Count.FILES_ARCHIVED: 1}


def doc(key: str, number: int) -> StoredDocument:
    return StoredDocument(key, {"number": number, "updatedAt": T0}, version=(key, T0))


def exported(number: int, event: JournalEvent) -> Exported:
    return Exported(doc(str(number), number), number, f"{number}.json", event)


OUT = OutboundDone(
    NOW,
    [
        exported(1, JournalEvent.EXPORTED),
        exported(2, JournalEvent.CHANGED_DURING_EXPORT),
        exported(3, JournalEvent.NOT_WRITTEN),
        exported(4, JournalEvent.SUPERSEDED),
    ],
    [Refused(doc("9", 9), "no status")],
    ["1"],
    "outbound",
)


def test_outbound_entries_come_refused_written_superseded_then_unwritten() -> None:
    entries = outbound_entries(OUT, "w")
    assert [(e.event, e.number) for e in entries] == [
        ("unexportable", 9),
        ("exported", 1),
        ("changed_during_export", 2),
        ("superseded", 4),
        ("not_written", 3),
    ]
    assert entries[0].reason == "no status"
    assert all(e.version == T0 for e in entries)


@pytest.mark.parametrize("observers", [1, 3])
async def test_every_observer_is_told_every_batch(observers: int) -> None:
    """The seam: observers see each batch in turn, as plain values."""
    told: list[object] = []

    class Keeper:
        async def inbound(self, done: InboundDone) -> None:
            told.append(done)

        async def outbound(self, done: OutboundDone) -> None:
            told.append(done)

    books = Bookkeeping([Keeper() for _ in range(observers)])
    inbound = InboundDone([ONE], NOW, LATER)
    await books.inbound(inbound)
    await books.outbound(OUT)
    assert told == [inbound] * observers + [OUT] * observers


async def test_counting_counts_exports_and_unexportable_orders() -> None:
    stats = Stats(NOW)
    stats.unexportable["1"] = stats.unexportable["9"] = None  # type: ignore[assignment]
    await Counting(stats).outbound(OUT)
    assert stats.counters == {
        Count.UNEXPORTABLE: 1,
        Count.EXPORTED: 1,
        Count.CHANGED_DURING_EXPORT: 1,
    }
    assert list(stats.unexportable) == ["9"]  # rendered now: no longer listed
    assert [e.subject for e in stats.events] == ["1"]
