"""The ERP port: what the pipelines need from a format, a source and a sink.

A format is pure (bytes in, a verdict out; a TracOS order in, a file out). A source owns
where documents come from and what becomes of them (claims, archive, quarantine); a sink
owns where exported files go and that they are durable before it returns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, runtime_checkable

import msgspec

from watcher.core.errors import RejectedInput
from watcher.core.printable import display_name
from watcher.core.tracos import OrderUpsert, TracosWorkOrder

if TYPE_CHECKING:  # a type only: the formats that import this module stay free of I/O
    import anyio


LISTED: Final = 100  # refused elements of a batch listed one by one; the rest are counted


class Rejection(msgspec.Struct, frozen=True, gc=False):
    """Why one order (``index`` in a batch file, ``None`` for a single-order file) was refused."""

    index: int | None
    path: str
    reason: str


class FileVerdict(msgspec.Struct, frozen=True, gc=False):
    """What a whole ERP file amounts to: the usable orders and the refused elements.

    Bounded whatever the file: ``rejected`` lists at most ``LISTED`` refusals (``unlisted``
    counts the others); ``rejected_data`` holds every refused element's original bytes, in
    order, as runs to be joined by commas into one JSON array. ``elements``: how many the
    batch had (kept when the orders are let go, once stored).

    Kept per file until the file is filed away (thousands in a burst), so nothing in it is
    for the garbage collector to walk: not tracked itself (it is in no cycle), and a
    one-order file's sequences are tuples of untracked values (``()`` when empty).
    """

    orders: Sequence[OrderUpsert]
    rejected: Sequence[Rejection]
    is_batch: bool
    unlisted: int = 0
    rejected_data: Sequence[bytes] = ()
    elements: int | None = None

    @property
    def rejected_count(self) -> int:
        return len(self.rejected) + self.unlisted

    def rejected_reason(self) -> str:
        return f"{self.rejected_count} of {self._total()} orders rejected"

    def stored(self) -> FileVerdict:
        """This verdict without its orders (they are in the store): what filing needs."""
        return msgspec.structs.replace(self, orders=(), elements=self._total())

    def _total(self) -> int:
        return self.rejected_count + len(self.orders) if self.elements is None else self.elements

    def rejected_chunks(self) -> list[bytes]:
        """The refused elements as one JSON array, in pieces to be written one after another."""
        chunks = [b"[\n"]
        for index, run in enumerate(self.rejected_data):
            chunks += (b",\n", run) if index else (run,)
        chunks.append(b"\n]\n")
        return chunks


class OutboundFile(msgspec.Struct, frozen=True):
    """One exported order: the file's name (from the validated order number) and bytes."""

    name: str
    data: bytes


Direction = Literal["inbound", "outbound"]


@runtime_checkable
class ErpFormat(Protocol):
    """How one ERP spells work orders. Pure: no clock, no file, no store."""

    @property
    def name(self) -> str: ...

    def judge(self, data: bytes) -> FileVerdict:
        """The orders in one file and the refused batch elements.

        Raises ``MalformedFile`` when the bytes are not one document (maybe still being
        written) and ``InvalidOrder`` when a single-order file breaks the contract.
        """
        ...

    def render(self, order: TracosWorkOrder) -> OutboundFile:
        """The outbound file for a stored order; ``Unexportable`` when it has none."""
        ...

    def schema(self, direction: Direction) -> dict[str, Any]:
        """The JSON Schema of the files the ERP sends (``inbound``) or is sent (``outbound``),
        generated from the format's Structs: what to hand to the ERP's team."""
        ...


Judge = Callable[[bytes], FileVerdict]
# How an exchange reports a problem that is no one file's fault: (subject, reason).
Trouble = Callable[[str, str], None]


class Taken(msgspec.Struct, frozen=True):
    """A claimed document and what it amounts to: a verdict, or a reason to quarantine it.

    A Struct rather than a frozen dataclass: one is made per file, and copied once when
    claimed, at a tenth of the cost. Tracked by the garbage collector, unlike the verdict's
    Structs: an ``error`` keeps its traceback, whose frames hold the batch's list of
    ``Taken`` (a cycle only the collector can break).
    """

    name: str  # as the source names it (a file name may hold bytes that are not UTF-8)
    ref: str  # the source's own handle on the claimed document
    landed: float  # when it arrived (epoch seconds), for the latency figures
    verdict: FileVerdict | None = None
    error: RejectedInput | None = None
    version: object = None  # the source's mark of what was read, checked before filing away

    @property
    def shown(self) -> str:
        """The name, safe to print or encode: bytes that are not UTF-8 become U+FFFD."""
        return display_name(self.name)


@dataclass(frozen=True, slots=True)
class Backlog:
    """How far behind a source is: when its longest-waiting document arrived (epoch
    seconds; None when none waits), and how many are claimed but not yet filed away."""

    oldest_landed: float | None
    in_flight: int


class NotFiled(Enum):
    """Why ``file_away`` did not file a document away."""

    LATER = "it stays claimed: filed away at a later try (or resumed at the next start)"
    RETAKE = "it changed since it was read: it is back among the waiting, to be read again"


class InboundSource(Protocol):
    """Where ERP documents come from. Claims them, and archives or quarantines them."""

    async def open(self) -> int:
        """Make ready (an unusable place raises ``ConfigError``); resume what a stopped
        worker left claimed. The number of documents put back."""
        ...

    async def close(self) -> int:
        """Give up the claims; the number of documents left claimed (resumed at the next
        start)."""
        ...

    async def watch(self, wake: Callable[[], None], stop: anyio.Event) -> None:
        """Call ``wake`` when new documents may be waiting, until ``stop``."""

    async def waiting(self) -> list[str]:
        """Names of the documents to take now (those still being written left out)."""
        ...

    def next_look(self) -> float | None:
        """When a document left out as still being written is due again, if any: a
        ``time.monotonic()`` reading (a wait: a step of the wall clock must not move it)."""
        ...

    async def backlog(self) -> Backlog:
        """What waits (also documents still being written) and what is in flight, now."""
        ...

    async def take(
        self, names: Sequence[str], judge: Judge, stopping: Callable[[], bool]
    ) -> list[Taken]:
        """Read, judge and claim each named document (gone or still settling: skipped);
        once ``stopping()`` is true, no more are claimed (those taken so far are returned)."""
        ...

    async def file_away(self, taken: Sequence[Taken], now: datetime) -> list[str | NotFiled]:
        """Archive the used, quarantine the unusable; per document, where it went (the
        failed copy's name for a quarantine), or why it did not go."""
        ...


class OutboundSink(Protocol):
    """Where exported files go; a file is durable before ``write`` returns."""

    async def recover(self) -> None:
        """Clear what a crash left half-written (before the first export)."""

    def claim(self, files: Sequence[OutboundFile]) -> AbstractAsyncContextManager[set[int]]:
        """Hold the files' names exclusively for the block, against every other worker: the
        indexes held (the others are someone else's now, and tried again later)."""
        ...

    async def write(self, files: Sequence[OutboundFile]) -> set[int]:
        """Write every file durably; the indexes of those not written (each one reported)."""
        ...

    async def read(self, names: Sequence[str]) -> list[bytes | None]:
        """What each named file holds now (None: there is none, e.g. the ERP took it), so
        that a file holding another version than the stored one can be repaired."""
        ...

    async def withdraw(self, names: Sequence[str]) -> set[int]:
        """Remove these files (one already gone is fine): an older version of an order
        whose stored version is the ERP's own. The indexes not removed (each reported)."""
        ...
