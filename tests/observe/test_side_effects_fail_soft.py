"""Side effects fail soft and commands answer in one line (docs/guarantees.md).

Status file writes are side effects: a full disk, a read-only state folder or a directory
at the file's name is shown (console, status, health, /readyz) and retried, never fatal.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import anyio
import pytest

from tests.helpers.builders import tracos_doc
from tests.helpers.conditions import wait_until
from tests.helpers.harness import serving
from tests.helpers.stores import make_settings
from tests.helpers.workers import cli, free_port, http_get, worker
from watcher.core.settings import Settings
from watcher.observe.heartbeat import read_worker_status, status_path
from watcher.store.sqlite import SqliteStore

pytestmark = pytest.mark.system
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one line a failing command printed (stdout or stderr), never a traceback."""
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    return lines[0]


@pytest.mark.parametrize("number", ["99999999999999999999", "-1", "x", "1.5"])
def test_show_refuses_what_is_not_an_order_number_in_one_line(
    settings: Settings, number: str
) -> None:
    result = cli(settings, "show", "--", number, check=False)
    assert result.returncode == 2
    assert "not an order number" in one_line(result)


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (lambda p: p.write_bytes(b"\xff\xfe{"), "is damaged"),
        (lambda p: p.write_text('{"pid": 0}'), "is damaged"),
        (lambda p: p.write_text(json.dumps({"pid": 10**20})), "is damaged"),
        (lambda p: p.mkdir(), "cannot be read: not a regular file (directory)"),
    ],
    ids=["not-utf8", "pid-0", "huge-pid", "directory"],
)
def test_health_with_a_damaged_status_file_says_so_in_one_line(
    tmp_path: Path, damage: Callable[[Path], object], said: str
) -> None:
    settings = make_settings(tmp_path, worker_id="w")
    settings.state_dir.mkdir(parents=True)
    damage(status_path(settings))
    result = cli(settings, "health", check=False, env={"WATCHER_ID": "w"})
    assert result.returncode == 1
    assert said in one_line(result)
    assert cli(settings, "status", "--json", env={"WATCHER_ID": "w"}).returncode == 0


def test_a_missing_tls_key_file_is_a_setting_error(settings: Settings, tmp_path: Path) -> None:
    missing = tmp_path / "client.pem"
    uri = f"mongodb://127.0.0.1:1/?tls=true&tlsCertificateKeyFile={missing}"
    result = cli(settings, "status", check=False, env={"MONGO_URI": uri})
    assert result.returncode == 2
    assert f"MONGO_URI: cannot read {missing}" in one_line(result)


@contextmanager
def tmpfs(folder: Path, size: str = "4m") -> Iterator[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@contextmanager
def read_only(folder: Path) -> Iterator[None]:
    subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
    try:
        _remount_read_only(folder)
        yield
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _remount_read_only(folder: Path) -> None:
    """The bind mount made read-only; mount(8) has once failed here (exit 32) on a loaded
    machine and succeeded when asked again: three tries, then its own words."""
    said = ""
    for _ in range(3):
        command = ["mount", "-o", "remount,bind,ro", str(folder)]
        done = subprocess.run(command, check=False, capture_output=True, text=True)
        if done.returncode == 0:
            return
        said = done.stderr.strip()
    raise AssertionError(f"cannot make {folder} read-only: {said}")


@contextmanager
def disk_full(folder: Path) -> Iterator[None]:
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as out, suppress(OSError):
        while out.write(b"\0" * 4096):
            pass
    try:
        yield
    finally:
        filler.unlink()


def _health(settings: Settings) -> str:
    return cli(settings, "health", check=False, env={"WATCHER_ID": "w"}).stdout.strip()


@ROOT_ONLY
@pytest.mark.parametrize("attack", ["disk-full", "read-only-state", "directory-at-the-name"])
def test_the_status_file_failing_never_stops_the_worker(tmp_path: Path, attack: str) -> None:
    """The worker stays up, says what is wrong (health, /readyz, its log), and recovers."""
    with tmpfs(tmp_path / "data") as data:
        settings = make_settings(data, worker_id="w")
        port = free_port()
        if attack == "directory-at-the-name":
            status_path(settings).mkdir(parents=True)
        with worker(settings, tmp_path / "w.log", WATCHER_ID="w", METRICS_PORT=str(port)) as p:
            wait_until(lambda: "watching" in (tmp_path / "w.log").read_text(), "the start")
            with _attacked(attack, settings):
                wait_until(lambda: "status file" in http_get(port, "/readyz")[1], "readyz", 30)
                expected = {
                    "disk-full": "no space left",
                    "read-only-state": "is not writable",
                    "directory-at-the-name": "not a regular file (directory)",
                }[attack]
                wait_until(lambda: expected in _health(settings), f"health: {expected}", 30)
                assert p.poll() is None, "the worker died"
            if attack == "directory-at-the-name":
                status_path(settings).rmdir()
            wait_until(lambda: serving(settings, p), "the status file written again", 30)
            wait_until(lambda: http_get(port, "/readyz")[0] == 200, "ready again", 30)
            assert _health(settings) == "healthy"
        assert p.returncode == 0
        assert "cannot write the status file" in (tmp_path / "w.log").read_text()


@contextmanager
def _attacked(attack: str, settings: Settings) -> Iterator[None]:
    if attack == "disk-full":
        with disk_full(settings.state_dir.parent):
            yield
    elif attack == "read-only-state":
        with read_only(settings.state_dir):
            yield
    else:
        yield


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_fifty_thousand_unexportable_orders_keep_the_worker_small_and_idle(
    settings: Settings, tmp_path: Path
) -> None:
    """Status file: counts plus the most recent few; idle CPU ≤ 1 % of a core."""

    async def put() -> None:
        store = SqliteStore(settings.sqlite_path)
        await store.open()
        await store.put_documents([tracos_doc(n, status="archived") for n in range(50_000)])
        await store.close()

    anyio.run(put)
    with worker(settings, tmp_path / "w.log") as process:

        def all_reported() -> bool:
            status = read_worker_status(settings, process.pid)
            return status is not None and status.unexportable_total == 50_000

        wait_until(all_reported, "50,000 unexportable orders reported", 60)
        time.sleep(2.5)  # settle: the status file is rewritten once more with nothing to do
        before, started = _cpu_seconds(process.pid), time.monotonic()
        time.sleep(5)
        used = (_cpu_seconds(process.pid) - before) / (time.monotonic() - started)
        status_file = next(settings.state_dir.glob("worker-*.json"))
        assert status_file.stat().st_size < 8192
        assert used <= 0.01, f"{used:.1%} of a core while idle"
    shutil.rmtree(settings.state_dir)
