"""Memory and report size stay bounded whatever a batch holds (docs/spec.md §7).

Each case runs ``watcher once`` in a process of its own and reads that process's peak
resident memory from the kernel (``wait4``'s rusage). A small launcher process starts it:
the kernel counts what a process had before it ran ``exec`` too, and a worker forked from
the test process would start out with the test process's size.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.stores import make_settings
from tests.helpers.workers import names, peak_of_command, reports, stored_docs
from watcher.core.settings import Settings
from watcher.erp.port import LISTED

pytestmark = pytest.mark.system
MB = 2**20
ORDER = (
    '{"orderNo":%d,"isCanceled":false,"isDeleted":false,"isDone":true,"isOnHold":false,'
    '"isPending":false,"summary":"Work order #%d","creationDate":"2026-11-03T01:09:53.451+00:00",'
    '"lastUpdateDate":"2026-11-03T02:09:53.456+00:00"}'
)


def peak_of_once(settings: Settings, log: Path) -> int:
    """Run ``watcher once`` on these folders; its exit must be 0; its peak RSS in bytes."""
    return peak_of_command(settings, log, "once", timeout=300)


def limit(size: int) -> float:
    """docs/spec.md §7: peak memory ≤ 2.5 x the file size + 100 MB."""
    return 2.5 * size + 100 * MB


def test_batch_of_a_million_junk_elements(tmp_path: Path) -> None:
    """A 2 MB ``[0,0,0,…]``: bounded memory, a report listing the first few and counting
    the rest, every element in the rejected file, the file archived."""
    settings = make_settings(tmp_path, settle_seconds=0.1)
    data = b"[" + b",".join([b"0"] * 1_000_000) + b"]"
    settings.inbound_dir.mkdir(parents=True)
    (settings.inbound_dir / "junk.json").write_bytes(data)
    peak = peak_of_once(settings, tmp_path / "once.log")
    assert peak <= limit(len(data)), f"{peak / MB:.0f} MB for a {len(data) / MB:.1f} MB file"
    report_file = settings.failed_dir / "junk.rejected.json.error.json"
    assert report_file.stat().st_size < 64 * 1024
    report = reports(settings)["junk.json"]
    assert report["reason"] == (
        f"1000000 of 1000000 orders rejected (the first {LISTED} are listed)"
    )
    assert len(report["rejected"]) == LISTED and report["unlisted"] == 1_000_000 - LISTED
    assert report["rejected"][-1] == {
        "index": LISTED - 1,
        "path": f"$[{LISTED - 1}]",
        "reason": "Expected `object`, got `int`",
    }
    assert json.loads((settings.failed_dir / "junk.rejected.json").read_bytes()) == [0] * 1_000_000
    assert names(settings.archive_dir) == ["junk.json"]


def test_batch_of_bad_orders_with_huge_reasons(tmp_path: Path) -> None:
    """Orders refused for a value they quote (an enum of 10 KB): each reason is cut short,
    the report stays small, memory stays within the bound."""
    settings = make_settings(tmp_path, settle_seconds=0.1, erp_format="status")
    bad = '{"orderNo":1,"status":"%s","summary":"s","creationDate":"2025-01-01T00:00:00Z",'
    bad += '"lastUpdateDate":"2025-01-01T00:00:00Z"}'
    data = ("[" + ",".join([bad % ("X" * 10_000)] * 500) + "]").encode()
    settings.inbound_dir.mkdir(parents=True)
    (settings.inbound_dir / "enums.json").write_bytes(data)
    peak = peak_of_once(settings, tmp_path / "once.log")
    assert peak <= limit(len(data))
    report = reports(settings)["enums.json"]
    assert len(report["rejected"]) == LISTED and report["unlisted"] == 500 - LISTED
    assert all(len(r["reason"]) <= 300 for r in report["rejected"])
    assert (settings.failed_dir / "enums.rejected.json.error.json").stat().st_size < 64 * 1024


@pytest.mark.anyio
async def test_memory_grows_at_most_two_and_a_half_times_a_batch(tmp_path: Path) -> None:
    """A batch of 270,000 valid orders (60 MB): the peak over an idle ``once`` stays within
    2.5 x the file, so the bound holds at every size (the 100 MB of docs/spec.md §7 are not needed
    to hold it). A million orders in 215 MB were measured by hand (docs/guarantees.md)."""
    idle = make_settings(tmp_path / "idle")
    baseline = peak_of_once(idle, tmp_path / "idle.log")
    settings = make_settings(tmp_path / "batch", settle_seconds=0.1)
    count = 270_000
    data = ("[" + ",".join(ORDER % (i, i) for i in range(1, count + 1)) + "]").encode()
    settings.inbound_dir.mkdir(parents=True)
    (settings.inbound_dir / "big.json").write_bytes(data)
    peak = peak_of_once(settings, tmp_path / "batch.log")
    grown = peak - baseline
    assert grown <= 2.5 * len(data), (
        f"{grown / MB:.0f} MB more than idle ({baseline / MB:.0f} MB) for {len(data) / MB:.0f} MB"
    )
    assert len(await stored_docs(settings)) == count
    assert names(settings.archive_dir) == ["big.json"]
