"""A first start beside many unsynced documents: ``watcher once`` exports them all, at two
sizes; its peak memory, and how its time grows beside how its floor's grows."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Final

import anyio

from .. import floors
from ..report import MB, Row
from ..scales import Sizes
from ..worker import BenchError, count_files, folder_env, launched
from ..workload import seed_unsynced, store_counts, tracos_docs
from .outbound import export_floor

SWEEP_MEMORY_MB: Final = 300
SWEEP_BATCH: Final = 1_000  # the worker's batch (OUTBOUND_BATCH_SIZE's default)
GROWTH_LIMIT: Final = 1.3  # the worker's growth / the floor's


def bench_sweep(sizes: Sizes, root: Path) -> list[Row]:
    """Scenario 5: a first start beside many unsynced documents: ``watcher once`` exports
    them all, streamed from the store in batches; its peak memory, and how its time grows
    beside how the floor's grows (creating files costs more once a file system holds
    many new ones: the floor shows what is the file system's and what is ours)."""
    timed, floor, rows = {}, {}, []
    for count in (sizes.sweep_small, sizes.sweep_large):
        seconds, peak = sweep_once(count, root / f"sweep-{count}")
        shutil.rmtree(root / f"sweep-{count}")  # a million files: not kept for the next run
        floor[count] = min(floor_sweep(count, root / f"floor-{count}") for _ in range(2))
        timed[count] = seconds
        rate = Row(f"sweep {count:,}", "throughput", count / seconds, "orders/s", "", None)
        rate.floor, rate.ratio = count / floor[count], seconds / floor[count]
        rate.note = (
            f"`watcher once` over {count:,} unsynced documents; until all exported and marked"
        )
        memory = Row(f"sweep {count:,}", "peak memory", peak / MB, "MB", "", None)
        memory.target, memory.passed = f"<= {SWEEP_MEMORY_MB} MB", peak <= SWEEP_MEMORY_MB * MB
        memory.note = rate.note
        rows += [rate, memory]
    return [*rows, growth_row(sizes.sweep_small, sizes.sweep_large, timed, floor)]


def growth_row(small: int, large: int, timed: dict[int, float], floor: dict[int, float]) -> Row:
    """How the worker's time grows from ``small`` to ``large``, over how the floor's does."""
    worker_growth = timed[large] / timed[small]
    floor_growth = floor[large] / floor[small]
    growth = worker_growth / floor_growth
    row = Row(
        "sweep growth",
        f"time x{worker_growth:.1f} for size x{large / small:.0f}",
        growth,
        "x the floor's",
        f"<= {GROWTH_LIMIT}",
        growth <= GROWTH_LIMIT,
        floor=floor_growth,
        ratio=growth,
    )
    row.note = (
        f"{small:,} → {large:,} documents: the worker's time grew x{worker_growth:.1f}"
        f" ({worker_growth / (large / small):.2f} x linear), the floor's x{floor_growth:.1f}"
        f" ({floor_growth / (large / small):.2f} x linear); the ratio of the two decides"
    )
    return row


def sweep_once(count: int, root: Path) -> tuple[float, int]:
    """``watcher once`` over ``count`` unsynced documents: every one exported and marked."""
    root.mkdir(parents=True)
    anyio.run(seed_unsynced, root / "state" / "tracos.sqlite3", count)
    env = folder_env(root)
    seconds, peak = launched(("-m", "watcher", "once"), env, root, root / "once.log")
    exported = count_files(root / "outbound")
    unsynced = anyio.run(store_counts, root / "state" / "tracos.sqlite3")[1]
    if exported != count or unsynced:
        raise BenchError(f"sweep of {count:,}: {exported:,} files, {unsynced:,} still unsynced")
    return seconds, peak


def floor_sweep(count: int, root: Path) -> float:
    """The sweep's floor: the same number of files through ``floors.outbound``, a batch of
    ``SWEEP_BATCH`` at a time, into one folder (what a million new files cost the file
    system, whoever writes them); the documents are made outside the time, and the files
    removed after it. The file system's speed swings between runs (a floor of 100,000
    took 5.6 s in one run and 13.6 s in the next), so the benchmark takes the best of two."""
    folder = root / "outbound"
    folder.mkdir(parents=True)
    db = floors.FloorDb(root / "floor.sqlite3")
    db.add_unsynced(range(1, count + 1))
    seconds = 0.0
    for first in range(1, count + 1, SWEEP_BATCH):
        batch = tracos_docs(min(SWEEP_BATCH, count + 1 - first), first)
        seconds += export_floor(batch, folder, db)
    db.db.close()
    shutil.rmtree(root)
    return seconds
