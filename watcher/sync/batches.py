"""A finished batch as plain values: what the pipelines say came of their work.

An inbound batch is the files filed away with their orders' outcomes (``InboundDone``);
an outbound batch, each export's outcome (``OutboundDone``). Observers
(``watcher.sync.bookkeeping``) keep the books of them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import datetime
from itertools import chain

import msgspec

from watcher.core.tracos import Clash, OrderUpsert, Outcome
from watcher.erp import NotFiled, Taken
from watcher.store import JournalEvent, StoredDocument


class FiledFile(msgspec.Struct, frozen=True):
    """One file of a batch: what was taken, where it went (or why not), its orders' outcomes."""

    taken: Taken
    where: str | NotFiled
    outcomes: list[Outcome]


class InboundDone(msgspec.Struct, frozen=True):
    """An inbound batch, stored and filed away. ``refiled``: files that could not be filed
    away before, filed now; their orders were counted and journalled with their batch."""

    files: list[FiledFile]
    stored_at: datetime
    filed_at: datetime
    refiled: bool = False
    clashes: list[Clash] = []  # conflicts and stored versions that named no date


class Exported(msgspec.Struct, frozen=True):
    """One export of a batch: the document, its number, its file, and what came of it
    (``exported``, ``changed_during_export``, ``mark_refused``, ``superseded`` or
    ``not_written``). A refused mark has the store's ``reason``, ``said`` (logged,
    journalled) once per reason while it lasts."""

    doc: StoredDocument
    number: int
    file: str
    event: JournalEvent
    reason: str = ""
    said: bool = True


class Refused(msgspec.Struct, frozen=True):
    """A document the format cannot render: listed as stuck, and ``said`` (logged, counted,
    journalled) once per version, across restarts too."""

    doc: StoredDocument
    reason: str
    said: bool = True


class OutboundDone(msgspec.Struct, frozen=True):
    """An outbound batch, written and marked; ``rendered``: the keys the format rendered."""

    at: datetime
    exports: list[Exported]
    unexportable: list[Refused]
    rendered: list[str]
    where: str  # the outbound folder, for the log line


def order_outcomes(
    item: FiledFile, last: int | None = None
) -> Iterator[tuple[OrderUpsert, Outcome]]:
    """The file's orders with their outcomes (the ``last`` few only, if given): pairs made
    as they are read, never a list of a huge batch's."""
    orders = item.taken.verdict.orders if item.taken.verdict else []
    if last is not None:
        orders, outcomes = orders[-last:], item.outcomes[-last:]
    else:
        outcomes = item.outcomes
    return zip(orders, outcomes, strict=True)


def orders_and_outcomes(item: FiledFile) -> tuple[Sequence[OrderUpsert], Sequence[Outcome]]:
    """The file's orders, and their outcomes in the same order, as two columns."""
    orders = item.taken.verdict.orders if item.taken.verdict else []
    if len(orders) != len(item.outcomes):
        raise ValueError(f"{len(orders)} orders, {len(item.outcomes)} outcomes")
    return orders, item.outcomes


def quarantine_reason(taken: Taken) -> tuple[str, str] | None:
    """Why (a reason and its JSON path) ``taken`` went to the failed folder, if it did."""
    if taken.verdict is None:
        assert taken.error is not None
        return taken.error.reason, taken.error.path
    if taken.verdict.rejected:
        first = taken.verdict.rejected[0]
        return f"{taken.verdict.rejected_reason()}; first: {first.reason}", first.path
    return None


def tally_all(done: InboundDone) -> Counter[Outcome]:
    return Counter(chain.from_iterable(item.outcomes for item in done.files))


def tally(outcomes: Sequence[Outcome]) -> dict[str, int]:
    return {str(outcome): n for outcome, n in Counter(outcomes).items()}


def changed(done: OutboundDone) -> int:
    """How many exports were written but changed meanwhile (not marked)."""
    return sum(e.event is JournalEvent.CHANGED_DURING_EXPORT for e in done.exports)
