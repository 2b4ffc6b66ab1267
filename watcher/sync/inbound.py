"""ERP → TracOS: take documents from the source, judge them with the format, upsert their
orders into the store, then have the source archive or quarantine them.

One batch at a time: take (read, judge, claim) up to ``batch_size`` documents, one bulk
upsert (retried through outages while the documents stay claimed), then file them away;
a document that could not be filed away (a full disk) stays claimed and is tried again
every ``rescan_seconds``. Wake-ups from the source are only hints; its listing is the truth.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

import anyio
import msgspec

from watcher.core.errors import RejectedInput
from watcher.core.tracos import OrderUpsert, Outcome
from watcher.erp.port import ErpFormat, FileVerdict, InboundSource, NotFiled, Taken
from watcher.store import WorkOrderStore
from watcher.store.journal import Entry
from watcher.sync.journaling import Recorder
from watcher.sync.refusals import upsert_refusing
from watcher.sync.retrying import StoreRetry
from watcher.sync.stats import ORDERS, RECENT, Count, Stats

log = logging.getLogger(__name__)


@dataclass
class Inbound:
    source: InboundSource
    format: ErpFormat
    store: WorkOrderStore
    stats: Stats
    retry: StoreRetry
    batch_size: int
    rescan_seconds: float
    journal: Recorder
    _wake: anyio.Event = field(init=False)
    _unfiled: list[tuple[Taken, list[Outcome]]] = field(init=False, default_factory=list)
    _refile_at: float = field(init=False, default=0.0)

    async def run(self, stop: anyio.Event) -> None:
        """Take whatever is waiting, then whatever arrives until ``stop``; finish the batch."""
        self._wake = anyio.Event()
        watching = anyio.Event()  # the source's own stop: cancelling it could block
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.source.watch, self._wake_up, watching)
            tg.start_soon(self._wake_on, stop)
            try:
                while not stop.is_set():
                    await self.drain(stop)
                    with anyio.move_on_after(self._next_look()):
                        await self._wake.wait()
                    self._wake = anyio.Event()
            finally:
                watching.set()

    def _wake_up(self) -> None:
        self._wake.set()

    async def _wake_on(self, stop: anyio.Event) -> None:
        await stop.wait()
        self._wake.set()

    def _next_look(self) -> float:
        due = [self.source.next_look(), self._refile_at if self._unfiled else None]
        soonest = min((when for when in due if when is not None), default=None)
        if soonest is None:
            return self.rescan_seconds
        return max(0.0, min(soonest - time.time(), self.rescan_seconds))

    async def drain(self, stop: anyio.Event | None = None) -> None:
        """Process every document waiting, a batch at a time: take, store, file away.

        The stages run in turn, never overlapped: under CPython's GIL two Python-heavy
        stages in threads cost more in hand-offs than they gain (10,000 files through
        ``watcher once``: 1.25 s overlapped, 0.83 s in turn). The source is listed again
        whenever its names run out, so a burst flows through without a pause; draining
        ends when a listing shows nothing new. One batch is claimed at a time.
        """
        await self._file_unfiled()
        stopping = stop.is_set if stop is not None else _never
        tried: set[str] = set()  # each name once per drain: nothing can spin here
        while names := [n for n in await self._waiting() if n not in tried]:
            tried.update(names)
            for start in range(0, len(names), self.batch_size):
                if stopping():
                    return
                batch = names[start : start + self.batch_size]
                taken = await self.source.take(batch, self._judge, stopping)
                self.stats.waiting_files = max(0, len(names) - start - len(batch))
                await self._store_and_file(taken)

    async def _waiting(self) -> list[str]:
        names = await self.source.waiting()
        self.stats.waiting_files = len(names)
        return names

    def _judge(self, data: bytes) -> FileVerdict:
        """The format's verdict, where even a bug costs one file (quarantined), never the worker."""
        try:
            return self.format.judge(data)
        except RejectedInput:
            raise
        except Exception as exc:
            log.exception("unexpected error judging a file")
            raise RejectedInput(f"unexpected error while judging the file: {exc!r}") from exc

    async def _store_and_file(self, taken: list[Taken]) -> None:
        """Second stage: one bulk upsert (waiting out outages), then archive/quarantine."""
        orders = [o for t in taken if t.verdict for o in t.verdict.orders]
        outcomes: list[Outcome] = []
        stored_at = datetime.now(UTC)
        if orders:  # an order the store refuses for good is rejected, never retried
            upsert = partial(upsert_refusing, self.store, taken, orders, stored_at)
            taken, outcomes = await self.retry(upsert)
        with anyio.CancelScope(shield=True):  # stored: filing away is quick, and never cut
            now = datetime.now(UTC)
            filed = await self.source.file_away(taken, now)
        await self.journal.record(self._record(taken, filed, outcomes, stored_at, now))

    async def _file_unfiled(self) -> None:
        """Try again to file away what could not be (a full disk, a read-only folder)."""
        if not self._unfiled or time.time() < self._refile_at:
            return
        waiting, self._unfiled = self._unfiled, []
        now = datetime.now(UTC)
        filed = await self.source.file_away([item for item, _ in waiting], now)
        entries: list[Entry] = []  # where each went: its orders' entries were written before
        for (item, outcomes), where in zip(waiting, filed, strict=True):
            self._account(item, where, outcomes, now)
            entries += [self._file_entry(item, where, outcomes, now)] if self.journal.on else []
        await self.journal.record(entries)

    def _account(
        self, item: Taken, where: str | NotFiled, outcomes: list[Outcome], now: datetime
    ) -> None:
        """Count and say where ``item`` went; keep it to be filed away later if it must be."""
        if where is NotFiled.LATER:  # kept without its orders: they are stored
            verdict = item.verdict and item.verdict.stored()
            self._unfiled.append((msgspec.structs.replace(item, verdict=verdict), outcomes))
            self._refile_at = time.time() + self.rescan_seconds
        if not isinstance(where, NotFiled):
            self._filed(item, where, outcomes, now)

    def _record(
        self,
        taken: Sequence[Taken],
        filed: Sequence[str | NotFiled],
        outcomes: list[Outcome],
        stored_at: datetime,
        now: datetime,
    ) -> list[Entry]:
        """Counters, failures and the console's recent events once per batch; one log line;
        the batch's journal entries."""
        position = 0
        recent: deque[tuple[OrderUpsert, Outcome]] = deque(maxlen=RECENT)
        entries: list[Entry] = []
        for item, where in zip(taken, filed, strict=True):
            mine = outcomes[position : position + len(item.verdict.orders)] if item.verdict else []
            position += len(mine)
            self._account(item, where, mine, now)
            entries += self._entries(item, where, mine, stored_at, now)
            if not isinstance(where, NotFiled) and item.verdict:
                recent.extend(zip(item.verdict.orders[-RECENT:], mine[-RECENT:], strict=True))
        for order, outcome in recent:
            self.stats.event(now, "in", str(order.number), str(outcome))
        self.stats.count(Count.FILES_SEEN, len(taken))
        tally = Counter(outcomes)
        for outcome, count in tally.items():
            self.stats.count(ORDERS[outcome], count)
        if tally:
            shown = ", ".join(f"{n} {o}" for o, n in tally.items())
            counts = {str(o): n for o, n in tally.items()}
            log.info("%d files: orders %s", len(taken), shown, extra={"counts": counts})
        return entries

    def _entries(
        self,
        item: Taken,
        where: str | NotFiled,
        outcomes: list[Outcome],
        stored_at: datetime,
        now: datetime,
    ) -> list[Entry]:
        """The journal's entries for ``item``: one per order, and where the file went. A
        file of one order, archived, is one entry (the order's, with ``to``): one row, not
        two, for the commonest file."""
        if not self.journal.on:
            return []
        event, to, _ = _filing(item, where)
        if event == "archived" and item.verdict and len(item.verdict.orders) == 1:
            return self._order_entries(item, outcomes, stored_at, to)
        filing = self._file_entry(item, where, outcomes, now)
        return [*self._order_entries(item, outcomes, stored_at), filing]

    def _order_entries(
        self, item: Taken, outcomes: list[Outcome], at: datetime, to: str | None = None
    ) -> list[Entry]:
        """What became of each order of ``item``, and which version it was."""
        if item.verdict is None:
            return []
        worker, file = self.journal.worker, item.shown
        return [
            Entry(
                at=at,
                direction="in",
                event=str(outcome),
                number=order.number,
                file=file,
                to=to,
                version=order.updatedAt,
                worker=worker,
            )
            for order, outcome in zip(item.verdict.orders, outcomes, strict=True)
        ]

    def _file_entry(
        self, item: Taken, where: str | NotFiled, outcomes: list[Outcome], now: datetime
    ) -> Entry:
        """Where ``item`` went (or why it did not), with its orders counted by outcome."""
        counts = {str(o): n for o, n in Counter(outcomes).items()} or None
        event, to, reason = _filing(item, where)
        return Entry(
            at=now,
            direction="in",
            event=event,
            file=item.shown,
            to=to,
            reason=reason,
            counts=counts,
            worker=self.journal.worker,
        )

    def _filed(self, item: Taken, where: str, outcomes: list[Outcome], now: datetime) -> None:
        if item.verdict is None:
            assert item.error is not None
            self._failed(item, where, now, item.error.reason, item.error.path)
            return
        self.stats.count(Count.FILES_ARCHIVED)
        if item.verdict.rejected:
            first = item.verdict.rejected[0]
            reason = f"{item.verdict.rejected_reason()}; first: {first.reason}"
            self._failed(item, where, now, reason, first.path)
        self.stats.latency_in.append(max(0.0, time.time() - item.landed))
        if log.isEnabledFor(logging.DEBUG):
            tally = Counter(outcomes)
            shown = ", ".join(f"{n} {o}" for o, n in tally.items()) or "no orders"
            counts = {str(o): n for o, n in tally.items()}
            log.debug("%s: %s", item.shown, shown, extra={"file": item.shown, "counts": counts})

    def _failed(self, item: Taken, where: str, now: datetime, reason: str, path: str) -> None:
        """``reason`` at JSON ``path``: counted, shown, and logged with both as fields."""
        said = f"{reason} at {path}"
        self.stats.count(Count.FILES_FAILED)
        self.stats.failure(now, "in", item.shown, said)
        self.stats.event(now, "in", item.shown, "failed")
        fields = {"file": item.shown, "outcome": "quarantined", "reason": reason, "path": path}
        log.warning(
            "%s quarantined as %s: %s", item.shown, where, said, extra=fields | {"to": where}
        )


def _filing(item: Taken, where: str | NotFiled) -> tuple[str, str | None, str | None]:
    """The journal's event, destination and reason for ``item`` filed to ``where``."""
    if isinstance(where, NotFiled):
        return ("claimed" if where is NotFiled.LATER else "retaken"), None, where.value
    if item.verdict is None:
        assert item.error is not None
        return "quarantined", where, f"{item.error.reason} at {item.error.path}"
    if item.verdict.rejected:
        first = item.verdict.rejected[0]
        reason = f"{item.verdict.rejected_reason()}; first: {first.reason} at {first.path}"
        return "partly_rejected", where, reason
    return "archived", where, None


def _never() -> bool:
    return False
