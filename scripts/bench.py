"""Benchmark of the real worker against docs/spec.md §7, each throughput beside a floor from
this run.

Run ``./scripts/bench`` (full, a few minutes on 2 cores), ``./scripts/bench --quick``
(reduced sizes, under ~30 s), ``--json PATH`` to keep the results. The worker runs as
``python -m watcher run --no-console`` on the embedded store in temporary folders, so its
peak memory and CPU are its own; it is timed from outside, by watching its folders.
Scenarios: burst of one-order files (through ``watcher once``, then a running worker), one
big batch file, a steady trickle (latency),
TracOS writes → outbound files (latency, then a burst), idle CPU. Exit status: 0 all
targets met, 1 a target failed, 2 the benchmark itself could not run.
"""

from __future__ import annotations

import argparse
import compileall
import math
import os
import platform
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import anyio
import floor  # scripts/floor.py, beside this file
import msgspec

import watcher
from watcher.app import build_worker
from watcher.cli.samples import erp_orders, tracos_documents
from watcher.core.settings import Settings
from watcher.core.tracos import read_tracos
from watcher.erp.formats.challenge import FORMAT as CHALLENGE
from watcher.observe.heartbeat import read_worker_status
from watcher.store import Document
from watcher.store.sqlite import SqliteStore

MB: Final = 1024 * 1024
FOLDERS: Final = ("inbound", "outbound", "archive", "failed", "state")
DEADLINE: Final = 300.0  # no scenario may take longer than this
TICKS: Final = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """The benchmark itself could not run (worker died, timed out, lost a file)."""


@dataclass(frozen=True)
class Sizes:
    burst_files: int = 10_000
    batch_orders: int = 100_000
    steady_seconds: float = 20.0
    steady_rate: float = 100.0
    out_seconds: float = 10.0
    out_rate: float = 10.0
    out_burst: int = 10_000
    idle_seconds: float = 10.0
    warmup_seconds: float = 3.0
    startup_runs: int = 20
    sweep_small: int = 100_000
    sweep_large: int = 1_000_000
    journal_pairs: int = 3


QUICK: Final = Sizes(1_000, 10_000, 5.0, 100.0, 3.0, 10.0, 1_000, 3.0, 1.0, 7, 5_000, 50_000, 1)


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


# --- measuring helpers ---------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = "unknown"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Nearest rank."""
    ordered = sorted(samples)
    return ordered[max(1, math.ceil(len(ordered) * fraction)) - 1]


def count_files(folder: Path) -> int:
    """Visible files in ``folder`` (temporary ``.name.tmp`` files not counted)."""
    with os.scandir(folder) as entries:
        return sum(1 for entry in entries if not entry.name.startswith("."))


def archived(worker: WorkerProcess) -> int:
    """Files archived so far; a quarantined file means the benchmark's own data was refused."""
    if count_files(worker.dir("failed")):
        raise BenchError(f"the worker quarantined benchmark files:\n{worker.log_tail()}")
    return count_files(worker.dir("archive"))


def archived_at(worker: WorkerProcess, count: int, what: str) -> float:
    """When the ``count``-th file reached the archive (epoch s): its rename's ctime, so the
    figure does not depend on how often it is looked for, and the looks can be rare (a
    listing of 10,000 names costs ~10 ms, which would be taken from the worker)."""
    wait_until(lambda: archived(worker) >= count, what, 0.25)
    with os.scandir(worker.dir("archive")) as entries:
        return max(entry.stat(follow_symlinks=False).st_ctime for entry in entries)


def wait_until(condition: Callable[[], bool], what: str, interval: float) -> float:
    """Poll ``condition`` every ``interval`` s; the perf_counter time it first held."""
    end = time.perf_counter() + DEADLINE
    while not condition():
        if time.perf_counter() > end:
            raise BenchError(f"timed out waiting for {what}")
        time.sleep(interval)
    return time.perf_counter()


def erp_payloads(count: int) -> list[bytes]:
    """``count`` one-order ERP files like ``watcher seed`` writes (numbers 1..count)."""
    orders = erp_orders(count, datetime.now(UTC), random.Random(7))
    return [msgspec.json.encode(order) for order in orders]


def batch_payload(count: int) -> bytes:
    return msgspec.json.encode(erp_orders(count, datetime.now(UTC), random.Random(7)))


def stage(folder: Path, payloads: Sequence[bytes]) -> list[Path]:
    """Write the files where the worker does not look, ready to be renamed in."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{i}.json" for i in range(1, len(payloads) + 1)]
    for path, data in zip(paths, payloads, strict=True):
        path.write_bytes(data)
    return paths


def drop(paths: Sequence[Path], folder: Path) -> float:
    """Rename every staged file into ``folder`` as fast as possible; the start (epoch s)."""
    start = time.time()
    for path in paths:
        os.rename(path, folder / path.name)
    return start


def tracos_docs(count: int, first: int) -> list[Document]:
    """Unsynced TracOS documents numbered from ``first`` (no isSynced, like TracOS writes)."""
    docs = tracos_documents(count, datetime.now(UTC), random.Random(first))
    for offset, doc in enumerate(docs):
        doc["number"] = first + offset
    return docs


# --- the worker in its own process ---------------------------------------------------------


@dataclass
class WorkerProcess:
    """``watcher run`` on the embedded store in ``root``; stopped with SIGTERM, exit 0 checked."""

    root: Path
    process: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)  # more variables for the worker

    def dir(self, name: str) -> Path:
        return self.root / name

    @property
    def settings(self) -> Settings:
        return Settings(state_dir=self.dir("state"))

    @property
    def sqlite_path(self) -> Path:
        return self.dir("state") / "tracos.sqlite3"

    def environment(self, settle: float) -> dict[str, str]:
        env = {**os.environ, "MONGO_URI": "", "INBOUND_SETTLE_SECONDS": str(settle)}
        env.update({f"DATA_{name.upper()}_DIR": str(self.dir(name)) for name in FOLDERS})
        env.update(LOG_LEVEL="INFO", LOG_FORMAT="text", METRICS_PORT="", **self.env)
        return env

    def start(self, settle: float) -> None:
        command = [sys.executable, "-m", "watcher", "run", "--no-console"]
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "worker.log", "wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=self.root,
                env=self.environment(settle),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(self._ready, "the worker to start", 0.02)

    def once(self) -> float:
        """``watcher once`` in a process of its own, on the files already waiting; its time."""
        command = [sys.executable, "-m", "watcher", "once"]
        with open(self.root / "worker.log", "wb") as log:
            start = time.perf_counter()
            code = subprocess.run(
                command,
                check=False,
                cwd=self.root,
                env=self.environment(1.0),
                stdout=log,
                stderr=subprocess.STDOUT,
            ).returncode
            seconds = time.perf_counter() - start
        if code != 0:
            raise BenchError(f"watcher once exited with {code}:\n{self.log_tail()}")
        return seconds

    def _ready(self) -> bool:
        """Serving once its status file says it has reached its store."""
        if self._proc.poll() is not None:
            raise BenchError(f"the worker exited at start-up:\n{self.log_tail()}")
        status = read_worker_status(self.settings, self.pid)
        return status is not None and status.store_connected

    @property
    def _proc(self) -> subprocess.Popen[bytes]:
        if self.process is None:
            raise BenchError("the worker is not running")
        return self.process

    @property
    def pid(self) -> int:
        return self._proc.pid

    def log_tail(self) -> str:
        lines = (self.root / "worker.log").read_text(errors="replace").splitlines()
        return "\n".join(lines[-20:])

    def peak_memory(self) -> int:
        """VmHWM: the most resident memory the process has had, in bytes."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise BenchError("no VmHWM in /proc status")

    def cpu_seconds(self) -> float:
        """utime + stime so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        self._proc.send_signal(signal.SIGTERM)
        try:
            code = self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            raise BenchError("the worker did not stop within 30 s of SIGTERM") from None
        if code != 0:
            raise BenchError(f"the worker exited with {code}:\n{self.log_tail()}")


@contextmanager
def running_worker(
    root: Path, settle: float = 1.0, env: dict[str, str] | None = None
) -> Iterator[WorkerProcess]:
    """A started worker, stopped by SIGTERM at the end (killed if the benchmark fails)."""
    worker = WorkerProcess(root, env=env or {})
    try:
        worker.start(settle)
        yield worker
    except BaseException:
        worker.kill()
        raise
    worker.stop()


# --- floors: the bare work (floor.py), timed here ----------------------------------------


def floor_inbound(paths: Sequence[Path], root: Path) -> float:
    """List, read, decode, claim by rename, archive by rename; one bulk upsert: a process
    already started, taking the files as ``paths`` are renamed into its folder (the running
    worker's floor: the same drop, into the same kind of folder)."""
    command = [sys.executable, str(Path(floor.__file__)), "follow", str(root), str(len(paths))]
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
    command = [sys.executable, str(Path(floor.__file__)), "inbound", str(root)]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - start


def floor_batch(payload: bytes, root: Path) -> float:
    """Read and decode the batch file; one bulk upsert."""
    (path,) = stage(root, [payload])
    db = floor.FloorDb(root / "floor.sqlite3")
    start = time.perf_counter()
    floor.batch(path, db)
    return time.perf_counter() - start


def floor_outbound(docs: Sequence[Document], root: Path) -> float:
    """Translate; write each to a temp file, one sync of the data, rename each, fsync the
    folder once; one bulk mark."""
    folder = root / "outbound"
    folder.mkdir(parents=True)
    db = floor.FloorDb(root / "floor.sqlite3")
    db.add_unsynced([d["number"] for d in docs])
    return export_floor(docs, folder, db)


def export_floor(docs: Sequence[Document], folder: Path, db: floor.FloorDb) -> float:
    """The time to translate ``docs`` (read back as stored: dates as strings) and write
    them out through ``floor.outbound``."""
    stored = msgspec.json.decode(msgspec.json.encode(docs))
    start = time.perf_counter()
    files = [CHALLENGE.render(read_tracos(doc)) for doc in stored]
    floor.outbound([(file.name, file.data) for file in files], folder, db)
    return time.perf_counter() - start


def floor_sweep(count: int, root: Path) -> float:
    """The sweep's floor: the same number of files through ``floor.outbound``, a batch of
    ``SWEEP_BATCH`` at a time, into one folder (what a million new files cost the file
    system, whoever writes them); the documents are made outside the time, and the files
    removed after it. The file system's speed swings between runs (a floor of 100,000
    took 5.6 s in one run and 13.6 s in the next), so the benchmark takes the best of two."""
    folder = root / "outbound"
    folder.mkdir(parents=True)
    db = floor.FloorDb(root / "floor.sqlite3")
    db.add_unsynced(range(1, count + 1))
    seconds = 0.0
    for first in range(1, count + 1, SWEEP_BATCH):
        batch = tracos_docs(min(SWEEP_BATCH, count + 1 - first), first)
        seconds += export_floor(batch, folder, db)
    db.db.close()
    shutil.rmtree(root)
    return seconds


# --- scenarios ------------------------------------------------------------------------------


def throughput_row(
    scenario: str, count: int, unit: str, *, seconds: float, floor: float, ratio_limit: float
) -> Row:
    """``count`` in ``seconds`` beside the floor's; a ratio to the floor of at most
    ``ratio_limit`` passes (a ratio decides, never an absolute time: docs/performance.md)."""
    rate, ratio = count / seconds, seconds / floor
    target, passed = f"ratio <= {ratio_limit:g}", ratio <= ratio_limit
    return Row(scenario, "throughput", rate, f"{unit}/s", target, passed, count / floor, ratio)


def bench_burst(sizes: Sizes, root: Path) -> list[Row]:
    """Scenario 1 (burst) and 6 (idle, on the same worker once the burst is done)."""
    count = sizes.burst_files
    paths = stage(root / "staging", erp_payloads(count))
    with running_worker(root / "worker") as worker:
        time.sleep(sizes.warmup_seconds)  # let the file watch start
        start = drop(paths, worker.dir("inbound"))
        done = archived_at(worker, count, "the burst to be archived")
        check_stored(worker.sqlite_path, count)
        idle = measure_idle(worker, sizes)
    seconds = floor_inbound(stage(root / "floor-staging", erp_payloads(count)), root / "floor")
    row = throughput_row(
        "burst", count, "files", seconds=done - start, floor=seconds, ratio_limit=1.3
    )
    row.note = f"{count:,} one-order files renamed in at once; until all archived (SPEC: >= 5,000"
    row.note += " files/s on a quiet machine; the ratio decides)"
    return [row, idle]


def bench_once(sizes: Sizes, root: Path) -> list[Row]:
    """Scenario 1 through ``watcher once``: whole processes, interpreter start included."""
    count = sizes.burst_files
    worker = WorkerProcess(root / "worker")
    stage(worker.dir("inbound"), erp_payloads(count))
    seconds = worker.once()
    if archived(worker) != count:
        raise BenchError(f"watcher once archived {archived(worker)} of {count} files")
    check_stored(worker.sqlite_path, count)
    floor = floor_inbound_process(erp_payloads(count), root / "floor")
    row = throughput_row(
        "burst (once)", count, "files", seconds=seconds, floor=floor, ratio_limit=1.5
    )
    row.note = f"{count:,} one-order files waiting; watcher once, start to exit, beside"
    row.note += " floor.py inbound started the same way"
    return [row]


def check_stored(path: Path, expected: int) -> None:
    stored = anyio.run(store_counts, path)[0]
    if stored < expected:
        raise BenchError(f"only {stored} of {expected} orders are stored")


async def store_counts(path: Path) -> tuple[int, int]:
    store = SqliteStore(path)
    await store.open()
    try:
        return await store.counts()
    finally:
        await store.close()


def measure_idle(worker: WorkerProcess, sizes: Sizes) -> Row:
    time.sleep(sizes.warmup_seconds)
    before = worker.cpu_seconds()
    time.sleep(sizes.idle_seconds)
    percent = (worker.cpu_seconds() - before) / sizes.idle_seconds * 100
    note = f"{sizes.idle_seconds:.0f} s with nothing to do, after the burst and a warm-up;"
    note += f" utime + stime, resolution {100 / sizes.idle_seconds / TICKS:.1f} %"
    return Row("idle", "CPU", percent, "% of a core", "<= 1 %", percent <= 1.0, note=note)


def bench_batch(sizes: Sizes, root: Path) -> list[Row]:
    """Scenario 2: one file holding many orders, on a fresh worker (its own peak memory)."""
    count, payload = sizes.batch_orders, batch_payload(sizes.batch_orders)
    (path,) = stage(root / "staging", [payload])
    with running_worker(root / "worker") as worker:
        time.sleep(sizes.warmup_seconds)
        baseline = worker.peak_memory()
        start = drop([path], worker.dir("inbound"))
        done = archived_at(worker, 1, "the batch to be archived")
        peak = worker.peak_memory()
        check_stored(worker.sqlite_path, count)
    floor = floor_batch(payload, root / "floor")
    rate = throughput_row(
        "batch",
        count,
        "orders",
        seconds=done - start,
        floor=floor,
        ratio_limit=2.0,
    )
    rate.note = f"one file of {count:,} orders ({len(payload) / MB:.1f} MB); until archived"
    limit = 2.5 * len(payload) + 100 * MB
    memory = Row("batch", "peak memory", peak / MB, "MB", f"<= {limit / MB:.0f} MB", peak <= limit)
    memory.note = f"worker VmHWM; {baseline / MB:.0f} MB before the file; limit 2.5 x file + 100 MB"
    return [rate, memory]


JOURNAL_OFF: Final = {"HISTORY_DAYS": "0"}
OFF_ON: Final = (("off", JOURNAL_OFF), ("on", {}))
JOURNAL_COST: Final = 0.15  # the most burst throughput the journal may cost
JOURNAL_TABLES: Final = ("journal", "journal_number", "journal_file")
STEADY_LIMITS: Final = ((0.5, 50.0), (0.99, 250.0))


def bench_journal(sizes: Sizes, root: Path) -> list[Row]:
    """What the sync journal costs: burst, batch and steady with it off, then on; the
    burst in alternating pairs, the median of each side deciding (runs here swing by more
    than the cost measured)."""
    seconds: dict[str, list[float]] = {"off": [], "on": []}
    for run in range(sizes.journal_pairs):
        for name, env in OFF_ON:
            taken, store = journal_burst(sizes, root / f"burst-{name}-{run}", env)
            seconds[name].append(taken)
    off_s, on_s = statistics.median(seconds["off"]), statistics.median(seconds["on"])
    count = sizes.burst_files
    burst = Row("journal", "burst throughput", count / on_s, "files/s", "", None)
    burst.floor, burst.ratio = count / off_s, on_s / off_s
    burst.target = f">= {1 - JOURNAL_COST:.0%} of off"
    burst.passed = on_s * (1 - JOURNAL_COST) <= off_s
    burst.note = "each figure with the journal on; the floor column: the same with it off;"
    burst.note += f" burst: median of {sizes.journal_pairs} alternating off/on runs"
    (off_b, _, _), (on_b, peak, size) = (
        journal_batch(sizes, root / f"batch-{name}", env) for name, env in OFF_ON
    )
    orders = sizes.batch_orders
    batch = Row("journal", "batch throughput", orders / on_b, "orders/s", "", None)
    batch.floor, batch.ratio = orders / off_b, on_b / off_b
    limit = 2.5 * size + 100 * MB
    memory = Row("journal", "batch peak memory", peak / MB, "MB", f"<= {limit / MB:.0f} MB", None)
    memory.passed = peak <= limit
    off_l, on_l = (journal_steady(sizes, root / f"steady-{name}", env) for name, env in OFF_ON)
    steady = []
    for q, most in STEADY_LIMITS:
        value = percentile(on_l, q) * 1000
        row = Row("journal", f"steady p{q * 100:.0f}", value, "ms", f"<= {most:.0f} ms", None)
        row.floor, row.passed = percentile(off_l, q) * 1000, value <= most
        steady.append(row)
    return [burst, journal_size(store, count), batch, memory, *steady]


def journal_size(store: Path, files: int) -> Row:
    """How big the journal is after a burst: its table and indexes, from SQLite's dbstat."""
    with sqlite3.connect(store) as db:
        entries = db.execute("SELECT count(*) FROM journal").fetchone()[0]
        places = ",".join("?" * len(JOURNAL_TABLES))
        query = f"SELECT sum(pgsize) FROM dbstat WHERE name IN ({places})"
        size = db.execute(query, JOURNAL_TABLES).fetchone()[0]
    row = Row("journal", "size after burst", size / MB, "MB", "", None)
    row.note = f"{entries:,} entries for {files:,} files ({size / entries:.0f} bytes each)"
    return row


def journal_burst(sizes: Sizes, root: Path, env: dict[str, str]) -> tuple[float, Path]:
    """Seconds to archive the burst, and the store it went to."""
    count = sizes.burst_files
    paths = stage(root / "staging", erp_payloads(count))
    with running_worker(root / "worker", env=env) as worker:
        time.sleep(sizes.warmup_seconds)
        start = drop(paths, worker.dir("inbound"))
        done = archived_at(worker, count, "the burst to be archived")
    return done - start, worker.sqlite_path


def journal_batch(sizes: Sizes, root: Path, env: dict[str, str]) -> tuple[float, int, int]:
    """Seconds to archive one batch file, the worker's peak memory, and the file's size."""
    payload = batch_payload(sizes.batch_orders)
    (path,) = stage(root / "staging", [payload])
    with running_worker(root / "worker", env=env) as worker:
        time.sleep(sizes.warmup_seconds)
        start = drop([path], worker.dir("inbound"))
        done = archived_at(worker, 1, "the batch to be archived")
        peak = worker.peak_memory()
    return done - start, peak, len(payload)


def journal_steady(sizes: Sizes, root: Path, env: dict[str, str]) -> list[float]:
    count = int(sizes.steady_seconds * sizes.steady_rate)
    paths = stage(root / "staging", erp_payloads(count))
    with running_worker(root / "worker", env=env) as worker:
        time.sleep(sizes.warmup_seconds)
        return steady_latencies(paths, worker, sizes.steady_rate)


def bench_steady(sizes: Sizes, root: Path) -> list[Row]:
    """Scenario 3: files renamed in at a steady rate; landed → seen in the archive."""
    count = int(sizes.steady_seconds * sizes.steady_rate)
    paths = stage(root / "staging", erp_payloads(count))
    with running_worker(root / "worker") as worker:
        time.sleep(sizes.warmup_seconds)
        latencies = steady_latencies(paths, worker, sizes.steady_rate)
    note = f"{sizes.steady_rate:.0f} files/s for {sizes.steady_seconds:.0f} s; archive polled"
    note += " every 5 ms, so it includes the archive step"
    targets = ((0.50, 50.0), (0.95, None), (0.99, 250.0))
    return [latency_row("steady", latencies, q, limit, note) for q, limit in targets]


def latency_row(
    scenario: str, samples: Sequence[float], q: float, limit: float | None, note: str
) -> Row:
    value = percentile(samples, q) * 1000
    target = f"<= {limit:.0f} ms" if limit is not None else ""
    passed = value <= limit if limit is not None else None
    return Row(scenario, f"p{q * 100:.0f} latency", value, "ms", target, passed, note=note)


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


async def drop_documents(
    store: SqliteStore, docs: Sequence[Document], rate: float, outbound: Path
) -> list[float]:
    """Put one document at a time at ``rate``; commit → ``{number}.json`` appears."""
    pending: dict[Path, float] = {}
    latencies: list[float] = []
    start, end = time.perf_counter(), time.perf_counter() + len(docs) / rate + DEADLINE
    put = 0
    while put < len(docs) or pending:
        if time.perf_counter() > end:
            raise BenchError(f"{len(pending)} outbound files never appeared")
        if put < len(docs) and time.perf_counter() >= start + put / rate:
            await store.put_documents([docs[put]])
            pending[outbound / f"{docs[put]['number']}.json"] = time.perf_counter()
            put += 1
        for path in [p for p in pending if p.exists()]:
            latencies.append(time.perf_counter() - pending.pop(path))
        await anyio.sleep(0.002)
    return latencies


async def outbound_cross_process(
    path: Path, outbound: Path, docs: Sequence[Document], rate: float
) -> list[float]:
    store = SqliteStore(path)
    await store.open()
    try:
        return await drop_documents(store, docs, rate, outbound)
    finally:
        await store.close()


async def outbound_burst(path: Path, docs: Sequence[Document], outbound: Path) -> float:
    """Scenario 5: one put of many documents → all files exist and nothing is unsynced."""
    expected = count_files(outbound) + len(docs)
    store = SqliteStore(path)
    await store.open()
    try:
        await store.put_documents(docs)
        start = time.perf_counter()
        # the count first: the worker marks only once the files are durable, and a listing
        # of 10,000 names (~10 ms) every 20 ms would take a third of a core from it
        while (await store.counts())[1] or count_files(outbound) < expected:
            if time.perf_counter() > start + DEADLINE:
                raise BenchError("the outbound burst did not finish")
            await anyio.sleep(0.02)
        return time.perf_counter() - start
    finally:
        await store.close()


def bench_outbound(sizes: Sizes, root: Path) -> list[Row]:
    """Scenarios 4 (cross-process latency, then in-process) and 5 (outbound burst)."""
    docs = tracos_docs(int(sizes.out_seconds * sizes.out_rate), 1)
    burst = tracos_docs(sizes.out_burst, 1_000_000)
    with running_worker(root / "worker") as worker:
        time.sleep(sizes.warmup_seconds)
        outbound = worker.dir("outbound")
        latencies = anyio.run(
            outbound_cross_process, worker.sqlite_path, outbound, docs, sizes.out_rate
        )
        seconds = anyio.run(outbound_burst, worker.sqlite_path, burst, outbound)
    note = (
        "put_documents from this process; the worker notices by PRAGMA data_version (~200 ms poll)"
    )
    rows = [latency_row("outbound (other process)", latencies, q, None, note) for q in (0.5, 0.95)]
    inside, own = anyio.run(outbound_in_process, root / "inproc", docs, sizes)
    note = (
        f"Worker in this process, worker.store.put_documents; worker's own p50 {own * 1000:.0f} ms"
    )
    rows.append(latency_row("outbound (in-process)", inside, 0.5, 50.0, note))
    rows.append(latency_row("outbound (in-process)", inside, 0.95, None, note))
    floor = floor_outbound(burst, root / "floor")
    row = throughput_row(
        "outbound burst",
        len(burst),
        "orders",
        seconds=seconds,
        floor=floor,
        ratio_limit=1.5,
    )
    row.note = f"{len(burst):,} unsynced documents in one put; until all files exist and 0 unsynced"
    return [*rows, row]


async def outbound_in_process(
    root: Path, docs: Sequence[Document], sizes: Sizes
) -> tuple[list[float], float]:
    """The same drops into a ``Worker`` running in this process (the in-process wake-up)."""
    settings = Settings(
        inbound_dir=root / "inbound",
        outbound_dir=root / "outbound",
        archive_dir=root / "archive",
        failed_dir=root / "failed",
        state_dir=root / "state",
    )
    worker = build_worker(settings)
    await worker.open()
    stop = anyio.Event()
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker.run, stop)
            await anyio.sleep(sizes.warmup_seconds)
            assert isinstance(worker.store, SqliteStore)
            found = await drop_documents(worker.store, docs, sizes.out_rate, settings.outbound_dir)
            stop.set()
    finally:
        await worker.close()
    return found, percentile(list(worker.stats.latency_out), 0.5)


# --- start-up and the sweep: whole processes, as an operator (or the container) starts them ---

STARTUP_TARGET: Final = 3.0  # x the floor
FLOOR_COMMAND: Final = ("-c", "import msgspec, sqlite3")
SWEEP_MEMORY_MB: Final = 300
SWEEP_BATCH: Final = 1_000  # the worker's batch (OUTBOUND_BATCH_SIZE's default)
SWEEP_DEADLINE: Final = 3600.0  # a million files, each fsynced, on a slow disk
# Started by the benchmark, it starts the command and reports the command's own peak RSS
# (wait4): a process forked from this one would count the benchmark's memory too.
LAUNCHER: Final = """
import os, subprocess, sys
with open(sys.argv[1], "wb") as log:
    child = subprocess.Popen(sys.argv[2:], stdout=log, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(child.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss * 1024)
"""


def folder_env(root: Path) -> dict[str, str]:
    """The environment of a ``watcher`` command on the embedded store in ``root``."""
    env = {**os.environ, "MONGO_URI": "", "LOG_LEVEL": "INFO", "LOG_FORMAT": "text"}
    env.update({f"DATA_{name.upper()}_DIR": str(root / name) for name in FOLDERS})
    env["METRICS_PORT"] = ""
    return env


def started(args: Sequence[str], env: dict[str, str], cwd: Path) -> float:
    """Wall time of one process, from spawn to exit; it must exit 0."""
    begin = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *args], check=False, env=env, cwd=cwd, capture_output=True
    )
    seconds = time.perf_counter() - begin
    if done.returncode != 0:
        output = (done.stdout + done.stderr).decode(errors="replace")
        raise BenchError(f"{' '.join(args)} exited {done.returncode}:\n{output[-2000:]}")
    return seconds


def bench_startup(sizes: Sizes, root: Path) -> list[Row]:
    """Scenario 1: ``watcher status`` and ``watcher health`` on the embedded store (beside a
    running worker, so health reads a live status file and status a real store) against
    ``python -c "import msgspec, sqlite3"``, started the same way: same interpreter, folder
    and environment, interleaved, best of N; with PYTHONDONTWRITEBYTECODE=1 and without."""
    # As the install does (scripts/_uv.sh): a source edited since would be compiled again
    # by every run made with PYTHONDONTWRITEBYTECODE=1, and measured as start-up.
    compileall.compile_dir(Path(watcher.__file__).parent, quiet=1)
    with running_worker(root / "worker") as worker:
        anyio.run(seed_unsynced, worker.sqlite_path, 1_000)
        wait_until(lambda: count_files(worker.dir("outbound")) >= 1_000, "the seed exported", 0.05)
        rows = []
        for no_bytecode in (True, False):
            env = folder_env(worker.root)
            if no_bytecode:
                env["PYTHONDONTWRITEBYTECODE"] = "1"
            else:
                env.pop("PYTHONDONTWRITEBYTECODE", None)
            rows += startup_rows(env, worker.root, sizes.startup_runs, no_bytecode)
    return rows


def startup_rows(env: dict[str, str], cwd: Path, runs: int, no_bytecode: bool) -> list[Row]:
    commands = {"floor": FLOOR_COMMAND, "status": ("-m", "watcher", "status")}
    commands["health"] = ("-m", "watcher", "health")
    best = dict.fromkeys(commands, math.inf)
    for _ in range(runs):
        for name, args in commands.items():
            best[name] = min(best[name], started(args, env, cwd))
    floor, rows = best["floor"], []
    writes = "PYTHONDONTWRITEBYTECODE=1" if no_bytecode else "bytecode writes allowed"
    for name in ("status", "health"):
        ratio = best[name] / floor
        row = Row("start-up", f"watcher {name}", best[name] * 1000, "ms", "", None)
        row.floor, row.ratio = floor * 1000, ratio
        row.target, row.passed = f"ratio <= {STARTUP_TARGET:.1f}", ratio <= STARTUP_TARGET
        row.scenario = f"start-up ({writes})"
        row.note = (
            f'best of {runs}, interleaved with the floor `python -c "import msgspec, sqlite3"`'
            " (ms), same interpreter and environment; the embedded store, beside a running"
            " worker (1,000 documents; health reads its live status file)"
        )
        rows.append(row)
    return rows


async def seed_unsynced(path: Path, count: int) -> None:
    """``count`` unsynced TracOS documents, put in chunks as TracOS would write them."""
    chunk = 20_000
    store = SqliteStore(path)
    await store.open()
    try:
        for first in range(1, count + 1, chunk):
            await store.put_documents(tracos_docs(min(chunk, count + 1 - first), first))
    finally:
        await store.close()


def launched(args: Sequence[str], env: dict[str, str], cwd: Path, log: Path) -> tuple[float, int]:
    """Wall time and peak RSS (bytes) of one ``python ARGS`` process; it must exit 0."""
    command = [sys.executable, "-c", LAUNCHER, str(log), sys.executable, *args]
    begin = time.perf_counter()
    done = subprocess.run(
        command, check=False, env=env, cwd=cwd, capture_output=True, timeout=SWEEP_DEADLINE
    )
    seconds = time.perf_counter() - begin
    code, peak = map(int, done.stdout.split())
    if code != 0:
        raise BenchError(f"{' '.join(args)} exited {code}:\n{log.read_text()[-2000:]}")
    return seconds, peak


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


def bench_sweep(sizes: Sizes, root: Path) -> list[Row]:
    """Scenario 5: a first start beside many unsynced documents: ``watcher once`` exports
    them all, streamed from the store in batches; its peak memory, and how its time grows
    beside how the floor's grows (creating files costs more once a file system holds
    many new ones: the floor shows what is the file system's and what is ours)."""
    small, large = sizes.sweep_small, sizes.sweep_large
    timed, floors = {}, {}
    rows = []
    for count in (small, large):
        seconds, peak = sweep_once(count, root / f"sweep-{count}")
        shutil.rmtree(root / f"sweep-{count}")  # a million files: not kept for the next run
        floors[count] = min(floor_sweep(count, root / f"floor-{count}") for _ in range(2))
        timed[count] = seconds
        rate = Row(f"sweep {count:,}", "throughput", count / seconds, "orders/s", "", None)
        rate.floor, rate.ratio = count / floors[count], seconds / floors[count]
        rate.note = (
            f"`watcher once` over {count:,} unsynced documents; until all exported and marked"
        )
        memory = Row(f"sweep {count:,}", "peak memory", peak / MB, "MB", "", None)
        memory.target, memory.passed = f"<= {SWEEP_MEMORY_MB} MB", peak <= SWEEP_MEMORY_MB * MB
        memory.note = rate.note
        rows += [rate, memory]
    worker_growth = timed[large] / timed[small]
    floor_growth = floors[large] / floors[small]
    growth = worker_growth / floor_growth
    row = Row(
        "sweep growth",
        f"time x{worker_growth:.1f} for size x{large / small:.0f}",
        growth,
        "x the floor's",
        "<= 1.3",
        growth <= 1.3,
        floor=floor_growth,
        ratio=growth,
    )
    row.note = (
        f"{small:,} → {large:,} documents: the worker's time grew x{worker_growth:.1f}"
        f" ({worker_growth / (large / small):.2f} x linear), the floor's x{floor_growth:.1f}"
        f" ({floor_growth / (large / small):.2f} x linear); the ratio of the two decides"
    )
    return [*rows, row]


# --- report ---------------------------------------------------------------------------------


def cells(row: Row) -> list[str]:
    def number(value: float | None) -> str:
        return "" if value is None else f"{value:,.1f}" if value < 100 else f"{value:,.0f}"

    verdict = {True: "PASS", False: "FAIL", None: "info"}[row.passed]
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


def print_report(info: dict[str, Any], rows: Sequence[Row], quick: bool) -> None:
    print(f"\ntracos-sync watcher benchmark ({'quick' if quick else 'full'} run, embedded store)")
    print(f"{info['date']}  {info['nproc']} x {info['cpu']}", end="  ")
    print(f"Python {info['python']}  Linux {info['kernel']}\n")
    header = ["scenario", "measure", "worker", "floor", "ratio", "target", "result"]
    table = [header, *map(cells, rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for line in table:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )
    print(
        "\nfloor: the bare work on the same data (scripts/floor.py), in this process (for once:"
        " in a process\nof its own, started the same way); ratio: worker time / floor time"
    )
    notes = dict.fromkeys(f"  {row.scenario}: {row.note}" for row in rows if row.note)
    print("\n".join(notes), flush=True)


SCENARIOS: Final = {
    "start-up": bench_startup,
    "burst (once)": bench_once,
    "burst": bench_burst,
    "batch": bench_batch,
    "steady": bench_steady,
    "outbound": bench_outbound,
    "sweep": bench_sweep,
    "journal": bench_journal,
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="reduced sizes, a smoke check")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    parser.add_argument(
        "--only", action="append", choices=SCENARIOS, metavar="NAME", help="run only these"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    info, rows = machine(), []
    try:
        with tempfile.TemporaryDirectory(prefix="watcher-bench-") as temp:
            for name, scenario in SCENARIOS.items():
                if args.only and name not in args.only:
                    continue
                print(f"running {name} ...", file=sys.stderr, flush=True)
                rows.extend(scenario(sizes, Path(temp) / name))
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    print_report(info, rows, args.quick)
    if args.json:
        result = {"machine": info, "sizes": asdict(sizes), "rows": [asdict(r) for r in rows]}
        args.json.write_bytes(msgspec.json.format(msgspec.json.encode(result), indent=2))
    return 1 if any(row.passed is False for row in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
