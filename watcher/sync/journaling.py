"""Writing the sync journal after each batch of work: one write, never stopping the work.

The pipelines hand each batch's entries over (``record``) once the batch is done, and the
entries are written then, in turn with the work rather than beside it: under CPython's GIL
a writer overlapping the next batch cost more than the write (10,000 files through
``watcher once``: 0.85 s overlapped, 0.73 s in turn). A failed write is tried again with
the next batch; while the journal fails the entries wait here (at most ``MAX_WAITING``,
the oldest dropped beyond that, and said so), and a write gets ``WRITE_SECONDS`` at most.
The work they describe is already done: the journal never retries in its place.
Old entries are forgotten in the background, at start and every hour.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

import anyio

from watcher.core.errors import StoreUnavailable
from watcher.store import Entry, Journal
from watcher.sync.tracing import traced_entries

log = logging.getLogger(__name__)
MAX_WAITING: Final = 200_000  # entries kept while the journal cannot be written
FORGET_EVERY_SECONDS: Final = 3600.0
WRITE_SECONDS: Final = 10.0  # a write waits this long at most: then its entries wait


@dataclass
class Recorder:
    """The pipelines' side of the journal; ``journal=None`` records nothing (``HISTORY_DAYS=0``)."""

    journal: Journal | None
    worker: str
    days: float
    keep: int
    _waiting: list[Entry] = field(default_factory=list)
    _failing: bool = False

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
        await self._write_waiting()
        if self.journal is not None:
            await self.journal.close()

    async def record(self, entries: Sequence[Entry]) -> None:
        """Write a batch's entries, with any still waiting from a failed write."""
        if self.journal is None or not entries:
            return
        self._waiting += traced_entries(entries)
        await self._write_waiting()

    async def _write_waiting(self) -> None:
        """One write of everything waiting: shielded (never cut halfway, never written
        twice) and bounded in time."""
        if self.journal is None or not self._waiting:
            return
        batch, self._waiting = self._waiting, []
        with anyio.move_on_after(WRITE_SECONDS, shield=True) as scope:
            try:
                await self.journal.record(batch)
            except StoreUnavailable as exc:
                self._not_written(batch, str(exc))
            except Exception as exc:  # a bug: these entries are lost, never the next ones
                log.exception("sync journal: %d entries dropped: %r", len(batch), exc)
            else:
                self._written()
            return
        if scope.cancelled_caught:
            self._not_written(batch, f"no answer within {WRITE_SECONDS:.0f} s")

    def _written(self) -> None:
        if self._failing:
            self._failing = False
            log.warning("sync journal written again; the entries that waited are in it")

    def _not_written(self, batch: list[Entry], reason: str) -> None:
        dropped = max(0, len(batch) - MAX_WAITING)
        self._waiting = batch[dropped:] + self._waiting
        if not self._failing:
            self._failing = True
            log.warning(
                "sync journal not written (%s): the work goes on; its entries wait, tried with"
                " the next batch",
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
