"""TracOS writes out: the latency from a write to its durable file (from another process,
then from the worker's own), and a burst of many unsynced documents beside its floor."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import anyio
import msgspec

from watcher.app import build_worker
from watcher.core.settings import Settings
from watcher.core.tracos import read_tracos
from watcher.erp.formats.challenge import FORMAT as CHALLENGE
from watcher.store import Document
from watcher.store.sqlite import SqliteStore

from .. import floors
from ..report import Row, latency_row, percentile, throughput_row
from ..scales import Sizes
from ..worker import DEADLINE, BenchError, count_files, running_worker
from ..workload import tracos_docs


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
        "put_documents from this process; the worker notices as the commit reaches its WAL"
        " (an inotify watch, then PRAGMA data_version)"
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
        "outbound burst", len(burst), "orders", seconds=seconds, floor=floor, ratio_limit=1.3
    )
    row.note = f"{len(burst):,} unsynced documents in one put; until all files exist and 0 unsynced"
    return [*rows, row]


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
            if not isinstance(worker.store, SqliteStore):
                raise BenchError("the in-process worker is not on the embedded store")
            found = await drop_documents(worker.store, docs, sizes.out_rate, settings.outbound_dir)
            stop.set()
    finally:
        await worker.close()
    return found, percentile(list(worker.stats.latency_out), 0.5)


def floor_outbound(docs: Sequence[Document], root: Path) -> float:
    """Translate; write each to a temp file, one sync of the data, rename each, fsync the
    folder once; one bulk mark."""
    folder = root / "outbound"
    folder.mkdir(parents=True)
    db = floors.FloorDb(root / "floor.sqlite3")
    db.add_unsynced([d["number"] for d in docs])
    return export_floor(docs, folder, db)


def export_floor(docs: Sequence[Document], folder: Path, db: floors.FloorDb) -> float:
    """The time to translate ``docs`` (read back as stored: dates as strings) and write
    them out through ``floors.outbound``."""
    stored = msgspec.json.decode(msgspec.json.encode(docs))
    start = time.perf_counter()
    files = [CHALLENGE.render(read_tracos(doc)) for doc in stored]
    floors.outbound([(file.name, file.data) for file in files], folder, db)
    return time.perf_counter() - start
