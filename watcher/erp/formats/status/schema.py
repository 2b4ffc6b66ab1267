"""The ``status`` dialect's wire shapes: one string ``status`` instead of five flags."""

from __future__ import annotations

from typing import Literal

from watcher.core.tracos import OrderNo
from watcher.erp.formats.json.strict import ErpDate, FileDate, WireStruct

# Matched exactly: ``new`` or ``Pending`` is refused with its path.
ErpStatus = Literal["NEW", "PENDING", "IN_PROGRESS", "ON_HOLD", "COMPLETED", "CANCELLED", "DELETED"]


class StatusWorkOrder(WireStruct, frozen=True, kw_only=True):
    """One inbound order; unknown keys are ignored."""

    order_no: OrderNo
    status: ErpStatus
    summary: str
    creation_date: ErpDate
    last_update_date: ErpDate
    deleted_date: ErpDate | None = None


class StatusFileOrder(WireStruct, frozen=True, kw_only=True):
    """The outbound file: these six keys, in order, dates as ``…+00:00`` strings."""

    order_no: int
    status: ErpStatus
    summary: str
    creation_date: FileDate
    last_update_date: FileDate
    deleted_date: FileDate | None
