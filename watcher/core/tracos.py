"""TracOS work orders as the store port sees them, and the rules every store applies.

Pure: no clock (``now`` is passed in), no file, no database. Both store adapters and
every ERP format build on these types, so what "newer" means is decided in one place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from operator import attrgetter
from typing import Annotated, Any, Final, Literal

import msgspec

from watcher.core.errors import InvalidDocument, Unexportable, reason_and_path

INT64_MAX: Final = 2**63 - 1
MICROSECOND: Final = timedelta(microseconds=1)

OrderNo = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]
# The statuses TracOS itself sets (docs/spec.md §2.2), in the order the sample data draws them.
TracosStatus = Literal["pending", "in_progress", "completed", "on_hold", "cancelled"]
# Storable statuses: also ``created``, what an order gets whose ERP format does not say.
Status = Literal[TracosStatus, "created"]


class OrderUpsert(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """What an ERP order asks of the store: set these TracOS fields if newer (docs/spec.md §2.3).

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


# an order's number and version, read in C: a batch's columns are made with no Python
# frame an order (the embedded store's rows, the journal's entries)
NUMBER: Final = attrgetter("number")
UPDATED_AT: Final = attrgetter("updatedAt")


class TracosWorkOrder(msgspec.Struct, kw_only=True, frozen=True):
    """The typed view of a stored TracOS document, as needed to export it (docs/spec.md §2.2)."""

    number: OrderNo
    status: str
    title: str
    createdAt: datetime
    updatedAt: datetime
    deleted: bool = False
    deletedAt: datetime | None = None
    isSynced: bool = False


class Outcome(StrEnum):
    """What an inbound upsert did to one order (docs/spec.md §3 Inbound 5)."""

    INSERTED = "inserted"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    STALE = "stale"


def normalise_date(value: datetime) -> datetime:
    """UTC, millisecond precision (what a BSON date keeps); naive means UTC.

    Runs for every date of every order: ``datetime.replace`` costs ~3 µs a call, so a date
    already in UTC is kept and the microseconds are cut by subtraction (~0.5 µs).
    """
    if value.tzinfo is not UTC:
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    extra = value.microsecond % 1000
    return value - MICROSECOND * extra if extra else value


def age(moment: datetime | None, now: datetime) -> float | None:
    """Seconds from ``moment`` to ``now`` (0 for a moment ahead of the clock), None for None."""
    return None if moment is None else max(0.0, (now - moment).total_seconds())


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
        reason, path = reason_and_path(str(exc), "$")
        if path != "$" and not reason.startswith("missing required field"):
            reason = f"{reason} at {path}"  # which field has the wrong type
        raise Unexportable(reason) from exc


AwareDate = Annotated[datetime, msgspec.Meta(tz=True)]
# What a stored ``updatedAt`` that names no date counts as: older than any ERP version.
NOT_A_DATE: Final = datetime.min.replace(tzinfo=UTC)
COMPARED: Final = ("status", "title", "deleted")  # what a conflict's diff looks at


def stored_date(value: object) -> datetime:
    """A stored ``updatedAt`` as newer-wins compares it: a date; an RFC 3339 string (with
    an offset, as TracOS's own tools write them) as the date it names; else ``NOT_A_DATE``."""
    if isinstance(value, datetime):
        return normalise_date(value)
    if isinstance(value, str):
        try:
            return normalise_date(msgspec.convert(value, AwareDate))
        except msgspec.ValidationError:
            pass
    return NOT_A_DATE


# Set by every inbound write: the ERP's own version (its ``lastUpdateDate``) last stored.
# While ``updatedAt`` equals it, the stored version is the ERP's own, which it has already.
ERP_VERSION: Final = "erpUpdatedAt"


def erps_own(stored: Mapping[str, Any]) -> bool:
    """Whether the stored, synced version is the ERP's own (not a TracOS change since)."""
    own = stored.get(ERP_VERSION)
    return (
        stored.get("isSynced") is True
        and isinstance(own, datetime)
        and normalise_date(own) == stored_date(stored.get("updatedAt"))
    )


class Clash(msgspec.Struct, frozen=True):
    """An ERP version that met more than an older synced version: a TracOS change made
    since the last sync (``conflict``; the newer still wins), unsynced yet or exported
    after the ERP made its version, or an ``updatedAt`` that is no date (``no_date``; the
    ERP's wins)."""

    kind: Literal["conflict", "no_date"]
    number: int
    outcome: Outcome
    erp_version: datetime
    tracos_version: datetime | None  # None: the stored value named no date
    stored_text: str  # the stored ``updatedAt`` as it was, for the journal
    differs: tuple[str, ...]  # "title: 'a' → 'b'", TracOS's value first


def clash(stored: Mapping[str, Any], order: OrderUpsert, outcome: Outcome) -> Clash | None:
    """What to record about ``order`` meeting the ``stored`` document, if anything."""
    if outcome not in (Outcome.UPDATED, Outcome.STALE):
        return None
    raw = stored.get("updatedAt")
    when = stored_date(raw)
    differs = differing(stored, order)
    if when is NOT_A_DATE:
        kind: Literal["conflict", "no_date"] = "no_date"
    elif differs and (stored.get("isSynced") is not True or crossed(stored, order)):
        kind = "conflict"
    else:
        return None
    shown = raw.isoformat() if isinstance(raw, datetime) else repr(raw)
    version = None if when is NOT_A_DATE else when
    return Clash(kind, order.number, outcome, order.updatedAt, version, shown, differs)


def crossed(stored: Mapping[str, Any], order: OrderUpsert) -> bool:
    """A synced TracOS change and an ERP version made concurrently: the stored version is
    TracOS's (not the ERP's own), and the ERP made its version before that one was synced
    (so it could not have seen it) and after its own version we last stored (a change
    since, not an old one sent again)."""
    synced_at, own = stored.get("syncedAt"), stored.get(ERP_VERSION)
    if not isinstance(synced_at, datetime) or erps_own(stored):
        return False
    after_own = not isinstance(own, datetime) or order.updatedAt > normalise_date(own)
    return after_own and order.updatedAt < normalise_date(synced_at)


def may_cross(order: OrderUpsert, synced_at: datetime | None) -> bool:
    """Whether a synced document last synced at ``synced_at`` must be read to know if
    ``order`` crossed it (see ``crossed``): a store's cheap test before the full one."""
    return synced_at is not None and order.updatedAt < normalise_date(synced_at)


def differing(stored: Mapping[str, Any], order: OrderUpsert) -> tuple[str, ...]:
    """The compared fields whose values differ, TracOS's first: a short diff."""
    incoming = {"status": order.status, "title": order.title, "deleted": order.deleted}
    return tuple(
        f"{field}: {stored.get(field)!r} → {incoming[field]!r}"
        for field in COMPARED
        if incoming[field] is not None and stored.get(field) != incoming[field]
    )


class _PutFields(msgspec.Struct, kw_only=True):
    """The fields of a document given to ``watcher put`` that the stores rely on; any
    other field is written as given (TracOS documents may carry more)."""

    number: OrderNo
    createdAt: AwareDate | msgspec.UnsetType = msgspec.UNSET
    updatedAt: AwareDate | msgspec.UnsetType = msgspec.UNSET
    deletedAt: AwareDate | msgspec.UnsetType | None = msgspec.UNSET
    syncedAt: AwareDate | msgspec.UnsetType = msgspec.UNSET
    isSynced: bool | msgspec.UnsetType = msgspec.UNSET


DATE_FIELDS: Final = ("createdAt", "updatedAt", "deletedAt", "syncedAt")
_decode_documents = msgspec.json.Decoder(list[Any]).decode  # each element judged on its own


def decode_tracos(data: bytes, need_version: bool) -> list[dict[str, Any]]:
    """A JSON array of TracOS documents, dates as RFC 3339 strings with an offset, decoded
    strictly; ``need_version``: each must have ``updatedAt`` (newer wins compares it)."""
    try:
        given = _decode_documents(data)
    except msgspec.DecodeError as exc:  # also a ValidationError: not an array
        reason, path = reason_and_path(str(exc), "$")
        raise InvalidDocument(f"not a JSON array of TracOS documents: {reason}", path) from None
    first: dict[int, int] = {}
    return [_checked(index, doc, first, need_version) for index, doc in enumerate(given)]


def _checked(index: int, doc: Any, first: dict[int, int], need_version: bool) -> dict[str, Any]:
    at = f"$[{index}]"
    try:
        fields = msgspec.convert(doc, _PutFields)
    except msgspec.ValidationError as exc:
        raise _refused(index, *reason_and_path(str(exc), at)) from None
    if need_version and fields.updatedAt is msgspec.UNSET:
        reason = "missing required field `updatedAt` (newer wins compares it; --force needs none)"
        raise _refused(index, reason, f"{at}.updatedAt")
    if fields.number in first:
        reason = f"number {fields.number} is also document {first[fields.number]}"
        raise _refused(index, reason, f"{at}.number")
    first[fields.number] = index
    dates = {f: getattr(fields, f) for f in DATE_FIELDS if getattr(fields, f) is not msgspec.UNSET}
    return {**doc, **dates}  # an object, or the conversion above had refused it


def _refused(index: int, reason: str, path: str) -> InvalidDocument:
    """``document 2, field updatedAt: …``: the index in the array and the field, if any."""
    field = path.removeprefix(f"$[{index}]").removeprefix(".")
    return InvalidDocument(f"document {index}{f', field {field}' if field else ''}: {reason}", path)
