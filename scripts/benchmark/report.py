"""The rows a scenario gives, the verdicts on them, and the printed table: each figure
beside its floor, the ratio between them, the target and whether it was met."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from .machine import BUSY, SYNC_SWING, Conditions, sync_swing

MB: Final = 1024 * 1024


@dataclass
class Row:
    scenario: str
    measure: str
    value: float
    unit: str
    target: str
    passed: bool | None  # None: no docs/spec.md §7 target for this figure
    floor: float | None = None
    ratio: float | None = None  # worker time / floor time
    note: str = ""


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Nearest rank."""
    ordered = sorted(samples)
    return ordered[max(1, math.ceil(len(ordered) * fraction)) - 1]


def throughput_row(
    scenario: str, count: int, unit: str, *, seconds: float, floor: float, ratio_limit: float
) -> Row:
    """``count`` in ``seconds`` beside the floor's; a ratio to the floor of at most
    ``ratio_limit`` passes (a ratio decides, never an absolute time: docs/performance.md)."""
    rate, ratio = count / seconds, seconds / floor
    target, passed = f"ratio <= {ratio_limit:g}", ratio <= ratio_limit
    return Row(scenario, "throughput", rate, f"{unit}/s", target, passed, count / floor, ratio)


def latency_row(
    scenario: str, samples: Sequence[float], q: float, limit: float | None, note: str
) -> Row:
    value = percentile(samples, q) * 1000
    target = f"<= {limit:.0f} ms" if limit is not None else ""
    passed = value <= limit if limit is not None else None
    return Row(scenario, f"p{q * 100:.0f} latency", value, "ms", target, passed, note=note)


def exit_status(rows: Sequence[Row], judged: bool) -> int:
    """0 all targets met (or the run too small to judge), 1 a target failed."""
    return 1 if judged and any(row.passed is False for row in rows) else 0


def cells(row: Row, judged: bool) -> list[str]:
    def number(value: float | None) -> str:
        return "" if value is None else f"{value:,.1f}" if value < 100 else f"{value:,.0f}"

    verdict = {True: "PASS", False: "FAIL", None: "info"}[row.passed] if judged else "-"
    ratio = "" if row.ratio is None else f"{row.ratio:.2f}"
    return [
        row.scenario,
        row.measure,
        f"{number(row.value)} {row.unit}",
        number(row.floor),
        ratio,
        row.target,
        verdict,
    ]


def table(rows: Sequence[Row], judged: bool) -> list[str]:
    header = ["scenario", "measure", "worker", "floor", "ratio", "target", "result"]
    lines = [header, *(cells(row, judged) for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    ]


def print_report(
    info: dict[str, Any],
    rows: Sequence[Row],
    conditions: Sequence[Conditions],
    scale: str,
    judged: bool,
) -> None:
    print(f"\ntracos-sync watcher benchmark ({scale} run, embedded store)")
    print(f"{info['date']}  {info['nproc']} x {info['cpu']}", end="  ")
    print(f"Python {info['python']}  Linux {info['kernel']}")
    load = " ".join(f"{n:.2f}" for n in info["load"])
    end = " ".join(f"{n:.2f}" for n in info.get("load_end", info["load"]))
    print(f"{info['memory_gib']:g} GiB, {info['filesystem']}, load {load} at the start,", end=" ")
    print(f"{end} at the end\n")
    print("\n".join(table(rows, judged)))
    print(
        "\nfloor: the bare work on the same data (scripts/benchmark/floors.py), started as the"
        " worker was: for a\nwhole `watcher once` process, floors.py in a process of its own;"
        " for a running worker, floors.py already\nstarted and taking the same drop (outbound"
        " and sweep: in the bench's own process); start-up: an\ninterpreter; console: the"
        " same worker with --no-console. ratio: worker time / floor time"
    )
    notes = dict.fromkeys(f"  {row.scenario}: {row.note}" for row in rows if row.note)
    print("\n".join(notes))
    print("\n".join(conditions_lines(conditions)))
    if not judged:
        print(f"\n{scale} run: too small for its ratios to mean anything; shown, not judged")
    sys.stdout.flush()


def conditions_lines(conditions: Sequence[Conditions]) -> list[str]:
    """Each scenario's conditions, then whether the disk's sync swung and whether the
    machine was shared: the two reasons a row here may not compare with another run's."""
    lines = [
        "\nconditions (load: 1-minute average as it began → as it ended; others: cores busy"
        " with other processes\nmeanwhile; sync: a 4 KiB write made durable, median of 7, as"
        " it began → as it ended, and the spread\nof those 14 probes, slowest / fastest)"
    ]
    width = max((len(c.scenario) for c in conditions), default=0)
    lines += [
        f"  {c.scenario.ljust(width)}  {c.seconds:6.1f} s  load {c.load:4.2f} → {c.load_after:4.2f}"
        f"  others {c.others:4.2f} cores  sync {c.sync_ms:5.2f} → {c.sync_after_ms:5.2f} ms"
        f" (x{c.sync_spread:.1f})"
        for c in conditions
    ]
    swing = sync_swing(conditions)
    swung = "swung: the rows whose floor syncs (outbound, sweep) may not compare"
    verdict = swung if swing > SYNC_SWING else "steady"
    lines.append(f"disk sync x{swing:.1f} between the slowest and the fastest: {verdict}")
    if conditions:
        widest = max(conditions, key=lambda c: c.sync_spread)
        lines.append(
            f"widest spread of one scenario's sync probes: x{widest.sync_spread:.1f}"
            f" ({widest.scenario})"
        )
    shared = [c.scenario for c in conditions if c.others > BUSY]
    if shared:
        lines.append(f"shared machine (others > {BUSY:g} cores) during: {', '.join(shared)}")
    return lines
