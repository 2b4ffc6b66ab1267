"""Another process holds the embedded store locked (a backup tool, a long report, a stuck
script): nothing waits for it longer than it must."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import pytest

from tests.helpers.builders import erp
from tests.helpers.conditions import wait_until
from tests.helpers.harness import claimed_files, serving, start_worker
from tests.helpers.workers import cli, drop, opened_store
from watcher.core.settings import Settings
from watcher.observe.heartbeat import read_worker_status

pytestmark = [pytest.mark.anyio, pytest.mark.system]

HOLD = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA locking_mode=EXCLUSIVE")  # no one else may even read
db.execute("BEGIN EXCLUSIVE")
db.execute("SELECT count(*) FROM workorders").fetchone()
print("held", flush=True)
sys.stdin.read()  # until the test lets go
"""


# Another process holds every read lock of a store in WAL mode (``WAL_READ_LOCK(0..4)``:
# bytes 123 to 127 of the ``-shm`` file): no connection can begin even a read.
HOLD_READS = """
import fcntl, sys, time
shm = open(sys.argv[1] + "-shm", "r+b")
while True:
    try:
        fcntl.lockf(shm, fcntl.LOCK_EX | fcntl.LOCK_NB, 5, 123)
        break
    except OSError:  # a reader holds one for a moment: take them all in turn
        time.sleep(0.001)
print("held", flush=True)
sys.stdin.read()  # until the test lets go
"""


@contextmanager
def locked(settings: Settings, how: str = HOLD) -> Iterator[None]:
    """The store locked by another process for as long as the block runs."""
    holder = subprocess.Popen(
        [sys.executable, "-c", how, str(settings.sqlite_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdin is not None
    try:
        assert holder.stdout.readline() == "held\n"
        yield
    finally:
        holder.stdin.close()
        holder.stdout.close()
        holder.wait(timeout=20)


async def test_status_answers_within_a_second_while_the_store_is_locked(
    settings: Settings,
) -> None:
    """``watcher status`` says the store could not be read (and why) instead of waiting."""
    async with opened_store(settings):
        pass
    with locked(settings):
        started = time.monotonic()
        told = cli(settings, "status", "--json")
        elapsed = time.monotonic() - started
    report = json.loads(told.stdout)
    assert report["store_reachable"] is False and "locked" in report["store_error"], report
    assert elapsed < 2.5, f"took {elapsed:.1f} s"  # a second of its own, plus Python's start


def test_a_locked_store_stalls_neither_the_heartbeat_nor_a_stop(
    settings: Settings, tmp_path: Path
) -> None:
    """Locked while the worker holds a file for it: the heartbeat stays fresh, and SIGTERM
    ends the worker within its grace (+1 s), exit 0, the last line saying the file waits."""
    log = tmp_path / "worker.log"
    with log.open("w") as out:
        worker = start_worker(settings, out, {"STOP_GRACE_SECONDS": "1"})
        try:
            wait_until(lambda: serving(settings, worker), "the worker to start")
            with locked(settings, HOLD_READS):
                drop(settings.inbound_dir, "1.json", json.dumps(erp(orderNo=1)).encode())
                wait_until(lambda: len(claimed_files(settings)) == 1, "the file claimed")
                beat = heartbeat(settings, worker.pid)
                wait_until(lambda: heartbeat(settings, worker.pid) > beat, "a new heartbeat", 6)
                started = time.monotonic()
                worker.send_signal(signal.SIGTERM)
                assert worker.wait(timeout=30) == 0, log.read_text()
                stopped_in = time.monotonic() - started
        finally:
            if worker.poll() is None:
                worker.kill()
    assert stopped_in < 1 + 1.5, f"stopped in {stopped_in:.1f} s"
    assert last_line(log).endswith("1 claimed file will be resumed at the next start")


def heartbeat(settings: Settings, pid: int) -> datetime:
    status = read_worker_status(settings, pid)
    assert status is not None
    return status.heartbeat


def last_line(log: Path) -> str:
    return log.read_text().strip().splitlines()[-1]
