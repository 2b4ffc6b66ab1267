"""The ``status`` dialect's table and both directions of it; pure.

``DELETED`` says only that the order is deleted: the stored status is kept (``created``
for a new order). Outbound, a deleted order is ``DELETED`` whatever its status.
"""

from __future__ import annotations

from typing import Final

from watcher.core.errors import InvalidOrder, Unexportable
from watcher.core.tracos import OrderUpsert, Status, TracosWorkOrder
from watcher.erp.formats.json.strict import check_summary, format_date, utc
from watcher.erp.formats.status.schema import ErpStatus, StatusFileOrder, StatusWorkOrder

# ERP status → TracOS status; None: deleted, status kept. The one table.
STATUSES: Final[dict[ErpStatus, Status | None]] = {
    "NEW": "created",
    "PENDING": "pending",
    "IN_PROGRESS": "in_progress",
    "ON_HOLD": "on_hold",
    "COMPLETED": "completed",
    "CANCELLED": "cancelled",
    "DELETED": None,
}
DELETED: Final[ErpStatus] = "DELETED"
TO_ERP: Final[dict[str, ErpStatus]] = {
    status: name for name, status in STATUSES.items() if status is not None
}


def status_to_tracos(order: StatusWorkOrder) -> OrderUpsert:
    """Translate one decoded order into the fields to upsert."""
    deleted = order.status == DELETED
    if order.deleted_date is not None and not deleted:
        raise InvalidOrder("deletedDate is set but status is not DELETED", "$.deletedDate")
    check_summary(order.summary)
    updated = utc(order.last_update_date, "lastUpdateDate")
    deleted_at = None
    if deleted:
        deleted_at = utc(order.deleted_date, "deletedDate") if order.deleted_date else updated
    return OrderUpsert(
        number=order.order_no,
        status=STATUSES[order.status],
        title=order.summary,
        description=order.summary,
        createdAt=utc(order.creation_date, "creationDate"),
        updatedAt=updated,
        deleted=deleted,
        deletedAt=deleted_at,
    )


def tracos_to_status(doc: TracosWorkOrder) -> StatusFileOrder:
    """Translate a stored order into the dialect; an unknown status → Unexportable."""
    deleted = doc.deleted or doc.status == "deleted"  # the legacy spelling of deleted: true
    if not deleted and doc.status not in TO_ERP:
        raise Unexportable(f"unknown status {doc.status!r}")
    deleted_at = doc.deletedAt or doc.updatedAt if deleted else None
    return StatusFileOrder(
        order_no=doc.number,
        status=DELETED if deleted else TO_ERP[doc.status],
        summary=doc.title,
        creation_date=format_date(doc.createdAt),
        last_update_date=format_date(doc.updatedAt),
        deleted_date=format_date(deleted_at) if deleted_at else None,
    )
