"""``watcher show`` streams its JSON array: batch by batch from the store, the same bytes as
formatting the whole list, in bounded memory, and whole while a worker exports
(docs/performance.md)."""

from __future__ import annotations

import io
import json
import random
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from tests.helpers.builders import tracos_doc
from tests.helpers.workers import cli, opened_store, peak_of_command, worker
from watcher.cli.samples import tracos_documents
from watcher.cli.store_commands import JsonArray
from watcher.core.settings import Settings

MB = 2**20
DOCS: list[dict[str, Any]] = [
    {"_id": "a1", "number": 1, "tags": ["x", {}], "nested": {"deep": [1, 2]}},
    {"_id": "b2", "number": 2, "title": 'quote " and \\ and é'},
    {},
    {"number": 4, "empty": []},
]


@pytest.mark.parametrize(
    "batches",
    [[], [[]], [DOCS[:1]], [DOCS[:2], [], DOCS[2:3], DOCS[3:]], [DOCS]],
    ids=["none", "one-empty", "one", "ragged", "whole"],
)
def test_the_array_is_what_formatting_the_whole_list_gives(
    batches: list[list[dict[str, Any]]],
) -> None:
    """Written batch by batch, byte for byte what ``show`` printed when it held the list."""
    out = io.BytesIO()
    array = JsonArray(out)
    for batch in batches:
        array.write(batch)
    array.close()
    whole = [doc for batch in batches for doc in batch]
    assert out.getvalue() == msgspec.json.format(msgspec.json.encode(whole), indent=2) + b"\n"
    assert json.loads(out.getvalue()) == whole


async def seed(settings: Settings, count: int) -> None:
    """``count`` TracOS documents numbered from 1, put in chunks (as TracOS would write)."""
    async with opened_store(settings) as store:
        for first in range(1, count + 1, 10_000):
            docs = tracos_documents(
                min(10_000, count + 1 - first), datetime.now(UTC), random.Random(first)
            )
            for offset, doc in enumerate(docs):
                doc["number"] = first + offset
            await store.put_documents(docs)


def peak_of_show(settings: Settings, out: Path) -> int:
    """``watcher show`` in a process of its own, its output in ``out``; its peak RSS."""
    return peak_of_command(settings, out, "show", timeout=120)


@pytest.mark.system
def test_show_holds_one_batch_not_the_whole_store(tmp_path: Path, settings: Settings) -> None:
    """60,000 documents (20 MB of JSON) cost ``show`` no more memory than 10 do, give or
    take a few batches; every document is printed once, by number."""
    small = msgspec.structs.replace(settings, state_dir=tmp_path / "small-state")
    anyio.run(seed, small, 10)
    baseline = peak_of_show(small, tmp_path / "small.json")
    anyio.run(seed, settings, 60_000)
    peak = peak_of_show(settings, tmp_path / "big.json")
    shown = json.loads((tmp_path / "big.json").read_bytes())
    assert [doc["number"] for doc in shown] == list(range(1, 60_001))
    assert peak - baseline < 20 * MB, f"{(peak - baseline) / MB:.0f} MB more than for 10 documents"


@pytest.mark.system
def test_show_is_whole_while_the_worker_exports(tmp_path: Path, settings: Settings) -> None:
    """Pages read while the worker marks documents between them: each number exactly once,
    in order, valid JSON, every time, until the worker has exported them all."""
    anyio.run(seed, settings, 1)  # the store exists before the worker starts
    synced: list[int] = []
    with worker(settings, tmp_path / "worker.log"):
        docs = [tracos_doc(n) for n in range(2, 3_002)]
        (tmp_path / "docs.json").write_text(json.dumps(docs, default=datetime.isoformat))
        cli(settings, "put", str(tmp_path / "docs.json"))
        end = time.monotonic() + 60
        while not synced or synced[-1] < 3_001:
            assert time.monotonic() < end, f"not all exported: {synced}"
            shown = json.loads(cli(settings, "show").stdout)
            assert [doc["number"] for doc in shown] == list(range(1, 3_002))
            synced.append(sum(doc.get("isSynced") is True for doc in shown))
    print(f"synced documents seen by each show: {synced}")
