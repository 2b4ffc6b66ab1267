"""ERP → TracOS: take documents from the source, judge them with the format, upsert their
orders into the store, then have the source archive or quarantine them.

One batch at a time: take (read, judge, claim) up to ``batch_size`` documents, one bulk
upsert (retried through outages while the documents stay claimed), then file them away;
a document that could not be filed away (a full disk) stays claimed and is tried again
every ``rescan_seconds``, and so does one holding an order the store holds (a number
stored twice, while that stops the unique index): the other documents go on. Wake-ups
from the source are only hints; its listing is the truth.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Final

import anyio
import anyio.lowlevel
import msgspec

from watcher.core.errors import OrdersHeld, RejectedInput
from watcher.core.tracos import Clash, OrderUpsert, Outcome
from watcher.erp import ErpFormat, FileVerdict, InboundSource, NotFiled, Taken
from watcher.store import WorkOrderStore
from watcher.sync.batches import FiledFile, InboundDone
from watcher.sync.bookkeeping import Bookkeeping
from watcher.sync.refusals import upsert_refusing
from watcher.sync.repair import Repair
from watcher.sync.retrying import StoreRetry
from watcher.sync.stats import Stats
from watcher.sync.tracing import listed, traced

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

log = logging.getLogger("watcher.inbound")
HELD: Final = "held orders"  # the problem's key while files wait on orders the store holds


@dataclass
class Inbound:
    source: InboundSource
    format: ErpFormat
    store: WorkOrderStore
    stats: Stats
    retry: StoreRetry
    batch_size: int
    rescan_seconds: float
    books: Bookkeeping
    repair: Repair | None = None  # outbound files of the orders written: to the new version
    taken_hook: Callable[[Sequence[Taken]], None] | None = None  # drift's example files
    _wake: anyio.Event = field(init=False)
    _unfiled: list[FiledFile] = field(init=False, default_factory=list)
    _refile_at: float = field(init=False, default=0.0)
    _held: list[Taken] = field(init=False, default_factory=list)  # claimed, tried again later
    _held_at: float = field(init=False, default=0.0)
    _watch: _Watch | None = field(init=False, default=None)  # a running worker's (not once's)

    async def run(self, stop: anyio.Event) -> None:
        """Take whatever is waiting, then whatever arrives until ``stop``; finish the batch."""
        self._wake = anyio.Event()
        async with anyio.create_task_group() as tg:
            self._watch = _Watch(tg, self.source, self._wake_up)
            await self._watch.resume()
            tg.start_soon(self._wake_on, stop)
            try:
                while not stop.is_set():
                    await self.drain(stop)
                    await self._watch.resume()  # a drain cut short (a pause) leaves it resting
                    with anyio.move_on_after(self._next_look()):
                        await self._wake.wait()
                    self._wake = anyio.Event()
            finally:
                self._watch.pause()

    def _wake_up(self) -> None:
        self._wake.set()

    async def _wake_on(self, stop: anyio.Event) -> None:
        await stop.wait()
        self._wake.set()

    def _next_look(self) -> float:
        due = [
            self.source.next_look(),
            self._refile_at if self._unfiled else None,
            self._held_at if self._held else None,
        ]
        soonest = min((when for when in due if when is not None), default=None)
        if soonest is None:
            return self.rescan_seconds
        return max(0.0, min(soonest - time.monotonic(), self.rescan_seconds))

    async def drain(self, stop: anyio.Event | None = None) -> None:
        """Process every document waiting, a batch at a time: take, store, file away.

        The stages run in turn, never overlapped: under CPython's GIL two Python-heavy
        stages in threads cost more in hand-offs than they gain (10,000 files through
        ``watcher once``: 1.25 s overlapped, 0.83 s in turn). The source is listed again
        whenever its names run out, so a burst flows through without a pause; draining
        ends when a listing shows nothing new. One batch is claimed at a time.
        """
        await self._file_unfiled()
        await self._store_held()
        stopping = stop.is_set if stop is not None else _never
        held = partial(self.stats.pauses.holds, "inbound")  # an operator's pause
        tried: set[str] = set()  # each name once per drain: nothing can spin here
        while names := await self._untried(tried):
            tried.update(names)
            if self._watch is not None and len(names) > self.batch_size and not held():
                self._watch.pause()  # a burst: the listing is the truth until it is drained
            for start in range(0, len(names), self.batch_size):
                if stopping() or held():
                    return
                batch = names[start : start + self.batch_size]
                taken = await self.source.take(batch, self._judge, stopping)
                if self.taken_hook is not None:
                    self.taken_hook(taken)
                self.stats.waiting_files = max(0, len(names) - start - len(batch))
                await self._store_and_file(taken)

    async def _untried(self, tried: set[str]) -> list[str]:
        """The names waiting that this drain has not tried. When none is left and the
        watch rested through the burst, it watches again and the folder is listed once
        more: what landed in between is taken now, not at the next rescan (what was tried
        is not tried again: a file that cannot be claimed waits for the next drain)."""
        while True:
            names = [n for n in await self._waiting() if n not in tried]
            if names or self._watch is None or not await self._watch.resume():
                return names

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

    @traced("inbound batch", lambda _, taken: listed("watcher.files", [t.shown for t in taken]))
    async def _store_and_file(self, taken: list[Taken]) -> None:
        """Second stage: one bulk upsert (waiting out outages), then archive/quarantine."""
        outcomes: list[Outcome] = []
        stored_at = datetime.now(UTC)
        clashes: list[Clash] = []
        if _orders(taken):  # an order the store refuses for good is rejected, never retried
            taken, outcomes = await self.retry(partial(self._store, taken, stored_at, clashes))
            if self.repair is not None:  # before filing away: a crash takes the file again
                await self.repair.settle([order.number for order in _orders(taken)])
        with anyio.CancelScope(shield=True):  # stored: filing away is quick, and never cut
            now = datetime.now(UTC)
            filed = await self.source.file_away(taken, now)
        done = [*self._filed(taken, filed, [*_split(taken, outcomes)])]
        await self.books.inbound(InboundDone(done, stored_at, now, clashes=clashes))

    async def _store(
        self, taken: Sequence[Taken], now: datetime, clashes: list[Clash]
    ) -> tuple[list[Taken], list[Outcome]]:
        """Upsert the orders of ``taken``; the documents holding an order the store holds
        are kept claimed for later, and the others are stored without them."""
        while orders := _orders(taken):
            try:
                return await upsert_refusing(self.store, taken, orders, now, clashes)
            except OrdersHeld as exc:
                self._hold([t for t in taken if _holds(t, exc.numbers)], exc)
                taken = [t for t in taken if not _holds(t, exc.numbers)]
        return list(taken), []

    def _hold(self, waiting: list[Taken], held: OrdersHeld) -> None:
        self._held += waiting
        self._held_at = time.monotonic() + self.rescan_seconds
        files = ", ".join(t.shown for t in self._held[:3]) + (", …" if len(self._held) > 3 else "")
        problem = f"inbound holds {len(self._held)} files ({files}): {held}"
        if self.stats.problem(HELD, problem):
            log.warning("%s; the other files go on", problem)

    async def _store_held(self) -> None:
        """Try again the documents that wait on orders the store held."""
        if not self._held or time.monotonic() < self._held_at:
            return
        waiting, self._held = self._held, []
        await self._store_and_file(waiting)
        if not self._held and self.stats.solved(HELD):
            log.warning("inbound no longer holds any file: the held orders are stored")

    async def _file_unfiled(self) -> None:
        """Try again to file away what could not be (a full disk, a read-only folder)."""
        if not self._unfiled or time.monotonic() < self._refile_at:
            return
        waiting, self._unfiled = self._unfiled, []
        now = datetime.now(UTC)
        filed = await self.source.file_away([item.taken for item in waiting], now)
        outcomes = [item.outcomes for item in waiting]
        done = [*self._filed([item.taken for item in waiting], filed, outcomes)]
        await self.books.inbound(InboundDone(done, now, now, refiled=True))

    def _filed(
        self,
        taken: Sequence[Taken],
        filed: Sequence[str | NotFiled],
        outcomes: Sequence[list[Outcome]],
    ) -> Iterator[FiledFile]:
        """Each file with where it went; one that must be filed away later is kept for it,
        without its orders (they are stored)."""
        for item, where, mine in zip(taken, filed, outcomes, strict=True):
            done = FiledFile(item, where, mine)
            if where is NotFiled.LATER:
                verdict = item.verdict and item.verdict.stored()
                kept = msgspec.structs.replace(item, verdict=verdict)
                self._unfiled.append(FiledFile(kept, where, mine))
                self._refile_at = (
                    time.monotonic() + self.rescan_seconds
                )  # a wait: never the wall clock
            yield done


class _Watch:
    """The source's watch, paused through a burst. Its wake-ups are hints, and during a
    burst they are all hints of what the drain's next listing shows anyway; but each file
    is two events (renamed in, then claimed away) that the watch reads, collects and
    hands over: 10,000 files cost a running worker 0.2 s of CPU (a fifth of its work)
    beside a drain that needs none of them. Paused by the drain of a listing longer than
    a batch; resumed when the drain is done, and then the folder is listed once more."""

    def __init__(self, tg: TaskGroup, source: InboundSource, wake: Callable[[], None]) -> None:
        self._tg, self._source, self._wake = tg, source, wake
        self._stop: anyio.Event | None = None

    def pause(self) -> None:
        """Let the watch end (it is told, never cancelled: cancelling it could block)."""
        if self._stop is not None:
            self._stop.set()
            self._stop = None

    async def resume(self) -> bool:
        """Watch again, if paused; whether it was. The watch task takes its first step
        (where it begins to watch) before this returns, so that a listing made next misses
        nothing that lands after it."""
        if self._stop is not None:
            return False
        self._stop = anyio.Event()
        self._tg.start_soon(self._source.watch, self._wake, self._stop)
        await anyio.lowlevel.checkpoint()  # queued behind the new task's first step
        return True


def _orders(taken: Sequence[Taken]) -> list[OrderUpsert]:
    return [o for t in taken if t.verdict for o in t.verdict.orders]


def _holds(item: Taken, numbers: frozenset[int]) -> bool:
    return item.verdict is not None and any(o.number in numbers for o in item.verdict.orders)


def _split(taken: Sequence[Taken], outcomes: list[Outcome]) -> Iterator[list[Outcome]]:
    """The batch's outcomes, file by file (in the order of their orders)."""
    position = 0
    for item in taken:
        count = len(item.verdict.orders) if item.verdict else 0
        yield outcomes[position : position + count]
        position += count


def _never() -> bool:
    return False
