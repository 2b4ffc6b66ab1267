"""The challenge format's wire shapes (SPEC §2.1): an inbound order and the outbound file."""

from __future__ import annotations

from datetime import datetime

from watcher.core.tracos import OrderNo
from watcher.erp.strict_json import WireStruct


class ErpWorkOrder(WireStruct, frozen=True, kw_only=True):
    """One ERP work order as the customer's ERP writes it; unknown keys are ignored."""

    order_no: OrderNo
    is_canceled: bool
    is_deleted: bool
    is_done: bool
    is_on_hold: bool
    is_pending: bool
    summary: str
    creation_date: datetime
    last_update_date: datetime
    deleted_date: datetime | None = None
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
    creation_date: str
    last_update_date: str
    deleted_date: str | None
