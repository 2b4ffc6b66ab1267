"""The journal's writer: a failing journal never stops, nor loses, the work it describes."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import anyio
import pytest

from tests.helpers.builders import NOW, erp
from tests.helpers.conditions import DEADLINE, wait_for
from tests.helpers.workers import drop, names, opened_store, running
from watcher.core.errors import StoreUnavailable
from watcher.core.settings import Settings
from watcher.store.configured import build_journal
from watcher.store.journal import Entry, HistoryQuery, JournalTrouble
from watcher.sync import journaling
from watcher.sync.journaling import Recorder
from watcher.sync.retrying import StoreRetry
from watcher.sync.stats import Count, Stats

pytestmark = pytest.mark.anyio


class FlakyJournal:
    """A journal that refuses ``failures`` writes (as an outage), then takes them."""

    def __init__(self, failures: int = 0, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or StoreUnavailable("journal down")
        self.written: list[Entry] = []
        self.writes = 0
        self.gate = anyio.Event()
        self.gate.set()
        self.forgotten: list[tuple[datetime, int]] = []

    async def open(self, create: bool = True) -> None: ...

    async def close(self) -> None: ...

    async def record(self, entries: Sequence[Entry]) -> None:
        self.writes += 1
        await self.gate.wait()
        if self.failures:
            self.failures -= 1
            raise self.error
        self.written += entries

    async def history(self, query: HistoryQuery) -> list[Entry]:
        return []

    async def forget(self, before: datetime, keep: int) -> int:
        self.forgotten.append((before, keep))
        return 0


def entries(count: int, event: str = "inserted") -> list[Entry]:
    return [Entry(at=NOW, direction="in", event=event, number=n) for n in range(count)]


async def test_entries_wait_through_an_outage_and_go_with_the_next_batch(
    caplog: pytest.LogCaptureFixture,
) -> None:
    journal = FlakyJournal(failures=2)
    recorder = Recorder(journal, "w", 30, 100)
    first, second, third = entries(2, "a"), entries(3, "b"), entries(1, "c")
    for batch in (first, second):
        await recorder.record(batch)
        await recorder.flush()
    assert journal.written == []
    await recorder.record(third)
    await recorder.flush()
    assert journal.written == [*first, *second, *third]
    said = [r.getMessage() for r in caplog.records]
    assert sum("sync journal not written (journal down)" in m for m in said) == 1  # not per batch
    assert any("sync journal written again" in m for m in said)


async def test_a_write_cut_by_a_stop_is_finished_never_repeated() -> None:
    """Shielded: cancelling the pipeline during a write lets it finish, once."""
    journal = FlakyJournal()
    journal.gate = anyio.Event()  # the write waits
    recorder = Recorder(journal, "w", 30, 100)
    await recorder.record(entries(2, "a"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(recorder.flush)
        await wait_for(lambda: journal.writes == 1, "the write under way")
        tg.cancel_scope.cancel()
        journal.gate.set()
    await recorder.close()
    assert [e.event for e in journal.written] == ["a", "a"]
    assert journal.writes == 1


async def test_a_write_without_an_answer_is_given_up_and_its_entries_wait(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A journal that hangs holds the work up for ``WRITE_SECONDS`` at most; its entries
    go with the next write."""
    monkeypatch.setattr(journaling, "WRITE_SECONDS", 0.05)
    journal = FlakyJournal()
    journal.gate = anyio.Event()  # never answers
    recorder = Recorder(journal, "w", 30, 100)
    await recorder.record(entries(1, "first"))
    with anyio.fail_after(DEADLINE):
        await recorder.flush()
    assert journal.written == []
    assert any("no answer within" in r.getMessage() for r in caplog.records)
    journal.gate.set()
    await recorder.record(entries(1, "second"))
    await recorder.flush()
    assert [e.event for e in journal.written] == ["first", "second"]


async def test_beyond_the_bound_the_oldest_are_dropped_and_said(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(journaling, "MAX_WAITING", 4)
    journal = FlakyJournal(failures=2)
    recorder = Recorder(journal, "w", 30, 100)
    for batch in (entries(3, "old"), entries(3, "new")):
        await recorder.record(batch)
        await recorder.flush()
    await recorder.close()  # what waits is written at the end, without new entries
    assert [e.event for e in journal.written] == ["old", "new", "new", "new"]
    assert any("2 entries dropped" in r.getMessage() for r in caplog.records)


async def test_a_bug_costs_the_batch_of_entries_never_the_next(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An entry the journal cannot take (not an outage) is not tried again and again."""
    journal = FlakyJournal(failures=1, error=OverflowError("too big"))
    recorder = Recorder(journal, "w", 30, 100)
    for batch in (entries(2, "poisoned"), entries(1, "next")):
        await recorder.record(batch)
        await recorder.flush()
    assert [e.event for e in journal.written] == ["next"]
    assert caplog.records[0].levelno == logging.ERROR


async def test_entries_wait_for_the_stores_next_write_and_are_written_once() -> None:
    """Recorded entries are not written at once: the store's next write may take them
    along (``PendingEntries.take``); what it took is never written again on its own."""
    journal = FlakyJournal()
    recorder = Recorder(journal, "w", 30, 100)
    await recorder.record(entries(2, "a"))
    assert journal.writes == 0 and len(recorder.pending) == 2
    assert [e.event for e in recorder.pending.take()] == ["a", "a"]  # the store's write
    await recorder.record(entries(1, "b"))
    await recorder.close()  # a stop writes what still waits
    assert [e.event for e in journal.written] == ["b"]


async def test_entries_no_write_takes_are_written_alone_after_the_window() -> None:
    """The worker's idle writer: entries no store write took within the window are
    written on their own, in one write; nothing is written while none wait."""
    journal = FlakyJournal()
    recorder = Recorder(journal, "w", 30, 100)
    async with anyio.create_task_group() as tg:
        tg.start_soon(recorder.write_idle)
        await recorder.record(entries(2, "a"))
        await recorder.record(entries(1, "b"))
        await wait_for(lambda: len(journal.written) == 3, "the entries written alone")
        assert journal.writes == 1 and len(recorder.pending) == 0
        await recorder.record(entries(1, "c"))
        await wait_for(lambda: len(journal.written) == 4, "later entries written too")
        tg.cancel_scope.cancel()
    assert journal.writes == 2


def shown_store() -> tuple[Stats, StoreRetry]:
    stats = Stats(NOW)
    return stats, StoreRetry(stats, max_wait=1.0)


async def test_a_journal_write_meeting_an_outage_shows_the_store_down_until_a_write_answers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A step-down's first failing write may be the journal's own (the driver then waits
    for the new primary in the next upsert, which never fails): the store shows
    unavailable, with the reason and the next try, until a write goes through."""
    stats, retry = shown_store()
    journal = FlakyJournal(failures=1, error=StoreUnavailable("MongoDB: not primary"))
    recorder = Recorder(journal, "w", 30, 100, outages=retry)
    await recorder.record(entries(1))
    await recorder.flush()
    assert not stats.store.connected and "not primary" in stats.store.error
    assert stats.store.next_attempt is not None  # a read that answers does not clear it
    assert stats.counters[Count.RETRIES] == 0  # the store's own calls were never retried
    await recorder.flush()
    assert stats.store.connected and len(journal.written) == 1
    assert any("store is reachable again" in r.getMessage() for r in caplog.records)


async def test_entries_a_store_write_could_not_take_along_show_the_outage_too() -> None:
    """Put back by a store write whose own part answered (``PendingEntries.put_back``):
    the outage it met shows, as the journal's own write would have shown it."""
    stats, retry = shown_store()
    recorder = Recorder(FlakyJournal(), "w", 30, 100, outages=retry)
    await recorder.record(entries(2))
    recorder.pending.put_back(recorder.pending.take(), StoreUnavailable("MongoDB: not primary"))
    assert not stats.store.connected and "not primary" in stats.store.error
    assert len(recorder.pending) == 2
    await recorder.flush()
    assert stats.store.connected


async def test_the_journals_own_trouble_is_not_the_stores_state() -> None:
    """Its table gone, an entry refused: the entries wait, the store still shows connected."""
    stats, retry = shown_store()
    journal = FlakyJournal(failures=2, error=JournalTrouble("no such table: journal"))
    recorder = Recorder(journal, "w", 30, 100, outages=retry)
    await recorder.record(entries(1))
    await recorder.flush()
    recorder.pending.put_back(recorder.pending.take(), JournalTrouble("refused"))
    assert stats.store.connected and len(recorder.pending) == 1


async def test_forget_asks_for_the_retention() -> None:
    journal = FlakyJournal()
    before = datetime.now(NOW.tzinfo)
    await Recorder(journal, "w", 2.5, 77).forget()
    [(cut, keep)] = journal.forgotten
    assert keep == 77
    assert abs(before - timedelta(days=2.5) - cut) < timedelta(seconds=5)


async def test_a_worker_whose_journal_breaks_keeps_working(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """The journal table dropped under a running worker: files are stored and archived all
    the same, and the trouble is said once."""
    async with running(settings) as worker:
        drop(settings.inbound_dir, "1.json", json.dumps(erp(orderNo=1)).encode())
        await wait_for(lambda: names(settings.archive_dir) == ["1.json"], "first archived")
        with sqlite3.connect(settings.sqlite_path) as db:
            db.execute("DROP TABLE journal")
        for number in range(2, 5):
            drop(settings.inbound_dir, f"{number}.json", json.dumps(erp(orderNo=number)).encode())
        await wait_for(lambda: len(names(settings.archive_dir)) == 4, "all archived")
        assert {d["number"] for d in await worker.store.find()} == {1, 2, 3, 4}
    said = [r.getMessage() for r in caplog.records if "sync journal not written" in r.getMessage()]
    assert len(said) == 1 and "no such table: journal" in said[0]


async def test_a_starting_worker_forgets_what_retention_lets_go(any_settings: Settings) -> None:
    """Entries older than HISTORY_DAYS are deleted by the worker itself, on both stores."""
    old = datetime.now(UTC) - timedelta(days=31)
    async with opened_store(any_settings) as store:
        journal = build_journal(any_settings, store)
        assert journal is not None
        await journal.open()
        await journal.record([Entry(at=old, direction="in", event="inserted", number=9)])
        assert await journal.history(HistoryQuery(number=9))
        async with running(any_settings):
            with anyio.fail_after(DEADLINE):  # the worker forgets at start: wait for it
                while await journal.history(HistoryQuery(number=9)):
                    await anyio.sleep(0.05)
        await journal.close()
