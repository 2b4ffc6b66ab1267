"""Writing the sync journal beside the work: one write per batch, never in the work's way.

A failed write is tried once per batch, with the entries of the next one; while it fails
the entries wait here (at most ``MAX_WAITING``, the oldest dropped beyond that, and said
so). The work they describe is already done: the journal never holds it up, never retries
in its place. Old entries are forgotten in the background, at start and every hour.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

import anyio

from watcher.errors import StoreUnavailable
from watcher.store.journal import Entry, Journal

log = logging.getLogger(__name__)
MAX_WAITING: Final = 200_000  # entries kept while the journal cannot be written
FORGET_EVERY_SECONDS: Final = 3600.0
WRITE_SECONDS: Final = 10.0  # a stop waits this long at most for the last journal write


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
        """Write what still waits (once), then close."""
        await self.write()
        if self.journal is not None:
            await self.journal.close()

    async def write(self, entries: Sequence[Entry] = ()) -> None:
        """Write these entries and any still waiting; shielded, and bounded in time."""
        if self.journal is None or not (entries or self._waiting):
            return
        batch = [*self._waiting, *entries]
        with anyio.move_on_after(WRITE_SECONDS, shield=True) as scope:
            try:
                await self.journal.record(batch)
                self._written()
                return
            except StoreUnavailable as exc:
                self._not_written(batch, str(exc))
            except Exception as exc:
                log.exception("sync journal: %d entries dropped: %r", len(batch), exc)
                self._waiting = []
                return
        if scope.cancelled_caught:
            self._not_written(batch, f"no answer within {WRITE_SECONDS:.0f} s")

    def _written(self) -> None:
        self._waiting = []
        if self._failing:
            self._failing = False
            log.warning("sync journal written again; the entries that waited are in it")

    def _not_written(self, batch: list[Entry], reason: str) -> None:
        dropped = max(0, len(batch) - MAX_WAITING)
        self._waiting = batch[dropped:]
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
