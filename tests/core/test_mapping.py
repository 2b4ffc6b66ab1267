"""The pure core: ERP ↔ TracOS translation and the whole-file verdict (docs/spec.md §2)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers.builders import FLAGS, T0, erp, tracos, valid_erp_orders
from watcher.core.errors import InvalidOrder, MalformedFile, Unexportable
from watcher.core.tracos import OrderUpsert, TracosWorkOrder, normalise_date, read_tracos
from watcher.erp.formats.challenge import FORMAT as CHALLENGE
from watcher.erp.formats.challenge.mapping import erp_to_tracos, tracos_to_erp
from watcher.erp.formats.challenge.schema import ErpWorkOrder

judge_erp_file = CHALLENGE.judge


def encode_erp_file(order: TracosWorkOrder) -> bytes:
    return CHALLENGE.render(order).data


def judge_one(order: dict[str, Any]) -> OrderUpsert:
    verdict = judge_erp_file(msgspec.json.encode(order))
    assert not verdict.rejected
    [upsert] = verdict.orders
    return upsert


def rejection(data: bytes) -> InvalidOrder | MalformedFile:
    with pytest.raises((InvalidOrder, MalformedFile)) as caught:
        judge_erp_file(data)
    assert isinstance(caught.value, InvalidOrder | MalformedFile)
    return caught.value


@pytest.mark.parametrize(
    ("flag", "status"),
    [
        ("isCanceled", "cancelled"),
        ("isDone", "completed"),
        ("isOnHold", "on_hold"),
        ("isPending", "pending"),
        ("isActive", "in_progress"),
    ],
)
def test_each_flag_gives_its_status(flag: str, status: str) -> None:
    """One status flag true → its TracOS status."""
    assert judge_one(erp(**{flag: True})).status == status


def test_all_flags_false_is_in_progress() -> None:
    """No flag true → in_progress."""
    assert judge_one(erp()).status == "in_progress"


@pytest.mark.parametrize(
    ("a", "b"), [("isDone", "isCanceled"), ("isPending", "isOnHold"), ("isActive", "isDone")]
)
def test_two_flags_true_is_rejected(a: str, b: str) -> None:
    """Conflicting status flags are refused, never guessed, and the reason names them."""
    error = rejection(msgspec.json.encode(erp(**{a: True, b: True})))
    assert "conflicting status flags" in error.reason
    assert a in error.reason and b in error.reason


def test_deleted_keeps_status_and_uses_deleted_date() -> None:
    """Deletion is orthogonal to status; deletedDate becomes deletedAt (UTC, ms)."""
    order = judge_one(erp(isDeleted=True, isDone=True, deletedDate="2025-10-02T10:00:00.123456Z"))
    assert (order.status, order.deleted) == ("completed", True)
    assert order.deletedAt == datetime(2025, 10, 2, 10, 0, 0, 123000, tzinfo=UTC)


def test_deleted_without_date_uses_last_update() -> None:
    """Deleted with deletedDate null → deletedAt = lastUpdateDate."""
    order = judge_one(erp(isDeleted=True))
    assert order.deletedAt == order.updatedAt == T0


def test_undelete_clears_deleted_at() -> None:
    """isDeleted false → deleted false and no deletedAt."""
    order = judge_one(erp(isDeleted=False))
    assert (order.deleted, order.deletedAt) == (False, None)


def test_deleted_date_without_is_deleted_is_rejected() -> None:
    """deletedDate set while isDeleted is false is refused at its path."""
    error = rejection(msgspec.json.encode(erp(deletedDate="2025-10-02T10:00:00Z")))
    assert (error.reason, error.path) == (
        "deletedDate is set but isDeleted is false",
        "$.deletedDate",
    )


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (True, "Expected `int`, got `bool`"),
        (1.0, "Expected `int`, got `float`"),
        ("1", "Expected `int`, got `str`"),
        (-1, "Expected `int` >= 0"),
        (2**63, "Expected `int` <= 9223372036854775807"),
    ],
)
def test_bad_order_numbers_are_rejected(value: object, reason: str) -> None:
    """orderNo must be a JSON integer in 0..int64."""
    error = rejection(msgspec.json.encode(erp(orderNo=value)))
    assert (error.reason, error.path) == (reason, "$.orderNo")


def test_order_number_zero_is_accepted() -> None:
    """0 is a valid order number."""
    assert judge_one(erp(orderNo=0)).number == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-10-01T00:04:29.045Z", T0),
        ("2025-10-01T00:04:29.045+00:00", T0),
        ("2025-10-01T02:04:29.045+02:00", T0),
        ("2025-10-01T00:04:29.045", T0),
        ("2025-10-01T00:04:29.045999+00:00", T0.replace(microsecond=45000)),
        ("2025-10-01T00:04:29.045089+00:00", T0),
    ],
)
def test_dates_become_utc_milliseconds(text: str, expected: datetime) -> None:
    """Any offset is converted to UTC, no offset means UTC, microseconds are cut to ms."""
    assert judge_one(erp(lastUpdateDate=text)).updatedAt == expected


offsets = st.builds(timezone, st.timedeltas(timedelta(hours=-23), timedelta(hours=23)))


@given(st.datetimes(timezones=st.none() | st.just(UTC) | offsets))
def test_normalised_date_is_utc_cut_to_milliseconds(value: datetime) -> None:
    """The fast path gives what converting and replacing would: UTC itself, whole ms."""
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value
    try:
        expected = aware.astimezone(UTC)
    except OverflowError:
        with pytest.raises(OverflowError):
            normalise_date(value)
        return
    result = normalise_date(value)
    assert result == expected.replace(microsecond=expected.microsecond // 1000 * 1000)
    assert result.tzinfo is UTC


@pytest.mark.parametrize(
    "text", ["not-a-date", "2025/11/01", "2025-13-01T00:00:00Z", "", "2025-10-01"]
)
def test_bad_dates_are_rejected(text: str) -> None:
    """Malformed, impossible, empty and date-only values are refused at their path."""
    error = rejection(msgspec.json.encode(erp(creationDate=text)))
    assert error.path == "$.creationDate"
    assert "datetime" in error.reason


@pytest.mark.parametrize("field", ["creationDate", "lastUpdateDate", "summary", "isDone"])
def test_null_where_required_is_rejected(field: str) -> None:
    """null is not a value for a required field."""
    error = rejection(msgspec.json.encode(erp(**{field: None})))
    assert error.path == f"$.{field}"
    assert "got `null`" in error.reason


def test_missing_field_is_named() -> None:
    """A missing field is reported with its name and path."""
    order = erp()
    del order["creationDate"]
    error = rejection(msgspec.json.encode(order))
    assert (error.reason, error.path) == ("missing required field `creationDate`", "$.creationDate")


@pytest.mark.parametrize("flag", FLAGS)
@pytest.mark.parametrize("value", ["false", 0, None])
def test_flags_must_be_booleans(flag: str, value: object) -> None:
    """ "false", 0 and null are not booleans."""
    error = rejection(msgspec.json.encode(erp(**{flag: value})))
    assert error.path == f"$.{flag}"


def test_summary_text_is_kept_intact() -> None:
    """Emoji, quotes, HTML and a NUL character survive untouched."""
    summary = 'Pump 🚰 "north" <b>&amp;</b> \x00 end'
    order = judge_one(erp(summary=summary))
    assert order.title == order.description == summary


def test_summary_too_large_for_one_mongodb_document_is_rejected() -> None:
    """A summary over 4 MiB cannot be stored twice in a 16 MB document: refused, not stalled."""
    error = rejection(msgspec.json.encode(erp(summary="é" * (2 * 2**20 + 1))))
    assert error.path == "$.summary" and error.reason.startswith(
        "summary too long: 4,194,306 bytes"
    )


def test_unknown_keys_are_ignored() -> None:
    """Keys outside the contract do not matter."""
    assert judge_one(erp(extra={"nested": [1, 2]}, plant="A")).number == 1


def test_byte_order_mark_is_tolerated() -> None:
    """A leading UTF-8 BOM is skipped."""
    verdict = judge_erp_file(b"\xef\xbb\xbf" + msgspec.json.encode(erp()))
    assert [o.number for o in verdict.orders] == [1]


@pytest.mark.parametrize(
    ("data", "kind", "reason"),
    [
        (b"", MalformedFile, "empty file"),
        (b"  \n ", MalformedFile, "empty file"),
        (b'{"orderNo": 1', MalformedFile, "not valid JSON: Input data was truncated"),
        (b'{"summary": "\xff"}', MalformedFile, "not valid UTF-8"),
        (b"NaN", MalformedFile, "not valid JSON"),
        (b"42", InvalidOrder, "expected a JSON object or array, got a number"),
        (b'"text"', InvalidOrder, "expected a JSON object or array, got a string"),
        (b"null", InvalidOrder, "expected a JSON object or array, got null"),
    ],
)
def test_whole_file_problems(data: bytes, kind: type[Exception], reason: str) -> None:
    """Files that are not one JSON object or array say precisely why."""
    error = rejection(data)
    assert isinstance(error, kind)
    assert error.reason.startswith(reason)


def test_invalid_utf8_in_an_ignored_key_is_still_refused() -> None:
    """Bytes that are not UTF-8 hide in an unknown key (found by the fuzzer): refused."""
    data = msgspec.json.encode(erp() | {"Xkey": 1}).replace(b"X", b"\x80")
    error = rejection(data)
    assert isinstance(error, MalformedFile)
    offset = data.index(b"\x80")
    assert error.reason == f"not valid UTF-8: byte {offset} (invalid start byte)"


def test_large_files_are_checked_for_utf8_across_chunks() -> None:
    """Over 1 MiB the check goes in steps: a character may straddle one; offsets stay true."""
    head = b'[{"x": "' + b"a" * (2**20 - 9)  # the next character straddles the 1 MiB step
    good = head + "€".encode() + b'"}]'
    assert judge_erp_file(good).rejected[0].path == "$[0].orderNo"  # decoded: judged as JSON
    bad = head + b"a" * 100 + b"\xff" + b'"}]'
    error = rejection(bad)
    offset = bad.index(b"\xff")
    assert error.reason == f"not valid UTF-8: byte {offset} (invalid start byte)"


def test_batch_is_judged_element_by_element() -> None:
    """Good elements are kept; bad ones are reported with their index and path."""
    batch = [erp(orderNo=1), erp(orderNo="2"), 7, erp(orderNo=3, isDone=True, isPending=True)]
    verdict = judge_erp_file(msgspec.json.encode(batch))
    assert [o.number for o in verdict.orders] == [1]
    assert [(r.index, r.path) for r in verdict.rejected] == [
        (1, "$[1].orderNo"),
        (2, "$[2]"),
        (3, "$[3]"),
    ]
    assert msgspec.json.decode(b"".join(verdict.rejected_chunks())) == batch[1:]


def test_empty_batch_is_zero_orders() -> None:
    """[] is a batch of nothing, not an error."""
    verdict = judge_erp_file(b"[]")
    assert (verdict.orders, verdict.rejected, verdict.is_batch) == ([], [], True)


@pytest.mark.parametrize(
    ("status", "flag"),
    [
        ("pending", "isPending"),
        ("completed", "isDone"),
        ("on_hold", "isOnHold"),
        ("cancelled", "isCanceled"),
        ("in_progress", None),
        ("created", None),
    ],
)
def test_each_status_back_to_flags(status: str, flag: str | None) -> None:
    """Every status sets exactly its flag; in_progress and created set none."""
    order = msgspec.to_builtins(tracos_to_erp(tracos(status=status)))
    assert [f for f in FLAGS if order[f]] == ([flag] if flag else [])


def test_deleted_goes_back_with_its_date() -> None:
    """deleted/deletedAt → isDeleted/deletedDate; dates with offset and microseconds."""
    order = tracos_to_erp(tracos(deleted=True, deletedAt=T0, status="completed"))
    assert (order.is_deleted, order.is_done, order.deleted_date) == (
        True,
        True,
        "2025-10-01T00:04:29.045000+00:00",
    )


def test_legacy_deleted_status() -> None:
    """status "deleted" means deleted: true, with no status flag."""
    order = tracos_to_erp(tracos(status="deleted"))
    assert order.is_deleted and order.deleted_date == order.last_update_date
    assert not any([order.is_canceled, order.is_done, order.is_on_hold, order.is_pending])


def test_undeleted_has_no_deleted_date() -> None:
    """Not deleted → deletedDate null even if an old deletedAt lingers."""
    assert tracos_to_erp(tracos(deleted=False)).deleted_date is None


def test_outbound_file_has_exactly_the_ten_keys_in_order() -> None:
    """The ERP file: ten keys, that order, dates as …+00:00."""
    data = msgspec.json.decode(encode_erp_file(tracos()))
    assert list(data) == [
        "orderNo", "isCanceled", "isDeleted", "isDone", "isOnHold", "isPending",
        "summary", "creationDate", "lastUpdateDate", "deletedDate",
    ]  # fmt: skip
    assert data["lastUpdateDate"] == "2025-10-01T01:04:29.045000+00:00"


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        (
            {"number": 1, "status": "archived", "title": "x", "createdAt": T0, "updatedAt": T0},
            "unknown status 'archived'",
        ),
        (
            {"number": 1, "status": "pending", "createdAt": T0, "updatedAt": T0},
            "missing required field `title`",
        ),
        (
            {"number": "1", "status": "pending", "title": "x", "createdAt": T0, "updatedAt": T0},
            "Expected `int`, got `str` at $.number",
        ),
        (
            {"number": 1, "status": "pending", "title": 5, "createdAt": T0, "updatedAt": T0},
            "Expected `str`, got `int` at $.title",
        ),
    ],
)
def test_unexportable_documents(doc: dict[str, Any], reason: str) -> None:
    """Unknown status, missing fields and wrong types cannot be exported, with the reason
    and the field it is about."""
    with pytest.raises(Unexportable, match=re.escape(reason)):
        CHALLENGE.render(read_tracos(doc))


@given(valid_erp_orders())
def test_round_trip_is_lossless(order: ErpWorkOrder) -> None:
    """ERP → TracOS → ERP gives back the same ten keys for every valid order."""
    upsert = erp_to_tracos(order)
    stored = msgspec.convert(msgspec.structs.asdict(upsert), TracosWorkOrder)
    back = msgspec.json.decode(encode_erp_file(stored))
    sent = msgspec.json.decode(msgspec.json.encode(order))
    sent.pop("isActive")
    for key in ("creationDate", "lastUpdateDate", "deletedDate"):
        sent[key] = sent[key] and datetime.fromisoformat(sent[key].replace("Z", "+00:00"))
        back[key] = back[key] and datetime.fromisoformat(back[key])
    assert back == sent


def test_offsets_other_than_utc_are_converted() -> None:
    """+05:30 becomes the same instant in UTC."""
    tz = timezone(timedelta(hours=5, minutes=30))
    when = datetime(2025, 10, 1, 5, 34, 29, 45000, tzinfo=tz)
    assert judge_one(erp(lastUpdateDate=when.isoformat())).updatedAt == T0
