"""The challenge format's translation table and both directions of it (docs/spec.md §2.3); pure.

``FLAGS`` is the one table: every other view of the flags is derived from it.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Final

import msgspec

from watcher.core.errors import InvalidOrder, Unexportable
from watcher.core.tracos import OrderUpsert, Status, TracosWorkOrder
from watcher.erp.formats.challenge.schema import ErpFileOrder, ErpWorkOrder
from watcher.erp.formats.json.strict import check_summary, format_date, utc

# ERP status flag (attribute) → TracOS status, in the order the flags are judged.
FLAGS: Final[dict[str, Status]] = {
    "is_canceled": "cancelled",
    "is_done": "completed",
    "is_on_hold": "on_hold",
    "is_pending": "pending",
    "is_active": "in_progress",
}
NO_FLAG: Final = "in_progress"  # what an order with no flag true is
# Outbound: the flag each status raises. ``is_active`` is read, never written; statuses
# without a flag of their own (``in_progress``, ``created``, the legacy ``deleted``) raise none.
OUT_FLAGS: Final = tuple(flag for flag in FLAGS if flag in ErpFileOrder.__struct_fields__)
STATUS_FLAG: Final[dict[str, str | None]] = {
    **{status: flag for flag, status in FLAGS.items() if flag in OUT_FLAGS},
    NO_FLAG: None,
    "created": None,
    "deleted": None,  # legacy spelling of ``deleted: true``
}
WIRE: Final = {field.name: field.encode_name for field in msgspec.structs.fields(ErpWorkOrder)}
_flags_of: Final = attrgetter(*FLAGS)  # all five in one call: this runs for every order
_STATUSES: Final = tuple(FLAGS.values())


def status_of(order: ErpWorkOrder) -> Status:
    """The one status the flags say; two or more flags true is refused, never guessed."""
    flags: tuple[bool, ...] = _flags_of(order)
    count = flags.count(True)
    if count == 0:
        return NO_FLAG
    if count > 1:
        names = " and ".join(WIRE[flag] for flag, up in zip(FLAGS, flags, strict=True) if up)
        raise InvalidOrder(f"conflicting status flags: {names} are all true")
    return _STATUSES[flags.index(True)]


def erp_to_tracos(order: ErpWorkOrder) -> OrderUpsert:
    """Translate one decoded ERP order into the fields to upsert (docs/spec.md §2.3)."""
    if order.deleted_date is not None and not order.is_deleted:
        raise InvalidOrder("deletedDate is set but isDeleted is false", "$.deletedDate")
    check_summary(order.summary)
    updated = utc(order.last_update_date, "lastUpdateDate")
    deleted_at = None
    if order.is_deleted:
        deleted_at = utc(order.deleted_date, "deletedDate") if order.deleted_date else updated
    return OrderUpsert(
        number=order.order_no,
        status=status_of(order),
        title=order.summary,
        description=order.summary,
        createdAt=utc(order.creation_date, "creationDate"),
        updatedAt=updated,
        deleted=order.is_deleted,
        deletedAt=deleted_at,
    )


def tracos_to_erp(doc: TracosWorkOrder) -> ErpFileOrder:
    """Translate a stored TracOS order into the ERP file shape; unknown status → Unexportable."""
    if doc.status not in STATUS_FLAG:
        raise Unexportable(f"unknown status {doc.status!r}")
    raised = STATUS_FLAG[doc.status]
    deleted = doc.deleted or doc.status == "deleted"
    deleted_at = doc.deletedAt or doc.updatedAt if deleted else None
    order = ErpFileOrder(
        order_no=doc.number,
        is_deleted=deleted,
        summary=doc.title,
        creation_date=format_date(doc.createdAt),
        last_update_date=format_date(doc.updatedAt),
        deleted_date=format_date(deleted_at) if deleted_at else None,
    )
    return msgspec.structs.replace(order, **{raised: True}) if raised else order
