"""One contract for every ERP format: each registered one, and the tests' own.

The format's own suite pins its table; this one pins what every JSON format must keep:
render → judge is a fixed point, wrong types, bad dates and duplicate keys are refused
with their paths, a batch is judged element by element, and the whole-file rules hold.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given

from tests.helpers import tiny_format
from tests.helpers.builders import T0, stored_orders, tracos
from watcher.core.errors import InvalidOrder, MalformedFile
from watcher.core.tracos import OrderUpsert, TracosWorkOrder
from watcher.erp.port import ErpFormat
from watcher.erp.registry import format_names, load_format

FORMATS = [*map(load_format, format_names()), tiny_format.FORMAT]
each_format = pytest.mark.parametrize("erp_format", FORMATS, ids=lambda f: f.name)
DELETED = tracos(deleted=True, deletedAt=T0, status="completed")


def applied(stored: TracosWorkOrder, upsert: OrderUpsert) -> TracosWorkOrder:
    """The stored order after the upsert, as a store would leave it."""
    return TracosWorkOrder(
        number=upsert.number,
        status=stored.status if upsert.status is None else upsert.status,
        title=upsert.title,
        createdAt=upsert.createdAt,
        updatedAt=upsert.updatedAt,
        deleted=upsert.deleted,
        deletedAt=upsert.deletedAt,
    )


def fields(erp_format: ErpFormat, order: TracosWorkOrder = DELETED) -> dict[str, Any]:
    """A valid order of this format as JSON builtins (its own rendering of ``order``)."""
    value = json.loads(erp_format.render(order).data)
    assert isinstance(value, dict)
    return value


def encode(pairs: list[tuple[str, Any]]) -> bytes:
    """A JSON object from key/value pairs, keeping a repeated key repeated."""
    return (
        b"{"
        + b",".join(json.dumps(k).encode() + b":" + json.dumps(v).encode() for k, v in pairs)
        + b"}"
    )


def refusal(erp_format: ErpFormat, data: bytes) -> InvalidOrder:
    with pytest.raises(InvalidOrder) as caught:
        erp_format.judge(data)
    return caught.value


@each_format
@given(order=stored_orders())
def test_render_then_judge_is_a_fixed_point(erp_format: ErpFormat, order: TracosWorkOrder) -> None:
    """What a format writes it reads back: the same number and version, and the stored
    order after that upsert renders to the same bytes."""
    file = erp_format.render(order)
    verdict = erp_format.judge(file.data)
    [upsert] = verdict.orders
    assert (upsert.number, upsert.updatedAt, list(verdict.rejected)) == (
        order.number,
        order.updatedAt,
        [],
    )
    again = erp_format.render(applied(order, upsert))
    assert again == file
    assert file.name.endswith(".json") and "/" not in file.name


@each_format
def test_every_key_of_the_wrong_type_is_refused_at_its_path(erp_format: ErpFormat) -> None:
    """An array where any key's value belongs is refused, at ``$.key``."""
    valid = fields(erp_format)
    for key in valid:
        error = refusal(erp_format, msgspec.json.encode(valid | {key: []}))
        assert error.path == f"$.{key}", key


@each_format
def test_every_date_must_be_a_date_time(erp_format: ErpFormat) -> None:
    """A date without a time (or no date at all) where a date-time belongs is refused."""
    valid = fields(erp_format)
    dated = [k for k, v in valid.items() if isinstance(v, str) and v.startswith("2025-")]
    assert dated, "every format carries at least the order's version date"
    for key in dated:
        for bad in ("2025-10-01", "not-a-date", "2025-13-01T00:00:00Z"):
            error = refusal(erp_format, msgspec.json.encode(valid | {key: bad}))
            assert (error.path, "datetime" in error.reason) == (f"$.{key}", True), (key, bad)


@each_format
def test_a_repeated_key_is_refused(erp_format: ErpFormat) -> None:
    """Two values for one key leave a guess: refused, naming the key."""
    valid = list(fields(erp_format).items())
    for key, value in valid:
        error = refusal(erp_format, encode([*valid, (key, value)]))
        assert (error.reason, error.path) == (f"duplicate key `{key}`", f"$.{key}")


@each_format
def test_a_batch_is_judged_element_by_element(erp_format: ErpFormat) -> None:
    """Good elements are kept; a bad one is refused with its index and path."""
    first, second = fields(erp_format, tracos(number=1)), fields(erp_format, tracos(number=2))
    key = next(iter(first))
    batch = [first, first | {key: []}, 7, second]
    verdict = erp_format.judge(msgspec.json.encode(batch))
    assert [o.number for o in verdict.orders] == [1, 2]
    assert [(r.index, r.path) for r in verdict.rejected] == [(1, f"$[1].{key}"), (2, "$[2]")]
    assert verdict.is_batch and erp_format.judge(b"[]").orders == []


@each_format
@pytest.mark.parametrize(
    ("data", "kind", "reason"),
    [
        (b"", MalformedFile, "empty file"),
        (b'{"a": 1', MalformedFile, "not valid JSON"),
        (b'{"summary": "\xff"}', MalformedFile, "not valid UTF-8"),
        (b"\xff\xfe{}", MalformedFile, "not UTF-8"),
        (b"42", InvalidOrder, "expected a JSON object or array, got a number"),
    ],
)
def test_whole_file_rules(erp_format: ErpFormat, data: bytes, kind: type, reason: str) -> None:
    """Files that are not one JSON object or array are refused with the same reasons."""
    with pytest.raises(kind, match=reason):
        erp_format.judge(data)


@each_format
def test_a_byte_order_mark_is_tolerated(erp_format: ErpFormat) -> None:
    """A leading UTF-8 BOM is skipped."""
    data = b"\xef\xbb\xbf" + erp_format.render(tracos()).data
    assert [o.number for o in erp_format.judge(data).orders] == [7]


def _order_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The one object definition a format's file schema is built on."""
    [definition] = schema["$defs"].values()
    assert isinstance(definition, dict)
    return definition


@each_format
def test_the_inbound_schema_requires_what_judge_requires(erp_format: ErpFormat) -> None:
    """Each key of a valid file: the schema requires it exactly when judge refuses its absence;
    a batch (an array of orders) is allowed too."""
    schema = erp_format.schema("inbound")
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert {
        "type": "array",
        "items": {"$ref": next(iter(schema["$defs"])).join(("#/$defs/", ""))},
    } in schema["anyOf"]
    order = _order_schema(schema)
    valid = fields(erp_format, tracos())
    assert set(order["properties"]) >= set(valid)
    for key in valid:
        without = msgspec.json.encode({k: v for k, v in valid.items() if k != key})
        try:
            erp_format.judge(without)
            refused = False
        except InvalidOrder:
            refused = True
        assert refused == (key in order["required"]), key


@each_format
def test_the_outbound_schema_is_the_rendered_file(erp_format: ErpFormat) -> None:
    """The outbound schema names exactly the keys a rendered file has, in order, all required."""
    order = _order_schema(erp_format.schema("outbound"))
    rendered = list(fields(erp_format))
    assert list(order["properties"]) == rendered == order["required"]
