"""Test data, built in one place: ERP orders, TracOS documents and upserts, and strategies.

Test modules import builders from here, never from each other.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, get_args

import msgspec
from hypothesis import strategies as st

from watcher.core.tracos import OrderUpsert, Status, TracosWorkOrder
from watcher.erp.formats.challenge.schema import ErpWorkOrder

T0 = datetime(2025, 10, 1, 0, 4, 29, 45000, tzinfo=UTC)
NOW = datetime(2026, 1, 1, tzinfo=UTC)
FLAGS = ("isCanceled", "isDeleted", "isDone", "isOnHold", "isPending")


# the fields both ERP formats share, in the challenge's key order
_DESCRIBED: dict[str, Any] = {
    "summary": "Example workorder #1",
    "creationDate": "2025-09-30T23:04:29.045089+00:00",
    "lastUpdateDate": "2025-10-01T00:04:29.045089+00:00",
    "deletedDate": None,
}


def erp(**changes: Any) -> dict[str, Any]:
    """A valid challenge-format order as JSON builtins, with ``changes`` applied."""
    order: dict[str, Any] = {
        "orderNo": 1,
        "isCanceled": False,
        "isDeleted": False,
        "isDone": False,
        "isOnHold": False,
        "isPending": False,
        **_DESCRIBED,
    }
    order.update(changes)
    return order


def status_erp(**changes: Any) -> dict[str, Any]:
    """A valid ``status``-format order as JSON builtins, with ``changes`` applied."""
    order: dict[str, Any] = {
        "orderNo": 1,
        "status": "PENDING",
        **_DESCRIBED,
    }
    order.update(changes)
    return order


def tracos(**changes: Any) -> TracosWorkOrder:
    """A stored TracOS order, typed, as outbound reads it."""
    values: dict[str, Any] = {
        "number": 7,
        "status": "pending",
        "title": "Fix pump",
        "createdAt": T0,
        "updatedAt": T0 + timedelta(hours=1),
    }
    values.update(changes)
    return msgspec.convert(values, TracosWorkOrder)


def order(number: int = 1, updated: datetime = T0, **changes: Any) -> OrderUpsert:
    """What an ERP order asks of the store."""
    values: dict[str, Any] = {
        "number": number,
        "status": "pending",
        "title": f"Order {number}",
        "description": f"Order {number}",
        "createdAt": T0 - timedelta(days=1),
        "updatedAt": updated,
        "deleted": False,
        "deletedAt": None,
    }
    values.update(changes)
    return OrderUpsert(**values)


def tracos_doc(number: int, **changes: Any) -> dict[str, Any]:
    """A TracOS document as TracOS (or the challenge's generator) writes it: no isSynced."""
    doc: dict[str, Any] = {
        "number": number,
        "status": "completed",
        "title": f"Example workorder #{number}",
        "description": f"Example workorder #{number} description",
        "createdAt": T0,
        "updatedAt": T0 + timedelta(hours=1),
        "deleted": False,
    }
    doc.update(changes)
    return doc


ms_dates = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
).map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000))


@st.composite
def valid_erp_orders(draw: st.DrawFn) -> ErpWorkOrder:
    """Any valid challenge-format order (dates already at millisecond precision)."""
    flag = draw(st.sampled_from([None, "isCanceled", "isDone", "isOnHold", "isPending"]))
    deleted = draw(st.booleans())
    updated = draw(ms_dates)
    return ErpWorkOrder(
        order_no=draw(st.integers(0, 2**63 - 1)),
        is_canceled=flag == "isCanceled",
        is_deleted=deleted,
        is_done=flag == "isDone",
        is_on_hold=flag == "isOnHold",
        is_pending=flag == "isPending",
        summary=draw(st.text()),
        creation_date=draw(ms_dates),
        last_update_date=updated,
        deleted_date=draw(ms_dates) if deleted else None,
    )


@st.composite
def stored_orders(draw: st.DrawFn) -> TracosWorkOrder:
    """Any exportable stored order: every storable status, deleted or not."""
    deleted = draw(st.booleans())
    return TracosWorkOrder(
        number=draw(st.integers(0, 2**63 - 1)),
        status=draw(st.sampled_from(get_args(Status))),
        title=draw(st.text()),
        createdAt=draw(ms_dates),
        updatedAt=draw(ms_dates),
        deleted=deleted,
        deletedAt=draw(ms_dates) if deleted and draw(st.booleans()) else None,
    )


FIELDS = (
    "orderNo",
    "isCanceled",
    "isDeleted",
    "isDone",
    "isOnHold",
    "isPending",
    "isActive",
    "summary",
    "creationDate",
    "lastUpdateDate",
    "deletedDate",
)
# The whole range: an offset at either end leaves it once converted to UTC (refused).
aware_datetimes = st.datetimes(
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-12)), timezone(timedelta(hours=14))]),
)
date_texts = st.one_of(
    st.datetimes().map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
    aware_datetimes.map(lambda d: d.isoformat()),
    st.sampled_from(["", "2025-10-01", "2025-02-30T00:00:00Z", "2025/11/01", "T", "Z"]),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8) | date_texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)


@st.composite
def mutated_order(draw: st.DrawFn) -> object:
    """A valid ERP order as builtins, with up to three fields changed, dropped or renamed."""
    order: dict[str, Any] = msgspec.to_builtins(draw(valid_erp_orders()))
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(FIELDS))
        action = draw(st.sampled_from(["set", "drop", "rename"]))
        if action == "set":
            order[key] = draw(json_values)
        elif key in order:
            value = order.pop(key)
            if action == "rename":
                order[key.upper()] = value
    return order if draw(st.integers(0, 9)) else draw(json_values)


@st.composite
def mutated_documents(draw: st.DrawFn, batch_size: int = 3) -> bytes:
    """One order or a batch, spelled as JSON in one of several ways."""
    orders = draw(st.lists(mutated_order(), min_size=1, max_size=batch_size))
    document = orders if draw(st.booleans()) else orders[0]
    indent = draw(st.sampled_from([None, 2]))
    return json.dumps(document, indent=indent, ensure_ascii=draw(st.booleans())).encode()


@st.composite
def mutated_files(draw: st.DrawFn, batch_size: int = 3) -> bytes:
    """Valid-looking JSON with byte-level damage: flips, cuts, insertions, deletions, copies."""
    data = bytearray(draw(mutated_documents(batch_size)))
    for _ in range(draw(st.integers(0, 3))):
        end = len(data)
        start = draw(st.integers(0, end))
        stop = draw(st.integers(start, end))
        action = draw(st.sampled_from(["flip", "cut", "insert", "delete", "duplicate"]))
        if action == "flip" and start < end:
            data[start] ^= 1 << draw(st.integers(0, 7))
        elif action == "cut":
            del data[start:]
        elif action == "insert":
            data[start:start] = draw(st.binary(min_size=1, max_size=8))
        elif action == "delete":
            del data[start:stop]
        elif action == "duplicate":
            data[stop:stop] = data[start:stop]
    return bytes(data)
