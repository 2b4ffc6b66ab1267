"""Fuzzing the decode path (SPEC §2, §7): mutated valid files are refused or give valid orders."""

from __future__ import annotations

import json
import os
import tempfile
import time
from datetime import UTC, timedelta, timezone
from pathlib import Path
from typing import Any, get_args

import anyio
import msgspec
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from tests.builders import valid_erp_orders
from tests.conftest import make_settings
from tests.workers import names, reports
from watcher.app import build_worker
from watcher.core.tracos import INT64_MAX, OrderUpsert, Status
from watcher.erp.formats.challenge import FORMAT as CHALLENGE
from watcher.erp.port import FileVerdict
from watcher.errors import InvalidOrder, MalformedFile, RejectedInput
from watcher.settings import Settings

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
def mutated_documents(draw: st.DrawFn) -> bytes:
    """One order or a batch, spelled as JSON in one of several ways."""
    orders = draw(st.lists(mutated_order(), min_size=1, max_size=3))
    document = orders if draw(st.booleans()) else orders[0]
    indent = draw(st.sampled_from([None, 2]))
    return json.dumps(document, indent=indent, ensure_ascii=draw(st.booleans())).encode()


@st.composite
def mutated_files(draw: st.DrawFn) -> bytes:
    """Valid-looking JSON with byte-level damage: flips, cuts, insertions, deletions, copies."""
    data = bytearray(draw(mutated_documents()))
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


def assert_valid(order: OrderUpsert) -> None:
    assert type(order) is OrderUpsert
    assert msgspec.convert(msgspec.to_builtins(order), OrderUpsert) == order
    assert 0 <= order.number <= INT64_MAX
    assert order.status in get_args(Status)
    assert order.title == order.description
    assert order.deleted == (order.deletedAt is not None)
    for when in (order.createdAt, order.updatedAt, order.deletedAt):
        assert when is None or (when.tzinfo is UTC and when.microsecond % 1000 == 0)


def judged(data: bytes) -> FileVerdict | RejectedInput:
    """The verdict, or the refusal; any other exception escapes."""
    try:
        return CHALLENGE.judge(data)
    except (MalformedFile, InvalidOrder) as exc:
        return exc


@pytest.mark.system  # 500 examples: seconds, not the inner loop
@settings(max_examples=500, deadline=None)
@given(mutated_files())
def test_mutated_file_is_refused_or_gives_valid_orders(data: bytes) -> None:
    """The challenge format raises only MalformedFile/InvalidOrder; what it accepts is valid."""
    verdict = judged(data)
    if isinstance(verdict, RejectedInput):
        event(type(verdict).__name__)
        assert verdict.reason and verdict.path.startswith("$")
        return
    event(f"accepted: {bool(verdict.orders)} orders, {bool(verdict.rejected)} rejected")
    for order in verdict.orders:
        assert_valid(order)
    for rejection in verdict.rejected:
        assert rejection.reason and rejection.path.startswith(f"$[{rejection.index}]")


async def process(folders: Settings, files: list[bytes]) -> set[int]:
    """Drop ``files`` (long quiet, so none waits to settle), drain once; the stored numbers."""
    worker = build_worker(folders)
    await worker.open()
    try:
        quiet = time.time() - 60
        for index, data in enumerate(files):
            path = worker.settings.inbound_dir / f"{index}.json"
            path.write_bytes(data)
            os.utime(path, (quiet, quiet))
        await worker.inbound.drain()
        return {doc["number"] for doc in await worker.store.find()}
    finally:
        await worker.close()


@pytest.mark.system
@settings(max_examples=25, deadline=None)
@given(st.lists(mutated_files(), min_size=1, max_size=4))
def test_every_mutated_file_ends_stored_or_quarantined(files: list[bytes]) -> None:
    """Through the inbound pipeline each file is archived with its orders stored, or failed."""
    with tempfile.TemporaryDirectory() as temp:
        folders = make_settings(Path(temp))
        stored = anyio.run(process, folders, files)
        found = reports(folders)
        assert names(folders.inbound_dir) == []
        for index, data in enumerate(files):
            name = f"{index}.json"
            if name in found and "rejected" not in found[name]:
                event("quarantined")
                assert (folders.failed_dir / name).read_bytes() == data
                assert not (folders.archive_dir / name).exists()
                continue
            event("archived")
            assert (folders.archive_dir / name).read_bytes() == data
            verdict = CHALLENGE.judge(data)
            assert {order.number for order in verdict.orders} <= stored
            assert len(found[name]["rejected"] if name in found else []) == len(verdict.rejected)
