"""TracOS work orders as the store port sees them, and the rules every store applies.

Pure: no clock (``now`` is passed in), no file, no database. Both store adapters and
every ERP format build on these types, so what "newer" means is decided in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Final, Literal

import msgspec

from watcher.errors import Unexportable, reason_and_path

INT64_MAX: Final = 2**63 - 1

OrderNo = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]
# The statuses TracOS itself sets (SPEC §2.2), in the order the sample data draws them.
TracosStatus = Literal["pending", "in_progress", "completed", "on_hold", "cancelled"]
# Storable statuses: also ``created``, what an order gets whose ERP format does not say.
Status = Literal[TracosStatus, "created"]


class OrderUpsert(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """What an ERP order asks of the store: set these TracOS fields if newer (SPEC §2.3).

    ``status`` None leaves the stored status as it is (``created`` on insert): a format
    that only says "deleted" must not invent a status.
    """

    number: int
    status: Status | None
    title: str
    description: str
    createdAt: datetime
    updatedAt: datetime
    deleted: bool
    deletedAt: datetime | None


class TracosWorkOrder(msgspec.Struct, kw_only=True, frozen=True):
    """The typed view of a stored TracOS document, as needed to export it (SPEC §2.2)."""

    number: OrderNo
    status: str
    title: str
    createdAt: datetime
    updatedAt: datetime
    deleted: bool = False
    deletedAt: datetime | None = None
    isSynced: bool = False


class Outcome(StrEnum):
    """What an inbound upsert did to one order (SPEC §3 Inbound 5)."""

    INSERTED = "inserted"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    STALE = "stale"


def normalise_date(value: datetime) -> datetime:
    """UTC, millisecond precision (what a BSON date keeps); naive means UTC."""
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return aware.replace(microsecond=aware.microsecond // 1000 * 1000)


def decide(stored: datetime | None, incoming: datetime) -> Outcome:
    """Newer wins, to the millisecond; equal is unchanged, older is stale."""
    if stored is None:
        return Outcome.INSERTED
    if incoming > stored:
        return Outcome.UPDATED
    return Outcome.UNCHANGED if incoming == stored else Outcome.STALE


def newest_per_number(orders: Sequence[OrderUpsert]) -> tuple[dict[int, int], list[Outcome | None]]:
    """Index of the newest order per number; the superseded ones already get their outcome."""
    winner: dict[int, int] = {}
    outcomes: list[Outcome | None] = [None] * len(orders)
    for index, order in enumerate(orders):
        best = winner.get(order.number)
        if best is None or order.updatedAt > orders[best].updatedAt:
            if best is not None:
                outcomes[best] = decide(order.updatedAt, orders[best].updatedAt)
            winner[order.number] = index
        else:
            outcomes[index] = decide(orders[best].updatedAt, order.updatedAt)
    return winner, outcomes


def read_tracos(doc: object) -> TracosWorkOrder:
    """Validate a stored document (a dict of TracOS fields) for export."""
    try:
        return msgspec.convert(doc, TracosWorkOrder)
    except msgspec.ValidationError as exc:
        raise Unexportable(reason_and_path(str(exc), "$")[0]) from exc
