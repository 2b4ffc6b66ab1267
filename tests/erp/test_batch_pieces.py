"""A batch judged a piece at a time gives the verdict of judging it whole (docs/guarantees.md).

Pieces of a few bytes put a cut between every pair of elements, inside strings and nested
values too: the verdict (orders, refusals, refused bytes, the error's words) must not move.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers.builders import erp, mutated_files
from watcher.core.errors import RejectedInput
from watcher.erp.formats.challenge.mapping import erp_to_tracos
from watcher.erp.formats.challenge.schema import ErpWorkOrder
from watcher.erp.formats.json import array as json_array
from watcher.erp.formats.json.strict import JsonOrders
from watcher.erp.port import LISTED

WHOLE = JsonOrders(ErpWorkOrder, erp_to_tracos, piece_bytes=2**30)
CUT = [JsonOrders(ErpWorkOrder, erp_to_tracos, piece_bytes=size) for size in (1, 7, 64)]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=6, alphabet=',[]{}"\\ ab'),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=8,
)


def outcome(judge: JsonOrders[ErpWorkOrder], data: bytes) -> object:
    """Everything a verdict (or a refusal) says, comparable."""
    try:
        verdict = judge.judge(data)
    except RejectedInput as exc:
        return type(exc).__name__, exc.reason, exc.path
    refused = json.loads(b"".join(verdict.rejected_chunks()))
    return verdict.orders, verdict.rejected, verdict.unlisted, refused


@pytest.mark.system  # hundreds of examples: seconds, not the inner loop
@settings(max_examples=300, deadline=None)
@given(st.lists(json_values, max_size=12), st.sampled_from([None, 0, 1]), st.integers(1, 40))
def test_pieces_hold_every_element_once_in_order(
    elements: list[Any], indent: int | None, size: int
) -> None:
    """Cut anywhere, the pieces' elements are the array's, in order; the last is the rest."""
    data = json.dumps(elements, indent=indent).encode()
    found: list[Any] = []
    for piece in json_array.pieces(data, 0, size):
        if isinstance(piece, json_array.Single):
            found.append(msgspec.json.decode(piece.element))
        else:
            found.extend(msgspec.json.decode(piece))
    assert found == elements


@pytest.mark.system
@settings(max_examples=400, deadline=None)
@given(st.one_of(mutated_files(), mutated_files(batch_size=12)))
def test_verdict_does_not_depend_on_where_the_batch_is_cut(data: bytes) -> None:
    """Damaged files and batches: the same verdict, or the same refusal word for word."""
    whole = outcome(WHOLE, data)
    for judge in CUT:
        assert outcome(judge, data) == whole


@pytest.mark.parametrize(
    "data",
    [b"[1,]", b"[1,  ]", b"[1,,2]", b"[,1]", b"[1 2]", b"[1, 2", b"[1,2]x", b'["a,b", "c]'],
)
def test_malformed_batch_is_worded_as_when_judged_whole(data: bytes) -> None:
    """The error names the same byte of the file, whatever the pieces."""
    whole = outcome(WHOLE, data)
    assert isinstance(whole, tuple) and whole[0] == "MalformedFile"
    assert [outcome(judge, data) for judge in CUT] == [whole] * len(CUT)


def test_an_element_larger_than_a_piece_is_judged_in_place() -> None:
    """A 3 MB order among small ones is handed out on its own, not copied into a piece."""
    big = erp(orderNo=2, summary="x" * 3_000_000)
    data = json.dumps([erp(orderNo=1), big, erp(orderNo=3), 7]).encode()
    pieces = list(json_array.pieces(data, 0, 2**20))
    assert [type(p).__name__ for p in pieces] == ["bytes", "Single", "bytes"]
    verdict = JsonOrders(ErpWorkOrder, erp_to_tracos).judge(data)
    assert [o.number for o in verdict.orders] == [1, 2, 3]
    assert [(r.index, r.path) for r in verdict.rejected] == [(3, "$[3]")]


def test_refusals_beyond_the_listed_ones_are_counted_and_kept() -> None:
    """10,000 bad elements: the first LISTED listed, all counted, all in the refused bytes."""
    data = json.dumps([erp(orderNo=1), *range(10_000)]).encode()
    verdict = CUT[2].judge(data)
    assert len(verdict.rejected) == LISTED and verdict.unlisted == 10_000 - LISTED
    assert verdict.rejected_count == 10_000
    assert verdict.rejected_reason() == "10000 of 10001 orders rejected"
    assert json.loads(b"".join(verdict.rejected_chunks())) == list(range(10_000))


def test_a_key_given_twice_is_found_even_when_other_orders_lack_it() -> None:
    """An optional key twice in one order, absent from the other: that order is refused."""
    twice = json.dumps(erp(orderNo=1))[:-1] + ', "isActive": true, "isActive": false}'
    data = f"[{twice}, {json.dumps(erp(orderNo=2))}]".encode()
    verdict = WHOLE.judge(data)
    assert [o.number for o in verdict.orders] == [2]
    assert [(r.path, r.reason) for r in verdict.rejected] == [
        ("$[0].isActive", "duplicate key `isActive`")
    ]
