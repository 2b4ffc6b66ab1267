"""What the sync journal costs: the burst, the batch and the steady trickle with it off,
then on; the journal's size after the burst."""

from __future__ import annotations

import sqlite3
import statistics
from contextlib import closing
from pathlib import Path
from typing import Final

from ..report import MB, Row, percentile
from ..scales import Sizes
from ..workload import batch_payload
from .inbound import batch, burst, steady

JOURNAL_OFF: Final = {"HISTORY_DAYS": "0"}
OFF_ON: Final[tuple[tuple[str, dict[str, str]], ...]] = (("off", JOURNAL_OFF), ("on", {}))
JOURNAL_COST: Final = 0.15  # the most burst throughput the journal may cost
JOURNAL_TABLES: Final = ("journal", "journal_number", "journal_file")
STEADY_LIMITS: Final = ((0.5, 50.0), (0.99, 250.0))


def bench_journal(sizes: Sizes, root: Path) -> list[Row]:
    """The burst in alternating pairs, the median of each side deciding (runs here swing
    by more than the cost measured); then the batch and the steady trickle, off then on."""
    seconds: dict[str, list[float]] = {"off": [], "on": []}
    for run in range(sizes.journal_pairs):
        for name, env in OFF_ON:
            with burst(sizes, root / f"burst-{name}-{run}", env) as (taken, worker):
                store = worker.sqlite_path
            seconds[name].append(taken)
    off_s, on_s = statistics.median(seconds["off"]), statistics.median(seconds["on"])
    count = sizes.burst_files
    rate = Row("journal", "burst throughput", count / on_s, "files/s", "", None)
    rate.floor, rate.ratio = count / off_s, on_s / off_s
    rate.target = f">= {1 - JOURNAL_COST:.0%} of off"
    rate.passed = on_s * (1 - JOURNAL_COST) <= off_s
    rate.note = "each figure with the journal on; the floor column: the same with it off;"
    rate.note += f" burst: median of {sizes.journal_pairs} alternating off/on runs"
    return [rate, journal_size(store, count), *batch_rows(sizes, root), *steady_rows(sizes, root)]


def batch_rows(sizes: Sizes, root: Path) -> list[Row]:
    off, on = (
        batch(batch_payload(sizes.batch_orders), sizes, root / f"batch-{name}", env)
        for name, env in OFF_ON
    )
    orders = sizes.batch_orders
    rate = Row("journal", "batch throughput", orders / on.seconds, "orders/s", "", None)
    rate.floor, rate.ratio = orders / off.seconds, on.seconds / off.seconds
    limit = 2.5 * on.size + 100 * MB
    memory = Row(
        "journal", "batch peak memory", on.peak / MB, "MB", f"<= {limit / MB:.0f} MB", None
    )
    memory.passed = on.peak <= limit
    return [rate, memory]


def steady_rows(sizes: Sizes, root: Path) -> list[Row]:
    off, on = (steady(sizes, root / f"steady-{name}", env) for name, env in OFF_ON)
    rows = []
    for q, most in STEADY_LIMITS:
        value = percentile(on, q) * 1000
        row = Row("journal", f"steady p{q * 100:.0f}", value, "ms", f"<= {most:.0f} ms", None)
        row.floor, row.passed = percentile(off, q) * 1000, value <= most
        rows.append(row)
    return rows


def journal_size(store: Path, files: int) -> Row:
    """How big the journal is after a burst: its table and indexes, from SQLite's dbstat."""
    with closing(sqlite3.connect(store)) as db:
        entries = db.execute("SELECT count(*) FROM journal").fetchone()[0]
        places = ",".join("?" * len(JOURNAL_TABLES))
        query = f"SELECT sum(pgsize) FROM dbstat WHERE name IN ({places})"
        size = db.execute(query, JOURNAL_TABLES).fetchone()[0]
    row = Row("journal", "size after burst", size / MB, "MB", "", None)
    row.note = f"{entries:,} entries for {files:,} files ({size / entries:.0f} bytes each)"
    return row
