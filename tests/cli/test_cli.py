"""The `watcher` command end to end, as an operator runs it (subprocesses, real folders)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.builders import erp
from tests.helpers.conditions import wait_until
from tests.helpers.harness import start_worker
from tests.helpers.stores import make_settings
from tests.helpers.workers import cli, drop, env_for, names
from watcher.core.settings import Settings

pytestmark = pytest.mark.system


@pytest.fixture
def worker_process(settings: Settings, tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """`watcher run` in the background, its output in a file; stopped with SIGTERM."""
    log = (tmp_path / "worker.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "watcher", "run"],
        env=env_for(settings),
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    wait_until(lambda: "watching" in (tmp_path / "worker.log").read_text(), "the worker to start")
    yield process
    if process.poll() is None:
        process.kill()
        process.wait()
    log.close()


def test_run_show_and_sigterm(
    settings: Settings, tmp_path: Path, worker_process: subprocess.Popen[str]
) -> None:
    """First line names the embedded store; dropped files show up; SIGTERM exits 0 quickly."""
    for number in (1, 2, 3):
        drop(settings.inbound_dir, f"{number}.json", json.dumps(erp(orderNo=number)).encode())
    wait_until(lambda: len(names(settings.archive_dir)) == 3, "three files archived")
    shown = json.loads(cli(settings, "show").stdout)
    assert [d["number"] for d in shown] == [1, 2, 3]
    assert shown[0]["updatedAt"] == "2025-10-01T00:04:29.045000Z"
    assert isinstance(shown[0]["_id"], str) and shown[0]["isSynced"] is True
    assert [d["number"] for d in json.loads(cli(settings, "show", "2").stdout)] == [2]
    started = time.monotonic()
    worker_process.send_signal(signal.SIGTERM)
    assert worker_process.wait(timeout=10) == 0
    assert time.monotonic() - started < 3
    first_line = (tmp_path / "worker.log").read_text().splitlines()[0]
    assert "embedded SQLite" in first_line


def test_health_and_status_with_a_running_worker(
    settings: Settings, worker_process: subprocess.Popen[str]
) -> None:
    """health is 0 while the worker runs; status reports counts and the mode."""
    wait_until(lambda: cli(settings, "health", check=False).returncode == 0, "healthy worker")
    drop(settings.inbound_dir, "bad.json", b"{")
    wait_until(lambda: len(names(settings.failed_dir)) == 2, "bad file quarantined")
    status = json.loads(cli(settings, "status", "--json").stdout)
    assert status["worker_running"] is True and status["mode"] == "embedded"
    assert (status["files_failed"], status["stored"]) == (1, 0)


def test_health_without_a_worker_fails_with_one_line(settings: Settings) -> None:
    """No worker: exit 1 and a single line saying why."""
    result = cli(settings, "health", check=False)
    assert result.returncode == 1
    assert result.stdout.strip().splitlines() == [
        f"unhealthy: no worker has run here (no status file): there is no {settings.state_dir}"
        " here; run this in the worker's directory, or set DATA_STATE_DIR to its state folder"
    ]


def test_once_processes_waiting_files_and_exits(settings: Settings) -> None:
    """`watcher once` handles both directions and exits 0."""
    drop(settings.inbound_dir, "1.json", json.dumps(erp(orderNo=1)).encode())
    cli(settings, "seed", "--tracos", "3", "--erp", "0")
    cli(settings, "once")
    assert names(settings.archive_dir) == ["1.json"]
    assert names(settings.outbound_dir) == ["1.json", "2.json", "3.json"]
    shown = json.loads(cli(settings, "show").stdout)
    assert all(d["isSynced"] for d in shown)


def test_seed_writes_challenge_files(settings: Settings) -> None:
    """ERP files `{i}.json`: ten keys in order, isoformat dates with microseconds."""
    cli(settings, "seed", "--tracos", "0", "--erp", "4")
    assert names(settings.inbound_dir) == ["1.json", "2.json", "3.json", "4.json"]
    order = json.loads((settings.inbound_dir / "2.json").read_text())
    assert list(order) == [
        "orderNo", "isCanceled", "isDeleted", "isDone", "isOnHold", "isPending",
        "summary", "creationDate", "lastUpdateDate", "deletedDate",
    ]  # fmt: skip
    assert order["summary"] == "Example workorder #2"
    assert len(order["creationDate"]) == len("2025-09-30T23:04:29.045089+00:00")


def test_seeded_tracos_documents_have_no_sync_fields(settings: Settings) -> None:
    """Seeded TracOS documents look like the challenge's: no isSynced/syncedAt/deletedAt."""
    cli(settings, "seed", "--tracos", "2", "--erp", "0")
    for doc in json.loads(cli(settings, "show").stdout):
        assert not {"isSynced", "syncedAt", "deletedAt"} & doc.keys()
        assert doc["title"] == f"Example workorder #{doc['number']}"


def test_requeue_moves_failed_files_back(settings: Settings) -> None:
    """requeue puts failed files back in inbound and keeps their reports aside."""
    drop(settings.inbound_dir, "bad.json", b"12")
    cli(settings, "once")
    assert names(settings.failed_dir) == ["bad.json", "bad.json.error.json"]
    result = cli(settings, "requeue")
    assert "requeued bad.json" in result.stdout
    assert names(settings.inbound_dir) == ["bad.json"]
    assert names(settings.failed_dir / "requeued-reports") == ["bad.json.error.json"]
    assert cli(settings, "requeue", "nope.json", check=False).returncode == 1


def test_bad_setting_is_one_line(tmp_path: Path) -> None:
    """A bad environment value stops with one line naming the variable, exit 2."""
    settings = make_settings(tmp_path)
    result = cli(settings, "run", check=False, env={"INBOUND_BATCH_SIZE": "lots"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "watcher: configuration error: INBOUND_BATCH_SIZE: not a number: 'lots'"
    ]


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_headless_output_is_plain(settings: Settings, log_format: str) -> None:
    """Piped output: plain lines, no escape codes; LOG_FORMAT=json gives JSON lines."""
    env = {**env_for(settings), "LOG_FORMAT": log_format}
    process = subprocess.Popen(
        [sys.executable, "-m", "watcher", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    drop(settings.inbound_dir, "1.json", json.dumps(erp(orderNo=1)).encode())
    drop(settings.inbound_dir, "bad.json", b"{]")
    wait_until(lambda: len(names(settings.failed_dir)) == 2, "bad file quarantined")
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=20)
    assert process.returncode == 0
    assert "\x1b" not in output
    lines = output.strip().splitlines()
    if log_format == "json":
        entries = [json.loads(line) for line in lines]
        assert any("bad.json quarantined" in e["message"] for e in entries)
        assert {"time", "level", "message"} <= entries[0].keys()
    else:
        assert "embedded SQLite" in lines[0]
        assert any("bad.json quarantined" in line and "not valid JSON" in line for line in lines)


def test_metrics_of_a_running_worker(settings: Settings, tmp_path: Path) -> None:
    """METRICS_PORT: /metrics counts the files a real worker took; /readyz says ready."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**env_for(settings), "METRICS_PORT": str(port)}
    with (tmp_path / "worker.log").open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "watcher", "run"], env=env, stdout=log, stderr=log, text=True
        )
        try:
            for number in (1, 2, 3):
                drop(
                    settings.inbound_dir, f"{number}.json", json.dumps(erp(orderNo=number)).encode()
                )
            wait_until(lambda: "watcher_files_seen_total 3.0" in _get(port, "/metrics"), "metrics")
            assert 'watcher_orders_total{outcome="inserted"} 3.0' in _get(port, "/metrics")
            assert _get(port, "/readyz").startswith("ready")
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=20) == 0


def test_the_status_api_of_a_running_worker(settings: Settings, tmp_path: Path) -> None:
    """METRICS_HOST is where it listens (and only there); /status is what status --json says."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.2", 0))
        port = probe.getsockname()[1]
    env = {**env_for(settings), "METRICS_PORT": str(port), "METRICS_HOST": "127.0.0.2"}
    with (tmp_path / "worker.log").open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "watcher", "run"], env=env, stdout=log, stderr=log, text=True
        )
        try:
            drop(settings.inbound_dir, "bad.json", b"12")
            wait_until(lambda: '"files_failed":1' in _get(port, "/status", "127.0.0.2"), "/status")
            wait_until(lambda: '"stored":0' in _get(port, "/status", "127.0.0.2"), "the counts")
            served = json.loads(_get(port, "/status", "127.0.0.2"))
            asked = json.loads(cli(settings, "status", "--json").stdout)
            assert served.keys() == asked.keys()
            assert served["workers"][0]["id"] == asked["workers"][0]["id"]
            assert _get(port, "/status") == ""  # nothing listens on 127.0.0.1
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=20) == 0
    assert f"metrics on http://127.0.0.2:{port}/metrics" in (tmp_path / "worker.log").read_text()


def test_a_metrics_address_that_cannot_be_taken_is_one_line(settings: Settings) -> None:
    """A port in use: exit 2, one line naming both settings and the system's reason."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = cli(settings, "run", check=False, env={"METRICS_PORT": str(port)})
    assert result.returncode == 2
    assert result.stderr == (
        "watcher: configuration error: METRICS_HOST/METRICS_PORT: cannot listen on"
        f" 127.0.0.1:{port}: Address already in use\n"
    )


def _get(port: int, path: str, host: str = "127.0.0.1") -> str:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=2) as response:
            return str(response.read().decode())
    except OSError:
        return ""  # not listening yet


def test_a_folder_that_is_a_file_names_its_variable(tmp_path: Path) -> None:
    """DATA_OUTBOUND_DIR naming a file: one line with the variable, exit 2."""
    settings = make_settings(tmp_path)
    settings.outbound_dir.parent.mkdir(parents=True, exist_ok=True)
    settings.outbound_dir.write_text("not a folder")
    result = cli(settings, "once", check=False)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(
        f"watcher: configuration error: DATA_OUTBOUND_DIR ({settings.outbound_dir}):"
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a read-only file system needs root")
def test_a_read_only_folder_is_called_read_only(tmp_path: Path) -> None:
    """An archive folder on a read-only mount is said to be that, not 'not writable by you'."""
    settings = make_settings(tmp_path)
    settings.archive_dir.mkdir(parents=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(settings.archive_dir)], check=True
    )
    try:
        result = cli(settings, "once", check=False)
    finally:
        subprocess.run(["umount", str(settings.archive_dir)], check=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"watcher: configuration error: DATA_ARCHIVE_DIR ({settings.archive_dir}):"
        " on a read-only file system"
    ]


def test_the_quick_start_shows_both_directions(settings: Settings, tmp_path: Path) -> None:
    """README's first look (its own `watcher seed` line, beside a running worker): ERP files
    archived, and TracOS-only orders written to the outbound folder."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    [seed] = [line for line in readme.splitlines() if line.startswith(".venv/bin/watcher seed")]
    args = seed.split("#")[0].split()[1:]
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log:
        worker = start_worker(settings, log)
        try:
            wait_until(lambda: "watching" in log_path.read_text(), "the worker started")
            cli(settings, *args)
            wait_until(lambda: len(names(settings.archive_dir)) == 10, "the ERP files archived")
            wait_until(lambda: len(names(settings.outbound_dir)) >= 5, "TracOS orders sent")
        finally:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=20) == 0
    assert {f"{n}.json" for n in range(11, 16)} <= set(names(settings.outbound_dir))
