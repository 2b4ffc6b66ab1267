"""The two wire shapes: ERP work orders (JSON files) and TracOS work orders (documents)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final, Literal

import msgspec

INT64_MAX: Final = 2**63 - 1

OrderNo = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]
Status = Literal["pending", "in_progress", "completed", "on_hold", "cancelled"]


class ErpWorkOrder(msgspec.Struct, kw_only=True, frozen=True):
    """One ERP work order as the customer's ERP writes it (SPEC §2.1)."""

    orderNo: OrderNo
    isCanceled: bool
    isDeleted: bool
    isDone: bool
    isOnHold: bool
    isPending: bool
    summary: str
    creationDate: datetime
    lastUpdateDate: datetime
    deletedDate: datetime | None = None
    isActive: bool = False


class ErpFileOrder(msgspec.Struct, frozen=True):
    """The outbound file: exactly the ten ERP keys, in order, dates as ``…+00:00`` strings."""

    orderNo: int
    isCanceled: bool
    isDeleted: bool
    isDone: bool
    isOnHold: bool
    isPending: bool
    summary: str
    creationDate: str
    lastUpdateDate: str
    deletedDate: str | None


class OrderUpsert(msgspec.Struct, kw_only=True, frozen=True):
    """What an ERP order asks of the store: set these TracOS fields if newer (SPEC §2.3)."""

    number: int
    status: Status
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
