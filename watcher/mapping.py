"""The translation table and both directions of it (SPEC §2.3); pure, no I/O, no clock."""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Final, TypeVar

import msgspec

from watcher.errors import InvalidOrder, MalformedFile, Unexportable
from watcher.model import ErpFileOrder, ErpWorkOrder, OrderUpsert, Status, TracosWorkOrder

# ERP status flag → TracOS status, in the order the flags are judged.
FLAG_TO_STATUS: Final[dict[str, Status]] = {
    "isCanceled": "cancelled",
    "isDone": "completed",
    "isOnHold": "on_hold",
    "isPending": "pending",
    "isActive": "in_progress",
}
STATUS_TO_FLAG: Final[dict[str, str | None]] = {
    "cancelled": "isCanceled",
    "completed": "isDone",
    "on_hold": "isOnHold",
    "pending": "isPending",
    "in_progress": None,
    "created": None,
    "deleted": None,  # legacy spelling of ``deleted: true``; no status flag of its own
}
BOM: Final = b"\xef\xbb\xbf"
MAX_SUMMARY_BYTES: Final = 4 * 2**20
UTF8_STEP: Final = 2**20
UTF16_BOMS: Final = (b"\xff\xfe", b"\xfe\xff")  # also the start of the UTF-32 marks
ERP_FIELDS: Final = frozenset(ErpWorkOrder.__struct_fields__)
_KEY_SPELLINGS: Final = tuple(f'"{field}"'.encode() for field in ERP_FIELDS)
_KEY_TOKEN: Final = re.compile(b"|".join(_KEY_SPELLINGS))
_FIRST_SIGN: Final = re.compile(rb"[^ \t\r\n]")  # JSON's whitespace is these four
T = TypeVar("T")

_decode_one = msgspec.json.Decoder(ErpWorkOrder).decode
_decode_many = msgspec.json.Decoder(list[ErpWorkOrder]).decode
_decode_elements = msgspec.json.Decoder(list[msgspec.Raw]).decode
_decode_any = msgspec.json.Decoder().decode
_JSON_KIND: Final = {str: "a string", int: "a number", float: "a number", bool: "a boolean"}
_JSON_KIND[type(None)] = "null"
_MISSING_FIELD = re.compile(r"Object missing required field `(?P<field>[^`]+)`")


class Rejection(msgspec.Struct, frozen=True):
    """Why one order (``index`` in a batch file, ``None`` for a single-order file) was refused."""

    index: int | None
    path: str
    reason: str
    raw: msgspec.Raw | None = None


class FileVerdict(msgspec.Struct, frozen=True):
    """What a whole ERP file amounts to: the usable orders and the refused elements."""

    orders: list[OrderUpsert]
    rejected: list[Rejection]
    is_batch: bool


def normalise_date(value: datetime) -> datetime:
    """UTC, millisecond precision (what a BSON date keeps); naive means UTC."""
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return aware.replace(microsecond=aware.microsecond // 1000 * 1000)


def format_date(value: datetime) -> str:
    """The ERP's date spelling: ``2025-10-01T00:04:29.045000+00:00``."""
    return normalise_date(value).isoformat(timespec="microseconds")


def _check_size(summary: str) -> None:
    """Title and description both hold the summary, in one 16 MB MongoDB document."""
    if len(summary) <= MAX_SUMMARY_BYTES // 4:
        return  # at most 4 bytes a character in UTF-8: no need to count
    size = len(summary.encode())
    if size > MAX_SUMMARY_BYTES:
        reason = f"summary too long: {size:,} bytes, at most {MAX_SUMMARY_BYTES:,}"
        raise InvalidOrder(reason + " (stored twice in one 16 MB document)", "$.summary")


def _utc(value: datetime, field: str) -> datetime:
    try:
        return normalise_date(value)
    except OverflowError:
        raise InvalidOrder("date out of range once converted to UTC", f"$.{field}") from None


def status_of(order: ErpWorkOrder) -> Status:
    """The one status the flags say; two or more flags true is refused, never guessed."""
    raised = [flag for flag in FLAG_TO_STATUS if getattr(order, flag)]
    if len(raised) > 1:
        raise InvalidOrder(f"conflicting status flags: {' and '.join(raised)} are all true")
    return FLAG_TO_STATUS[raised[0]] if raised else "in_progress"


def erp_to_tracos(order: ErpWorkOrder) -> OrderUpsert:
    """Translate one decoded ERP order into the fields to upsert (SPEC §2.3)."""
    if order.deletedDate is not None and not order.isDeleted:
        raise InvalidOrder("deletedDate is set but isDeleted is false", "$.deletedDate")
    _check_size(order.summary)
    updated = _utc(order.lastUpdateDate, "lastUpdateDate")
    deleted_at = None
    if order.isDeleted:
        deleted_at = _utc(order.deletedDate, "deletedDate") if order.deletedDate else updated
    return OrderUpsert(
        number=order.orderNo,
        status=status_of(order),
        title=order.summary,
        description=order.summary,
        createdAt=_utc(order.creationDate, "creationDate"),
        updatedAt=updated,
        deleted=order.isDeleted,
        deletedAt=deleted_at,
    )


def tracos_to_erp(doc: TracosWorkOrder) -> ErpFileOrder:
    """Translate a stored TracOS order into the ERP file shape; unknown status → Unexportable."""
    if doc.status not in STATUS_TO_FLAG:
        raise Unexportable(f"unknown status {doc.status!r}")
    raised = STATUS_TO_FLAG[doc.status]
    deleted = doc.deleted or doc.status == "deleted"
    deleted_at = doc.deletedAt or doc.updatedAt if deleted else None
    return ErpFileOrder(
        orderNo=doc.number,
        isCanceled=raised == "isCanceled",
        isDeleted=deleted,
        isDone=raised == "isDone",
        isOnHold=raised == "isOnHold",
        isPending=raised == "isPending",
        summary=doc.title,
        creationDate=format_date(doc.createdAt),
        lastUpdateDate=format_date(doc.updatedAt),
        deletedDate=format_date(deleted_at) if deleted_at else None,
    )


def encode_erp_file(order: ErpFileOrder) -> bytes:
    """The outbound file's bytes: the ten keys in order, indented, newline-terminated."""
    return msgspec.json.format(msgspec.json.encode(order), indent=2) + b"\n"


def read_tracos(doc: object) -> TracosWorkOrder:
    """Validate a stored document (a dict of TracOS fields) for export."""
    try:
        return msgspec.convert(doc, TracosWorkOrder)
    except msgspec.ValidationError as exc:
        raise Unexportable(_reason_and_path(str(exc), "$")[0]) from exc


def judge_erp_file(data: bytes) -> FileVerdict:
    """Decode a whole ERP file: one order or a batch, each element judged on its own.

    Raises ``MalformedFile`` when the bytes are not one JSON document and ``InvalidOrder``
    when a single-order file (or the file's top level) breaks the contract.
    """
    if data.startswith(UTF16_BOMS):
        raise MalformedFile("not UTF-8: the file starts with a UTF-16/32 byte-order mark")
    data = data.removeprefix(BOM)
    _check_utf8(data)
    found = _FIRST_SIGN.search(data)
    if found is None:
        raise MalformedFile("empty file")
    first = found.group()
    if first == b"[":
        return _judge_batch(data)
    if first != b"{":
        value = _decode(_decode_any, data, "$")
        kind = _JSON_KIND.get(type(value), type(value).__name__)
        raise InvalidOrder(f"expected a JSON object or array, got {kind}")
    order = _decode(_decode_one, data, "$")
    _refuse_duplicate_keys(data, 1, "$")
    return FileVerdict(orders=[_translate(order, "$")], rejected=[], is_batch=False)


def _judge_batch(data: bytes) -> FileVerdict:
    try:
        orders = _decode(_decode_many, data, "$")
        _refuse_duplicate_keys(data, len(orders), "$")
        return FileVerdict([_translate(o, f"$[{i}]") for i, o in enumerate(orders)], [], True)
    except InvalidOrder:
        pass  # at least one element is bad: judge them one by one
    elements = _decode(_decode_elements, data, "$")
    good: list[OrderUpsert] = []
    bad: list[Rejection] = []
    for index, raw in enumerate(elements):
        try:
            good.append(_judge_element(bytes(raw), f"$[{index}]"))
        except InvalidOrder as exc:
            bad.append(Rejection(index, exc.path, exc.reason, raw))
    return FileVerdict(good, bad, is_batch=True)


def _judge_element(data: bytes, prefix: str) -> OrderUpsert:
    order = _decode(_decode_one, data, prefix)
    _refuse_duplicate_keys(data, 1, prefix)
    return _translate(order, prefix)


def _refuse_duplicate_keys(data: bytes, objects: int, prefix: str) -> None:
    """Two values for one contract key would leave us guessing: refuse the order.

    A cheap count of each key's spelling rules out almost every file; only a suspicious
    one is parsed again, keeping pairs, to find a real duplicate within one object.
    """
    if objects == 1:  # one object, a small file: one pass over it
        keys = _KEY_TOKEN.findall(data)
        if len(keys) == len(set(keys)):
            return
    elif all(data.count(key) <= objects for key in _KEY_SPELLINGS):  # no allocation per key
        return
    duplicates: list[str] = []

    def check(pairs: list[tuple[str, object]]) -> None:
        keys = [key for key, _ in pairs if key in ERP_FIELDS]
        duplicates.extend(key for key in set(keys) if keys.count(key) > 1)

    try:
        json.loads(data, object_pairs_hook=check)
    except ValueError as exc:
        raise MalformedFile(f"not valid JSON: {exc}") from None
    if duplicates:
        field = sorted(duplicates)[0]
        raise InvalidOrder(f"duplicate key `{field}`", f"{prefix}.{field}")


def _translate(order: ErpWorkOrder, prefix: str) -> OrderUpsert:
    try:
        return erp_to_tracos(order)
    except InvalidOrder as exc:
        raise InvalidOrder(exc.reason, prefix + exc.path.removeprefix("$")) from exc


def _decode(decode: Callable[[bytes], T], data: bytes, prefix: str) -> T:
    try:
        return decode(data)
    except msgspec.ValidationError as exc:
        raise InvalidOrder(*_reason_and_path(str(exc), prefix)) from exc
    except msgspec.DecodeError as exc:
        raise MalformedFile(f"not valid JSON: {exc}") from exc
    except RecursionError:
        raise MalformedFile("not valid JSON: nested too deeply") from None


def _check_utf8(data: bytes) -> None:
    """The whole file must be UTF-8 (msgspec would skip bad bytes in ignored keys).

    Checked in 1 MiB steps so a large batch file is never copied whole into a ``str``.
    """
    if len(data) <= UTF8_STEP:  # nearly every file: one call, no decoder object
        try:
            data.decode()
        except UnicodeDecodeError as exc:
            raise MalformedFile(f"not valid UTF-8: byte {exc.start} ({exc.reason})") from None
        return
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    for start in range(0, len(data), UTF8_STEP):
        try:
            decoder.decode(view[start : start + UTF8_STEP], final=start + UTF8_STEP >= len(data))
        except UnicodeDecodeError as exc:
            where = start + exc.start - len(decoder.getstate()[0])
            raise MalformedFile(f"not valid UTF-8: byte {where} ({exc.reason})") from None


def _reason_and_path(message: str, prefix: str) -> tuple[str, str]:
    """Split msgspec's ``reason - at `$.path``` and name the field a missing-field error omits."""
    reason, _, at = message.partition(" - at `")
    path = prefix + at.rstrip("`").removeprefix("$") if at else prefix
    missing = _MISSING_FIELD.fullmatch(reason)
    if missing:
        return f"missing required field `{missing['field']}`", f"{path}.{missing['field']}"
    return reason, path


def element_bytes(rejected: Sequence[Rejection]) -> bytes:
    """The refused elements of a batch as a JSON array of their original bytes."""
    return b"[\n" + b",\n".join(bytes(r.raw or b"null") for r in rejected) + b"\n]\n"
