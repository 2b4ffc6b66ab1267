"""The challenge format's wire shapes (docs/spec.md §2.1): an inbound order and the outbound
file."""

from __future__ import annotations

from watcher.core.tracos import OrderNo
from watcher.erp.formats.json.strict import ErpDate, FileDate, WireStruct


class ErpWorkOrder(WireStruct, frozen=True, kw_only=True):
    """One ERP work order as the customer's ERP writes it; unknown keys are ignored."""

    order_no: OrderNo
    is_canceled: bool
    is_deleted: bool
    is_done: bool
    is_on_hold: bool
    is_pending: bool
    summary: str
    creation_date: ErpDate
    last_update_date: ErpDate
    deleted_date: ErpDate | None = None
    is_active: bool = False


class ErpFileOrder(WireStruct, frozen=True, kw_only=True):
    """The outbound file: exactly the ten ERP keys, in order, dates as ``…+00:00`` strings.

    A status flag is false unless the order's status raises it (at most one does).
    """

    order_no: int
    is_canceled: bool = False
    is_deleted: bool
    is_done: bool = False
    is_on_hold: bool = False
    is_pending: bool = False
    summary: str
    creation_date: FileDate
    last_update_date: FileDate
    deleted_date: FileDate | None
