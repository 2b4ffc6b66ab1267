"""Decoding the TracOS documents ``watcher put`` is given: strict, one reason naming the
document's index and field, and every other field kept as given (pure, no fixtures)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from watcher.core.errors import InvalidDocument
from watcher.core.tracos import decode_tracos

GOOD = {"number": 1, "status": "completed", "updatedAt": "2025-10-01T02:00:00+02:00"}


def refused(docs: object, need_version: bool = True) -> str:
    with pytest.raises(InvalidDocument) as caught:
        decode_tracos(json.dumps(docs).encode(), need_version)
    return str(caught.value)


def test_dates_become_utc_datetimes_and_other_fields_stay() -> None:
    """ISO strings with an offset become dates; unknown fields are written as given."""
    [doc] = decode_tracos(json.dumps([GOOD | {"deletedAt": None, "x": [1]}]).encode(), True)
    assert doc["updatedAt"] == datetime(2025, 10, 1, tzinfo=UTC)
    assert (doc["deletedAt"], doc["x"], doc["status"]) == (None, [1], "completed")


@pytest.mark.parametrize(
    ("docs", "reason"),
    [
        ({"number": 1}, "not a JSON array of TracOS documents: Expected `array`, got `object`"),
        ([GOOD, 7], "document 1: Expected `object`, got `int`"),
        ([GOOD, GOOD | {"number": 2, "updatedAt": "2025-10-01"}],
         "document 1, field updatedAt: Invalid RFC3339 encoded datetime"),
        ([GOOD | {"createdAt": "2025-10-01T00:00:00"}],
         "document 0, field createdAt: Expected `datetime` with a timezone component"),
        ([GOOD | {"number": "1"}], "document 0, field number: Expected `int`, got `str`"),
        ([GOOD | {"number": -1}], "document 0, field number: Expected `int` >= 0"),
        ([{"title": "x"}], "document 0, field number: missing required field `number`"),
        ([GOOD | {"updatedAt": None}],
         "document 0, field updatedAt: Expected `datetime`, got `null`"),
        ([GOOD | {"isSynced": "true"}], "document 0, field isSynced: Expected `bool`, got `str`"),
        ([{"number": 4}], "document 0, field updatedAt: missing required field `updatedAt`"
                          " (newer wins compares it; --force needs none)"),
        ([GOOD, GOOD], "document 1, field number: number 1 is also document 0"),
    ],
    ids=["object", "not-object", "date-only", "no-offset", "str-number", "negative", "no-number",
         "null-date", "str-flag", "no-version", "twice"],
)  # fmt: skip
def test_a_bad_document_names_its_index_and_field(docs: object, reason: str) -> None:
    """Each way a document can be refused, said precisely."""
    assert refused(docs) == reason


def test_forced_puts_need_no_version() -> None:
    """With --force nothing compares versions: a document without updatedAt is fine."""
    assert decode_tracos(b'[{"number": 4}]', need_version=False) == [{"number": 4}]
