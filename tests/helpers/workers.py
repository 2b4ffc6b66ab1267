"""Running a real worker inside a test, and reading what it left in its folders."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio

from watcher.app import Worker, build_worker
from watcher.cli.samples import erp_orders
from watcher.core.settings import Settings
from watcher.erp.folders.locks import LOCK_FILE
from watcher.store import WorkOrderStore
from watcher.store.configured import build_store


@asynccontextmanager
async def running(settings: Settings, store: WorkOrderStore | None = None) -> AsyncIterator[Worker]:
    """A worker running ``run`` in the background until the block ends; closed however
    it ends (a failing test too: its store's client and connections, never left to the
    garbage collector, whose warnings would fail a later test)."""
    worker = build_worker(settings, store)
    try:
        await worker.open()
        stop = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker.run, stop)
            try:
                yield worker
            finally:
                stop.set()
    finally:
        with anyio.CancelScope(shield=True):
            await worker.close()


def names(folder: Path, suffix: str = "") -> list[str]:
    """The files in ``folder`` (temp files too), less the outbound folder's lock file."""
    if not folder.is_dir():
        return []
    return sorted(
        p.name
        for p in folder.iterdir()
        if p.is_file() and p.name.endswith(suffix) and p.name != LOCK_FILE
    )


def reports(settings: Settings) -> dict[str, dict[str, Any]]:
    """Error reports in the failed folder, by the original file name."""
    found = {}
    for path in settings.failed_dir.glob("*.error.json"):
        report = json.loads(path.read_text())
        found[report["file"]] = report
    return found


def drop(folder: Path, name: str, data: bytes) -> None:
    """Drop a file the way an ERP would: write it elsewhere, then move it in."""
    folder.mkdir(parents=True, exist_ok=True)
    temp = folder.parent / f".drop-{name}"
    temp.write_bytes(data)
    temp.rename(folder / name)


def challenge_files(count: int = 10) -> dict[str, bytes]:
    from datetime import UTC, datetime
    from random import Random

    orders = erp_orders(count, datetime(2025, 10, 30, tzinfo=UTC), Random(7))
    return {f"{o['orderNo']}.json": json.dumps(o).encode() for o in orders}


def env_for(settings: Settings) -> dict[str, str]:
    """The environment that points a `watcher` process at these settings' folders and store."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MONGO_")},
        "DATA_INBOUND_DIR": str(settings.inbound_dir),
        "DATA_OUTBOUND_DIR": str(settings.outbound_dir),
        "DATA_ARCHIVE_DIR": str(settings.archive_dir),
        "DATA_FAILED_DIR": str(settings.failed_dir),
        "DATA_STATE_DIR": str(settings.state_dir),
        "INBOUND_SETTLE_SECONDS": str(settings.settle_seconds),
        "ERP_FORMAT": settings.erp_format,
    }
    if settings.mongo_uri:
        env["MONGO_URI"] = settings.mongo_uri
        env["MONGO_DATABASE"] = settings.mongo_database
        env["MONGO_COLLECTION"] = settings.mongo_collection
    return env


def cli(
    settings: Settings, *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a `watcher` command in a subprocess, as an operator would (``env``: extra variables)."""
    return subprocess.run(
        [sys.executable, "-m", "watcher", *args],
        env={**env_for(settings), **(env or {})},
        capture_output=True,
        text=True,
        check=check,
        timeout=60,
    )


@asynccontextmanager
async def opened_store(settings: Settings) -> AsyncIterator[WorkOrderStore]:
    """The store these settings name (embedded or MongoDB), through a connection of its own."""
    store = build_store(settings)
    try:
        await store.open()
        yield store
    finally:
        await store.close()


async def stored_docs(settings: Settings) -> list[dict[str, Any]]:
    """What the configured store holds."""
    async with opened_store(settings) as store:
        return await store.find()


async def unsynced_count(settings: Settings) -> int:
    async with opened_store(settings) as store:
        return (await store.counts())[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def http_get(port: int, path: str) -> tuple[int, str]:
    """Status and body of a GET (0 and "" while nothing listens)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


@contextmanager
def worker(settings: Settings, log: Path, **env: str) -> Iterator[subprocess.Popen[str]]:
    """A real `watcher run --no-console` until the block ends (SIGTERM, then a wait)."""
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "watcher", "run", "--no-console"],
            env={**env_for(settings), **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


# Runs a command, its output to argv[1]; prints its exit code and peak RSS (ru_maxrss).
PEAK_LAUNCHER = """
import os, subprocess, sys
with open(sys.argv[1], "wb") as log:
    worker = subprocess.Popen(sys.argv[2:], stdout=log, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(worker.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss * 1024)  # kilobytes on Linux
"""


def peak_of_command(settings: Settings, out: Path, command: str, timeout: float) -> int:
    """``watcher COMMAND`` in a process of its own (output in ``out``), which must exit 0;
    its peak RSS in bytes."""
    argv = [sys.executable, "-c", PEAK_LAUNCHER, str(out), sys.executable, "-m", "watcher", command]
    launched = subprocess.run(
        argv, env=env_for(settings), capture_output=True, text=True, check=True, timeout=timeout
    )
    code, peak = map(int, launched.stdout.split())
    assert code == 0, out.read_bytes()[-2000:]
    return peak


def reset_connections(port: int, count: int) -> None:
    """``count`` clients that send half a request to ``port`` and reset the connection (RST)."""
    for _ in range(count):
        conn = socket.create_connection(("127.0.0.1", port))
        conn.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
