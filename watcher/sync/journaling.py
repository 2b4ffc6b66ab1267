"""Writing the sync journal after each batch of work: never a write of its own while work goes on.

The pipelines hand each batch's entries over (``record``) once the batch is done. They
wait in ``PendingEntries``, shared with the store: the store's next write (the next
batch's upserts, an outbound mark) takes them along in its own transaction or command,
so a busy worker writes its journal without a write of its own. Entries no write took
within ``WINDOW_SECONDS`` are written on their own (``write_idle``), and so is whatever
waits at a stop (``close``). A crash loses at most the entries of the last window, as
when the journal was written after each batch. A write of their own that fails is tried
again after another window (or taken along by the store meanwhile); while the journal
fails the entries wait (at most ``MAX_WAITING``, the oldest dropped beyond that, and said
so), and a write gets ``WRITE_SECONDS`` at most. The work they describe is already done:
the journal never retries in its place. Its writes are the store's writes all the same: one
that meets an outage (often the first to meet a step-down, the driver then waiting for the
new primary in the next upsert) shows the store unavailable, and one that goes through
shows it connected again (``Outages``, the store retry's). Old entries are forgotten in the
background, at start and every hour.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Final, Protocol

import anyio

from watcher.core.errors import StoreUnavailable
from watcher.store import Entry, Journal, JournalTrouble, PendingEntries
from watcher.sync.tracing import traced_entries

log = logging.getLogger(__name__)
MAX_WAITING: Final = 200_000  # entries kept while the journal cannot be written
FORGET_EVERY_SECONDS: Final = 3600.0
WRITE_SECONDS: Final = 10.0  # a write waits this long at most: then its entries wait
WINDOW_SECONDS: Final = 0.2  # entries no store write took by then are written on their own
IDLE_LOOK_SECONDS: Final = 1.0  # entries put back by a store write that failed: looked at


class Outages(Protocol):
    """Where the store's state is shown (``StoreRetry``): an outage met, a write through."""

    def noticed(self, reason: str, wait: float) -> None: ...

    def answered(self) -> None: ...


class Recorder:
    """The pipelines' side of the journal; ``journal=None`` records nothing (``HISTORY_DAYS=0``).

    A plain class, not a dataclass: ``once`` with nothing to do makes one, and creating a
    dataclass costs its start-up a few tenths of a millisecond."""

    def __init__(
        self,
        journal: Journal | None,
        worker: str,
        days: float,
        keep: int,
        *,
        pending: PendingEntries | None = None,  # shared with the store
        outages: Outages | None = None,  # the store's state, for the journal's writes
    ) -> None:
        self.journal = journal
        self.worker = worker
        self.days = days
        self.keep = keep
        self.pending = PendingEntries() if pending is None else pending
        self.outages = outages
        self._failing = False
        self._added: anyio.Event | None = None  # set when entries come to wait (``write_idle``)
        self.pending.unwritten = self._carried_unwritten

    @property
    def on(self) -> bool:
        return self.journal is not None

    async def open(self) -> None:
        """Open the journal (after the store); one that cannot be is said, and left off."""
        if self.journal is None:
            return
        try:
            await self.journal.open()
        except Exception as exc:
            log.warning("sync journal off: it could not be opened (%s)", exc)
            self.journal = None

    async def close(self) -> None:
        """Write what still waits (one last try), then close."""
        await self.flush()
        if self.journal is not None:
            await self.journal.close()

    async def record(self, entries: Sequence[Entry]) -> None:
        """Hand a batch's entries over: the store's next write, or ``write_idle``, writes them."""
        if self.journal is None or not entries:
            return
        self.pending.add(traced_entries(entries))
        if self._added is not None:
            self._added.set()

    async def write_idle(self) -> None:
        """For as long as the worker runs: write the entries no store write took within
        ``WINDOW_SECONDS`` of their coming, on their own."""
        while self.journal is not None:
            since = self.pending.since
            if since is None:
                self._added = anyio.Event()
                with anyio.move_on_after(IDLE_LOOK_SECONDS):
                    await self._added.wait()
            elif (due := since + WINDOW_SECONDS - time.monotonic()) > 0:
                await anyio.sleep(due)
            else:
                await self.flush()

    async def flush(self) -> None:
        """One write of everything waiting, on its own: shielded (never cut halfway, never
        written twice) and bounded in time."""
        if self.journal is None:
            return
        batch = self.pending.take()
        if not batch:
            return
        with anyio.move_on_after(WRITE_SECONDS, shield=True) as scope:
            try:
                await self.journal.record(batch)
            except StoreUnavailable as exc:
                self._not_written(batch, str(exc), not isinstance(exc, JournalTrouble))
            except Exception as exc:  # a bug: these entries are lost, never the next ones
                log.exception("sync journal: %d entries dropped: %r", len(batch), exc)
            else:
                self._written()
            return
        if scope.cancelled_caught:
            self._not_written(batch, f"no answer within {WRITE_SECONDS:.0f} s", True)

    def _written(self) -> None:
        if self.outages is not None:
            self.outages.answered()
        if self._failing:
            self._failing = False
            log.warning("sync journal written again; the entries that waited are in it")

    def _carried_unwritten(self, exc: Exception) -> None:
        """Entries a store write took along met an outage (they wait again already)."""
        self._not_written([], str(exc), not isinstance(exc, JournalTrouble))

    def _not_written(self, batch: Sequence[Entry], reason: str, store_down: bool) -> None:
        """A write of the entries failed: they wait; one that met the store's outage (not
        the journal's own trouble) shows the store unavailable."""
        if store_down and self.outages is not None:
            self.outages.noticed(reason, WINDOW_SECONDS)
        self.pending.restore(batch)
        dropped = self.pending.drop_oldest(MAX_WAITING)
        if not self._failing:
            self._failing = True
            log.warning(
                "sync journal not written (%s): the work goes on; its entries wait, tried"
                " again with the next write",
                reason,
                extra={"reason": reason},
            )
        if dropped:
            log.warning(
                "sync journal: %d entries dropped (more than %d waiting); the work they"
                " describe is done",
                dropped,
                MAX_WAITING,
                extra={"counts": {"journal_dropped": dropped}},
            )

    async def forget_old(self) -> None:
        """Forget what retention lets go, now and every ``FORGET_EVERY_SECONDS``."""
        while self.journal is not None:
            await self.forget()
            await anyio.sleep(FORGET_EVERY_SECONDS)

    async def forget(self) -> None:
        """Delete entries older than ``days`` and beyond the newest ``keep``; a failure is
        said and tried again at the next round."""
        if self.journal is None:
            return
        before = datetime.now(UTC) - timedelta(days=self.days)
        try:
            forgotten = await self.journal.forget(before, self.keep)
        except Exception as exc:
            log.warning("sync journal: old entries not forgotten (%s)", exc)
            return
        if forgotten:
            log.info(
                "sync journal: %d entries forgotten (older than %g days, or beyond the newest %d)",
                forgotten,
                self.days,
                self.keep,
            )
