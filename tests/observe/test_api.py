"""The JSON API on the metrics port: ``/status`` says what ``watcher status --json`` says;
it is read-only, and a wrong path or parameter gets its status code with a reason."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.observe.test_http_server import ask
from watcher.core.settings import Settings
from watcher.erp.folders import upkeep
from watcher.observe import api
from watcher.observe.heartbeat import worker_id, write_worker_status
from watcher.observe.metrics import MetricsServer
from watcher.observe.status_report import gather_status
from watcher.sync.stats import Stats, StoreState


@pytest.fixture
def server(settings: Settings) -> Iterator[MetricsServer]:
    for folder in (settings.state_dir, settings.failed_dir, settings.inbound_dir):
        folder.mkdir(parents=True)
    routes = lambda served: api.routes(settings, served.latest)  # noqa: E731
    with MetricsServer(0, routes=routes) as running:
        yield running


def get(server: MetricsServer, target: str, method: str = "GET") -> tuple[int, dict[str, str], str]:
    request = f"{method} {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    head, _, body = ask(server.port, request).decode().partition("\r\n\r\n")
    status_line, *lines = head.split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    return int(status_line.split()[1]), headers, body


def worker_snapshot(settings: Settings, stats: Stats) -> None:
    stats.stored, stats.unsynced, stats.counts_at = 12, 3, datetime.now(UTC)
    stats.store = StoreState()
    write_worker_status(settings, stats.snapshot(datetime.now(UTC)), "embedded")


def test_status_is_what_status_json_says(settings: Settings, server: MetricsServer) -> None:
    """The same report, with the counts the worker last had (and whose they are)."""
    stats = Stats(started=datetime.now(UTC))
    worker_snapshot(settings, stats)
    server.update(stats.snapshot(datetime.now(UTC)))
    (settings.failed_dir / "bad.json").write_bytes(b"{")
    status, headers, body = get(server, "/status")
    assert (status, headers["Content-Type"]) == (200, "application/json")
    shown = json.loads(body)
    expected = json.loads(json.dumps(gather_status(settings, None, None, datetime.now(UTC))))
    assert shown.keys() == expected.keys()
    assert (shown["stored"], shown["unsynced"], shown["files_failed"]) == (12, 3, 1)
    assert (shown["store_reachable"], shown["counts_from"]) == (
        True,
        f"worker {worker_id(settings)}",
    )
    assert body.endswith("}\n") and body.count("\n") == 1


def test_status_does_not_list_an_unchanged_archive_again(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/status asked again beside an unchanged 2,000-file archive does not read the folder
    again: its cost does not grow with the archive."""
    settings.archive_dir.mkdir(parents=True)
    for number in range(2000):
        (settings.archive_dir / f"{number}.json").write_bytes(b"{}")
    os.utime(settings.archive_dir, (1_000_000_000, 1_000_000_000))  # long unchanged
    reads = count_reads(monkeypatch, settings.archive_dir)
    status = api.routes(settings, lambda: None)["/status"]
    for _ in range(3):
        body = status({})[1]
        assert isinstance(body, dict) and body["files_archived"] == 2000
    assert len(reads) == 1


def test_a_changed_folder_is_counted_again(tmp_path: Path) -> None:
    """A file filed away or removed changes the folder's mtime: listed again (at most once
    per COUNT_SECONDS while it keeps changing)."""
    clock = [0.0]
    counter = upkeep.FiledCounter(clock=lambda: clock[0])
    (tmp_path / "1.json").write_bytes(b"{}")
    (tmp_path / "1.json.error.json").write_bytes(b"{}")  # a report: not a file filed
    assert counter.count(tmp_path) == 1
    (tmp_path / "2.json").write_bytes(b"{}")
    assert counter.count(tmp_path) == 1  # within COUNT_SECONDS of the listing: reused
    clock[0] += upkeep.COUNT_SECONDS
    assert counter.count(tmp_path) == 2
    os.utime(tmp_path, (1_000_000_000, 1_000_000_000))
    clock[0] += upkeep.COUNT_SECONDS
    assert counter.count(tmp_path) == 2
    (tmp_path / "1.json").unlink()
    os.utime(tmp_path, (1_000_000_001, 1_000_000_001))  # an old mtime, but another one
    clock[0] += upkeep.COUNT_SECONDS
    assert counter.count(tmp_path) == 1


def count_reads(monkeypatch: pytest.MonkeyPatch, folder: Path) -> list[str]:
    """Every listing of ``folder`` from now on (``os.scandir`` or ``os.listdir``)."""
    reads: list[str] = []
    for name in ("scandir", "listdir"):
        real = getattr(os, name)

        def counted(path: Any = ".", real: Any = real, name: str = name) -> Any:
            if os.fspath(path) == os.fspath(folder):
                reads.append(name)
            return real(path)

        monkeypatch.setattr(os, name, counted)
    return reads


def test_status_tells_a_store_outage(settings: Settings, server: MetricsServer) -> None:
    """While the worker cannot reach its store, /status says so with the store's error."""
    stats = Stats(started=datetime.now(UTC))
    worker_snapshot(settings, stats)
    stats.store = StoreState(False, "MongoDB unreachable:\nrefused")
    server.update(stats.snapshot(datetime.now(UTC)))
    shown = json.loads(get(server, "/status")[2])
    assert (shown["store_reachable"], shown["store_error"]) == (
        False,
        "MongoDB unreachable: refused",
    )


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("/status?verbose=1", "unknown parameter 'verbose': /status takes no parameters"),
        ("/status?a=1&&b=2", "bad query string: bad query field: ''"),
    ],
)
def test_a_bad_parameter_is_a_400_with_its_reason(
    server: MetricsServer, target: str, reason: str
) -> None:
    """A query the route cannot use: 400, and the reason as JSON on one line."""
    status, headers, body = get(server, target)
    assert (status, headers["Content-Type"], json.loads(body)) == (
        400,
        "application/json",
        {"error": reason},
    )


def test_a_repeated_parameter_is_refused() -> None:
    """A parameter given twice is a 400 too (a route takes each once)."""
    with pytest.raises(api.BadQuery, match="parameter 'number' given 2 times: once at most"):
        api.parameters({"number": ["1", "2"]}, "/history", ["number"])


def test_an_unknown_path_is_a_404_with_a_reason(server: MetricsServer) -> None:
    """One line naming the path (escaped) and the paths there are."""
    status, _, body = get(server, "/nope%1b\x1b[2J")
    assert status == 404
    assert (
        body == "not found: /nope%1b\\x1b[2J (try /metrics, /livez, /readyz, /status, /history)\n"
    )


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_only_reading_is_allowed(server: MetricsServer, method: str) -> None:
    """Anything but GET and HEAD: 405, with the methods there are."""
    status, headers, body = get(server, "/status", method)
    assert (status, headers["Allow"]) == (405, "GET, HEAD")
    assert body == f"method {method} not allowed: this API is read-only (GET, HEAD)\n"


def test_the_server_listens_on_loopback_unless_told(server: MetricsServer) -> None:
    """By default only this host can ask; another address is honoured."""
    assert server.host == "127.0.0.1"
    with MetricsServer(0, host="127.0.0.2") as other:
        assert other.host == "127.0.0.2"
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", other.port), timeout=5).close()
        with socket.create_connection(("127.0.0.2", other.port), timeout=5) as conn:
            conn.sendall(b"GET /livez HTTP/1.1\r\n\r\n")
            assert conn.makefile("rb").read().endswith(b"\r\n\r\nok\n")
