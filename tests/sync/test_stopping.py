"""Stopping says what really happened (docs/guarantees.md): the batch in flight is
finished within ``STOP_GRACE_SECONDS``, or the last line says how many claimed files the
next start resumes; SIGHUP stops like SIGTERM, also during the start-up wait.
"""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.helpers.conditions import wait_for, wait_until
from tests.helpers.harness import claimed_files, serving, start_worker
from tests.helpers.stores import make_settings
from tests.helpers.workers import drop, env_for, names, running, stored_docs
from watcher.app import build_worker
from watcher.core.errors import StoreUnavailable
from watcher.core.settings import Settings
from watcher.core.tracos import Clash, OrderUpsert, Outcome
from watcher.observe.heartbeat import read_status_files
from watcher.store.sqlite import SqliteStore

pytestmark = [pytest.mark.anyio, pytest.mark.system]
ORDER = (
    '{"orderNo":%d,"isCanceled":false,"isDeleted":false,"isDone":true,"isOnHold":false,'
    '"isPending":false,"summary":"Work order #%d","creationDate":"2026-11-03T01:09:53.451+00:00",'
    '"lastUpdateDate":"2026-11-03T02:09:53.456+00:00"}'
)
UNREACHABLE = "mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=100"


class StuckStore(SqliteStore):
    """The embedded store, its upserts never answering (a store that hangs)."""

    async def upsert(
        self, orders: Sequence[OrderUpsert], now: datetime, clashes: list[Clash] | None = None
    ) -> list[Outcome]:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")


async def test_stop_with_the_batch_unstored_says_what_stays_claimed(tmp_path: Path) -> None:
    """The store never answers: after the grace the worker stops, and says that the three
    claimed files will be resumed at the next start; the next start stores them."""
    settings = make_settings(tmp_path, stop_grace_seconds=0.2)
    worker = build_worker(settings, StuckStore(settings.sqlite_path))
    await worker.open()
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run, stop)
        for number in range(3):
            drop(settings.inbound_dir, f"{number}.json", (ORDER % (number, number)).encode())
        await wait_for(lambda: len(claimed_files(settings)) == 3, "three files claimed")
        stop.set()
    await worker.close()
    assert worker.stop_summary() == (
        "stopped after the 0.2 s grace; 3 claimed files will be resumed at the next start"
    )
    assert len(claimed_files(settings)) == 3
    async with running(settings):
        await wait_for(lambda: len(names(settings.archive_dir)) == 3, "resumed and archived")
    assert claimed_files(settings) == []


def batches(settings: Settings, files: int, orders: int) -> None:
    """``files`` batch files of ``orders`` orders each, renamed in at once."""
    staging = settings.inbound_dir.parent / "staging"
    staging.mkdir(parents=True, exist_ok=True)
    settings.inbound_dir.mkdir(parents=True, exist_ok=True)
    for index in range(files):
        first = index * orders
        body = ",".join(ORDER % (n, n) for n in range(first, first + orders))
        (staging / f"{index:03d}.json").write_text(f"[{body}]")
    for path in sorted(staging.iterdir()):
        path.rename(settings.inbound_dir / path.name)


def last_line(log: Path) -> str:
    return log.read_text().strip().splitlines()[-1]


@pytest.mark.parametrize("grace", ["60", "0.1"])
async def test_sigterm_during_a_long_batch(tmp_path: Path, grace: str) -> None:
    """SIGTERM 0.8 s into 300,000 orders: exit 0; the last line says what was left claimed
    (nothing, with a long grace), and that is what a restart resumes; nothing is lost."""
    settings = make_settings(tmp_path)
    log = tmp_path / "worker.log"
    with log.open("w") as out:
        worker = start_worker(settings, out, {"STOP_GRACE_SECONDS": grace})
        await anyio.to_thread.run_sync(lambda: wait_until(lambda: serving(settings, worker), ""))
        batches(settings, 100, 3_000)
        await anyio.sleep(0.8)
        worker.send_signal(signal.SIGTERM)
        assert await anyio.to_thread.run_sync(lambda: worker.wait(timeout=90)) == 0
    left = len(claimed_files(settings))
    said = last_line(log)
    if left:
        assert said.endswith(
            f"{left} claimed file{'s' if left > 1 else ''} will be resumed at the next start"
        )
    else:
        assert said.endswith("stopped: every file taken was stored and filed away"), said
    if grace == "60":
        assert left == 0
    archived = names(settings.archive_dir)
    assert len(await stored_docs(settings)) >= 3_000 * len(archived)
    async with running(settings):
        await wait_for(lambda: len(names(settings.archive_dir)) == 100, "the rest archived", 90)
    assert len(await stored_docs(settings)) == 300_000


def test_sighup_stops_like_sigterm(settings: Settings, tmp_path: Path) -> None:
    """SIGHUP (a closed terminal, a supervisor's reload): a clean stop, exit 0."""
    log = tmp_path / "worker.log"
    with log.open("w") as out:
        worker = start_worker(settings, out)
        wait_until(lambda: serving(settings, worker), "the worker to start")
        worker.send_signal(signal.SIGHUP)
        assert worker.wait(timeout=20) == 0
    assert "SIGHUP received" in log.read_text()
    assert last_line(log).endswith("stopped: every file taken was stored and filed away")


def test_stop_during_the_start_up_wait_says_so(settings: Settings, tmp_path: Path) -> None:
    """Stopped while waiting for an unreachable store: the last line says nothing was
    claimed, not that a batch was finished."""
    log = tmp_path / "worker.log"
    with log.open("w") as out:
        worker = start_worker(settings, out, {"MONGO_URI": UNREACHABLE})
        wait_until(lambda: "next attempt" in log.read_text(), "the start-up wait")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0
    assert last_line(log).endswith(
        "stopped during start-up, before the store was reached: no file was claimed"
    )


def test_console_last_line_after_a_stop_in_the_start_up_wait(settings: Settings) -> None:
    """On a terminal, the live console's last line says the same."""
    env = {**env_for(settings), "MONGO_URI": UNREACHABLE, "COLUMNS": "120"}
    leader, follower = pty.openpty()
    worker = subprocess.Popen(
        [sys.executable, "-m", "watcher", "run"],
        env=env,
        stdin=follower,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    screen = b""
    deadline = time.monotonic() + 20
    try:
        while b"next attempt" not in screen and time.monotonic() < deadline:
            screen += _read(leader, 0.2)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0
        screen += _read(leader, 0.5)
    finally:
        os.close(leader)
    text = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]|\r", "", screen.decode(errors="replace"))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    assert "stopped during start-up, before the store was reached: no file was claimed" in lines[-1]


def _read(fd: int, wait: float) -> bytes:
    got = b""
    while select.select([fd], [], [], wait)[0]:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the other end closed
            break
        if not chunk:
            break
        got += chunk
    return got


RUN_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "run"


def test_sigterm_to_the_process_group_of_scripts_run(settings: Settings, tmp_path: Path) -> None:
    """``./scripts/run`` stopped the way systemd stops it: SIGTERM to its process group (uv
    forwards it, so the worker gets it twice), then once more for good measure, while a
    batch is held in flight by a store locked by another process: each repeat is logged,
    the batch is finished, exit 0 with the true last line."""
    log = tmp_path / "worker.log"
    env = {**env_for(settings), "STOP_GRACE_SECONDS": "60"}
    with log.open("w") as out:
        worker = subprocess.Popen(
            [str(RUN_SCRIPT), "--no-console"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_until(lambda: _serving_child(settings), "the worker to start", 60)
            holder = sqlite3.connect(settings.sqlite_path, isolation_level=None)
            holder.execute("BEGIN IMMEDIATE")  # the worker's write waits for this
            drop(settings.inbound_dir, "1.json", (ORDER % (1, 1)).encode())
            wait_until(lambda: len(claimed_files(settings)) == 1, "the file claimed")
            os.killpg(worker.pid, signal.SIGTERM)
            wait_until(lambda: "SIGTERM received" in log.read_text(), "the first SIGTERM")
            os.killpg(worker.pid, signal.SIGTERM)
            wait_until(lambda: _repeat_seen(log, worker), "the repeat logged")
            assert worker.poll() is None, f"killed by the repeat: {worker.returncode}"
            holder.execute("ROLLBACK")
            holder.close()
            assert worker.wait(timeout=30) == 0, log.read_text()
        finally:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
    assert last_line(log).endswith("stopped: every file taken was stored and filed away")
    assert names(settings.archive_dir) == ["1.json"]


def _repeat_seen(log: Path, worker: subprocess.Popen[bytes]) -> bool:
    return _said_or_ended(log, worker, "received again")


def _said_or_ended(log: Path, worker: subprocess.Popen[Any], said: str) -> bool:
    return said in log.read_text() or worker.poll() is not None


def _serving_child(settings: Settings) -> bool:
    """A worker (whatever its pid under ``uv run``) has reached its store."""
    found = read_status_files(settings)
    return any(f.status is not None and f.status.store_connected for f in found)


def test_a_third_ctrl_c_quits_at_once(settings: Settings, tmp_path: Path) -> None:
    """A batch held in flight by a locked store: the first Ctrl-C stops (waiting for the
    batch), the second is only logged, the third quits at once (exit 130), as documented."""
    log = tmp_path / "worker.log"
    with log.open("w") as out:
        worker = start_worker(settings, out, {"STOP_GRACE_SECONDS": "60"})
        holder = None
        try:
            wait_until(lambda: serving(settings, worker), "the worker to start")
            holder = sqlite3.connect(settings.sqlite_path, isolation_level=None)
            holder.execute("BEGIN IMMEDIATE")  # the worker's write waits for this
            drop(settings.inbound_dir, "1.json", (ORDER % (1, 1)).encode())
            wait_until(lambda: len(claimed_files(settings)) == 1, "the file claimed")
            for said in ("SIGINT received", "received again"):
                worker.send_signal(signal.SIGINT)
                wait_until(partial(_said_or_ended, log, worker, said), said)
                assert worker.poll() is None, f"ended by a Ctrl-C: {worker.returncode}"
            worker.send_signal(signal.SIGINT)
            assert worker.wait(timeout=10) == 130
        finally:
            if holder is not None:
                holder.close()
            if worker.poll() is None:
                worker.kill()
    assert "received a third time: quitting at once" in last_line(log)
    assert len(claimed_files(settings)) == 1  # resumed at the next start


async def test_a_failing_test_block_still_closes_its_worker(settings: Settings) -> None:
    """``running``: a block that raises (a test failing inside it) still closes the worker
    and its store; a MongoDB client left open would be collected later, and its unclosed
    connections' ResourceWarnings fail whichever test the garbage collector runs in."""
    with pytest.RaisesGroup(pytest.RaisesExc(RuntimeError, match="a failing test")):
        async with running(settings) as worker:
            raise RuntimeError("a failing test")
    with pytest.raises(StoreUnavailable):  # closed: it answers no more
        await worker.store.counts()
