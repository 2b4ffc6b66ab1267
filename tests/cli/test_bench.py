"""The bench (scripts/benchmark) still runs: every scenario at a tiny scale, every row shown;
its report judges only the scales that mean something, and says when a run was disturbed."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmark.machine import Conditions
from benchmark.report import Row, cells, conditions_lines, exit_status
from benchmark.scales import SCALES

ROOT = Path(__file__).resolve().parents[2]
COLUMNS = ("scenario", "measure", "worker", "floor", "ratio", "target", "result")
SCENARIOS = (
    "start-up",
    "burst (once)",
    "burst",
    "batch",
    "steady",
    "outbound",
    "sweep",
    "journal",
    "console",
)
STARTED = ("status", "health", "once, nothing to do")


def expected_rows(sizes: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """Every row a run prints, in order: scenario, measure, whether it has a floor."""
    rows = [
        (f"start-up ({writes})", f"watcher {command}{versus}", True)
        for writes in ("PYTHONDONTWRITEBYTECODE=1", "bytecode writes allowed")
        for versus in ("", " / python -c pass")
        for command in STARTED
    ]
    rows += [("burst (once)", "throughput", True), ("burst", "throughput", True)]
    rows += [("idle", "CPU", False), ("batch", "throughput", True)]
    rows += [("batch (once)", "throughput", True), ("batch", "peak memory", False)]
    rows += [("steady", f"p{q} latency", False) for q in (50, 95, 99)]
    rows += [("outbound (other process)", f"p{q} latency", False) for q in (50, 95)]
    rows += [("outbound (in-process)", f"p{q} latency", False) for q in (50, 95)]
    rows.append(("outbound burst", "throughput", True))
    for count in (sizes["sweep_small"], sizes["sweep_large"]):
        rows += [
            (f"sweep {count:,}", "throughput", True),
            (f"sweep {count:,}", "peak memory", False),
        ]
    rows.append(("sweep growth", "time x… for size x…", True))
    rows += [("journal", "burst throughput", True), ("journal", "size after burst", False)]
    rows += [("journal", "batch throughput", True), ("journal", "batch peak memory", False)]
    rows += [("journal", f"steady p{q}", True) for q in (50, 99)]
    rows += [("console", "throughput", True), ("console", "worker CPU", True)]
    return rows


def shape(measure: str) -> str:
    """The measure with its figures left out (the sweep's growth names two)."""
    return re.sub(r"x[0-9.,]+", "x…", measure)


def printed_table(stdout: str) -> list[dict[str, str]]:
    """The report's table, cut into its columns where the header's titles start."""
    lines = stdout.splitlines()
    first = next(i for i, line in enumerate(lines) if line.split()[:2] == ["scenario", "measure"])
    starts = [lines[first].index(title) for title in COLUMNS]
    table = []
    for line in lines[first + 1 :]:
        if not line.strip():
            break
        cut = zip(starts, [*starts[1:], None], strict=True)
        table.append({title: line[a:b].strip() for title, (a, b) in zip(COLUMNS, cut, strict=True)})
    return table


@pytest.mark.system
@pytest.mark.timeout(180)
def test_a_tiny_run_shows_every_row_with_its_figure_and_floor(tmp_path: Path) -> None:
    """`bench --scale tiny` runs every scenario, exits 0 and prints each row's figure and
    floor, judging none."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "scripts")}
    command = [sys.executable, "-m", "benchmark", "--scale", "tiny", "--json", "run.json"]
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=170, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "run.json").read_text())
    expected = expected_rows(result["sizes"])
    rows = result["rows"]
    shown = [(row["scenario"], shape(row["measure"])) for row in rows]
    assert shown == [(scenario, measure) for scenario, measure, _ in expected]
    for row, (_, _, has_floor) in zip(rows, expected, strict=True):
        assert math.isfinite(row["value"]) and row["value"] >= 0, row
        assert (row["floor"] is not None) == has_floor, row
        assert row["floor"] is None or (math.isfinite(row["floor"]) and row["floor"] > 0), row
    table = printed_table(done.stdout)
    assert [(line["scenario"], shape(line["measure"])) for line in table] == shown
    for line, (_, _, has_floor) in zip(table, expected, strict=True):
        assert line["worker"][:1].isdigit(), line
        assert bool(line["floor"]) == has_floor, line
        assert line["result"] == "-", line  # a tiny run is shown, not judged
    assert [c["scenario"] for c in result["conditions"]] == list(SCENARIOS)
    assert "disk sync x" in done.stdout


def test_a_tiny_run_is_shown_not_judged() -> None:
    """A missed target fails a judged run (exit 1, FAIL); a tiny run shows it as '-', exit 0."""
    row = Row("burst", "throughput", 1_000.0, "files/s", "ratio <= 1.3", False, 2_000.0, 2.0)
    assert (exit_status([row], judged=True), cells(row, judged=True)[-1]) == (1, "FAIL")
    assert (exit_status([row], judged=False), cells(row, judged=False)[-1]) == (0, "-")


def test_tiny_is_the_smallest_scale() -> None:
    """Every count and duration of the tiny scale is at most the quick one's, below the full
    one's (rates are not sizes), and only the tiny scale goes unjudged."""
    tiny, quick, full = (vars(SCALES[name]) for name in ("tiny", "quick", "full"))
    sizes = [name for name in full if not name.endswith("_rate") and name != "judged"]
    assert all(tiny[name] <= quick[name] <= full[name] for name in sizes)
    assert all(tiny[name] < full[name] for name in sizes)
    assert [name for name, sizes in SCALES.items() if not sizes.judged] == ["tiny"]


def test_the_record_says_when_the_disk_sync_swung_and_who_shared_the_machine() -> None:
    """A sync probe more than twice as slow as the fastest is a swing; a scenario during
    which other processes kept more than a quarter of a core busy is named."""
    alone = [Conditions("burst", 1, 0.1, 0.0, 1.0, 1.2), Conditions("batch", 2, 0.1, 0.2, 1.8, 1.5)]
    shared = [*alone, Conditions("sweep", 9.0, 2.5, 1.3, 1.1, 4.0, 2.9, 6.5)]
    assert next(line for line in conditions_lines(alone) if "disk sync" in line).endswith(
        ": steady"
    )
    *_, sync, widest, sharing = conditions_lines(shared)
    assert sync.startswith("disk sync x4.0 ") and ": swung" in sync
    assert widest == "widest spread of one scenario's sync probes: x6.5 (sweep)"
    assert sharing == "shared machine (others > 0.25 cores) during: sweep"
    assert "load 2.50 → 2.90" in conditions_lines(shared)[-4]  # each scenario: before → after
