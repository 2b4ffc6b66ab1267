"""Fuzzing the decode path (docs/spec.md §2, §7): mutated valid files are refused or give
valid orders."""

from __future__ import annotations

import os
import tempfile
import time
from datetime import UTC
from pathlib import Path
from typing import get_args

import anyio
import msgspec
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from tests.helpers.builders import mutated_files
from tests.helpers.stores import make_settings
from tests.helpers.workers import names, reports
from watcher.app import build_worker
from watcher.core.errors import InvalidOrder, MalformedFile, RejectedInput
from watcher.core.settings import Settings
from watcher.core.tracos import INT64_MAX, OrderUpsert, Status
from watcher.erp.formats.challenge import FORMAT as CHALLENGE
from watcher.erp.port import FileVerdict


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
