"""ERP files in: a burst of one-order files (through ``watcher once``, then a running
worker, then idle), one big batch file and a steady trickle; each beside its floor."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from .. import floors
from ..report import MB, Row, latency_row, throughput_row
from ..scales import Sizes
from ..worker import (
    DEADLINE,
    TICKS,
    BenchError,
    WorkerProcess,
    count_files,
    drop,
    running_worker,
    stage,
    wait_until,
)
from ..workload import batch_payload, check_stored, erp_payloads

FLOORS: Final = str(Path(floors.__file__))  # run by path: its process imports no bench


def bench_once(sizes: Sizes, root: Path) -> list[Row]:
    """Scenario 1 through ``watcher once``: whole processes, interpreter start included."""
    count = sizes.burst_files
    worker = WorkerProcess(root / "worker")
    stage(worker.dir("inbound"), erp_payloads(count))
    seconds = worker.once()
    if worker.archived() != count:
        raise BenchError(f"watcher once archived {worker.archived()} of {count} files")
    check_stored(worker.sqlite_path, count)
    floor = floor_inbound_process(erp_payloads(count), root / "floor")
    row = throughput_row(
        "burst (once)", count, "files", seconds=seconds, floor=floor, ratio_limit=1.3
    )
    row.note = f"{count:,} one-order files waiting; watcher once, start to exit, beside"
    row.note += " floors.py inbound started the same way"
    return [row]


def bench_burst(sizes: Sizes, root: Path) -> list[Row]:
    """Scenario 1 (burst) and 6 (idle, on the same worker once the burst is done)."""
    count = sizes.burst_files
    with burst(sizes, root) as (taken, worker):
        idle = measure_idle(worker, sizes)
    floor = floor_inbound(stage(root / "floor-staging", erp_payloads(count)), root / "floor")
    row = throughput_row("burst", count, "files", seconds=taken, floor=floor, ratio_limit=1.5)
    row.note = f"{count:,} one-order files renamed in at once; until all archived (docs/spec.md §7:"
    row.note += " >= 5,000 files/s on a quiet machine; the ratio decides)"
    return [row, idle]


@contextmanager
def burst(
    sizes: Sizes, root: Path, env: dict[str, str] | None = None
) -> Iterator[tuple[float, WorkerProcess]]:
    """The seconds a running worker takes to archive the burst, and the worker, still running."""
    count = sizes.burst_files
    paths = stage(root / "staging", erp_payloads(count))
    with running_worker(root / "worker", env=env) as worker:
        time.sleep(sizes.warmup_seconds)  # let the file watch start
        start = drop(paths, worker.dir("inbound"))
        done = worker.archived_at(count, "the burst to be archived")
        check_stored(worker.sqlite_path, count)
        yield done - start, worker


def measure_idle(worker: WorkerProcess, sizes: Sizes) -> Row:
    time.sleep(sizes.warmup_seconds)
    before = worker.cpu_seconds()
    time.sleep(sizes.idle_seconds)
    percent = (worker.cpu_seconds() - before) / sizes.idle_seconds * 100
    note = f"{sizes.idle_seconds:g} s with nothing to do, after the burst and a warm-up;"
    note += f" utime + stime, resolution {100 / sizes.idle_seconds / TICKS:.1f} %"
    return Row("idle", "CPU", percent, "% of a core", "<= 1 %", percent <= 1.0, note=note)


def bench_batch(sizes: Sizes, root: Path) -> list[Row]:
    """Scenario 2: one file holding many orders, on a fresh worker (its own peak memory);
    then the same file through ``watcher once``, a whole process with its journal."""
    count, payload = sizes.batch_orders, batch_payload(sizes.batch_orders)
    run = batch(payload, sizes, root)
    (staged,) = stage(root / "floor-staging", [payload])
    floor = floor_inbound([staged], root / "floor", "follow-batch")
    rate = throughput_row(
        "batch", count, "orders", seconds=run.seconds, floor=floor, ratio_limit=2.0
    )
    rate.note = f"one file of {count:,} orders ({run.size / MB:.1f} MB); until archived;"
    rate.note += " floor: floors.py follow-batch, already started, the same drop"
    limit = 2.5 * run.size + 100 * MB
    memory = Row("batch", "peak memory", run.peak / MB, "MB", f"<= {limit / MB:.0f} MB", None)
    memory.passed = run.peak <= limit
    memory.note = f"worker VmHWM; {run.baseline / MB:.0f} MB before the file;"
    memory.note += " limit 2.5 x file + 100 MB"
    return [rate, batch_once(payload, sizes, root), memory]


def batch_once(payload: bytes, sizes: Sizes, root: Path) -> Row:
    """The batch file through ``watcher once`` (start-up, journal and all), beside
    ``floors.py batch`` started the same way: read, decode, one upsert into SQLite."""
    count = sizes.batch_orders
    worker = WorkerProcess(root / "once")
    stage(worker.dir("inbound"), [payload])
    seconds = worker.once()
    if worker.archived() != 1:
        raise BenchError(f"watcher once archived {worker.archived()} of 1 batch file")
    check_stored(worker.sqlite_path, count)
    stage(root / "once-floor" / "inbound", [payload])
    floor = floor_process("batch", root / "once-floor")
    row = throughput_row(
        "batch (once)", count, "orders", seconds=seconds, floor=floor, ratio_limit=2.5
    )
    row.note = "the same file through watcher once, start to exit (journal on), beside"
    row.note += " floors.py batch started the same way (interpreter start included)"
    return row


@dataclass(frozen=True)
class Batch:
    seconds: float  # from the drop to the file archived
    baseline: int  # the worker's peak memory before the file (bytes)
    peak: int  # and after it
    size: int  # the file's


def batch(payload: bytes, sizes: Sizes, root: Path, env: dict[str, str] | None = None) -> Batch:
    """One file of ``sizes.batch_orders`` orders dropped in on a fresh worker."""
    (path,) = stage(root / "staging", [payload])
    with running_worker(root / "worker", env=env) as worker:
        time.sleep(sizes.warmup_seconds)
        baseline = worker.peak_memory()
        start = drop([path], worker.dir("inbound"))
        done = worker.archived_at(1, "the batch to be archived")
        peak = worker.peak_memory()
        check_stored(worker.sqlite_path, sizes.batch_orders)
    return Batch(done - start, baseline, peak, len(payload))


def bench_steady(sizes: Sizes, root: Path) -> list[Row]:
    """Scenario 3: files renamed in at a steady rate; landed → seen in the archive."""
    latencies = steady(sizes, root)
    note = f"{sizes.steady_rate:.0f} files/s for {sizes.steady_seconds:g} s; archive polled"
    note += " every 5 ms, so it includes the archive step"
    targets = ((0.50, 50.0), (0.95, None), (0.99, 250.0))
    return [latency_row("steady", latencies, q, limit, note) for q, limit in targets]


def steady(sizes: Sizes, root: Path, env: dict[str, str] | None = None) -> list[float]:
    """Seconds from each file landing to it being seen in the archive."""
    count = int(sizes.steady_seconds * sizes.steady_rate)
    paths = stage(root / "staging", erp_payloads(count))
    with running_worker(root / "worker", env=env) as worker:
        time.sleep(sizes.warmup_seconds)
        return steady_latencies(paths, worker, sizes.steady_rate)


@dataclass
class SteadyRun:
    """Drops at the scheduled times and first sightings in the archive (perf_counter)."""

    paths: Sequence[Path]
    inbound: Path
    archive: Path
    rate: float
    landed: dict[str, float] = field(default_factory=dict)
    seen: dict[str, float] = field(default_factory=dict)

    def drop_due(self, start: float) -> None:
        due = min(len(self.paths), int((time.perf_counter() - start) * self.rate) + 1)
        for path in self.paths[len(self.landed) : due]:
            os.rename(path, self.inbound / path.name)
            self.landed[path.name] = time.perf_counter()

    def look(self) -> None:
        with os.scandir(self.archive) as entries:
            names = [entry.name for entry in entries]
        now = time.perf_counter()
        for name in names:
            self.seen.setdefault(name, now)


def steady_latencies(paths: Sequence[Path], worker: WorkerProcess, rate: float) -> list[float]:
    run = SteadyRun(paths, worker.dir("inbound"), worker.dir("archive"), rate)
    start = time.perf_counter()
    end = start + len(paths) / rate + DEADLINE
    while len(run.seen) < len(paths):
        if time.perf_counter() > end or count_files(worker.dir("failed")):
            missing = len(paths) - len(run.seen)
            raise BenchError(f"{missing} steady files not archived:\n{worker.log_tail()}")
        run.drop_due(start)
        run.look()
        time.sleep(0.005)
    return [run.seen[name] - run.landed[name] for name in run.landed]


def floor_inbound(paths: Sequence[Path], root: Path, mode: str = "follow") -> float:
    """List, read, decode, claim by rename, archive by rename; one bulk upsert: a process
    already started, taking the files as ``paths`` are renamed into its folder (the running
    worker's floor: the same drop, into the same kind of folder). ``mode`` ``follow-batch``:
    batch files (many orders each)."""
    command = [sys.executable, FLOORS, mode, str(root), str(len(paths))]
    process = subprocess.Popen(command)
    try:
        wait_until(lambda: (root / "ready").exists() or process.poll() is not None, "floor", 0.01)
        start = drop(paths, root / "inbound")
        if process.wait(timeout=DEADLINE) != 0:
            raise BenchError(f"the floor script exited with {process.returncode}")
        return time.time() - start
    finally:
        if process.poll() is None:
            process.kill()


def floor_inbound_process(payloads: Sequence[bytes], root: Path) -> float:
    """The same in a process of its own, interpreter start included (``watcher once``'s)."""
    stage(root / "inbound", payloads)
    return floor_process("inbound", root)


def floor_process(mode: str, root: Path) -> float:
    """``floors.py MODE ROOT`` as a process of its own, from spawn to exit."""
    command = [sys.executable, FLOORS, mode, str(root)]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - start
