"""The metrics endpoint: Prometheus text from the latest snapshot, liveness and readiness."""

from __future__ import annotations

import platform
import re
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import anyio
import pytest

from tests.helpers.workers import reset_connections
from watcher.observe.metrics import MetricsServer, readiness
from watcher.sync.stats import (
    BUCKETS,
    LATENCY_WINDOW,
    SAMPLES,
    Count,
    Latency,
    Snapshot,
    Stats,
    StoreState,
)

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def snapshot(connected: bool = True) -> Snapshot:
    stats = Stats(started=T0)
    stats.count(Count.FILES_SEEN, 3)
    stats.count(Count.FILES_FAILED)
    stats.count(Count.ORDERS_INSERTED, 2)
    stats.count(Count.ORDERS_STALE)
    stats.count(Count.EXPORTED, 2)
    stats.waiting_files, stats.unsynced = 4, 5
    stats.latency_in.extend([0.01, 0.03])
    stats.waiting_age, stats.in_flight, stats.unsynced_age = 12.0, 7, 3630.0
    stats.trigger.swept(0.5, 3)
    stats.disk = {"state": (250, 1000)}
    stats.pauses.update(frozenset({"outbound"}))
    stats.trigger.progressed(1_790_000_000.0)
    if not connected:
        stats.count(Count.RETRIES, 2)
        stats.store = StoreState(connected=False, error="connection\nrefused")
    return stats.snapshot(T0 + timedelta(seconds=30))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def server(clock: Clock) -> Iterator[MetricsServer]:
    with MetricsServer(0, host="127.0.0.1", clock=clock) as running:
        yield running


def get(server: MetricsServer, path: str, accept: str = "") -> tuple[int, str]:
    request = Request(f"http://127.0.0.1:{server.port}{path}", headers={"Accept": accept})
    try:
        with urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except HTTPError as error:
        with error:
            return error.code, error.read().decode()


def test_metrics_expose_the_snapshot_counters(server: MetricsServer) -> None:
    """Counters, gauges and latency quantiles come from the latest snapshot."""
    anyio.run(server, snapshot())
    status, body = get(server, "/metrics")
    assert status == 200
    for line in [
        "watcher_files_seen_total 3.0",
        "watcher_files_failed_total 1.0",
        'watcher_orders_total{outcome="inserted"} 2.0',
        'watcher_orders_total{outcome="stale"} 1.0',
        'watcher_orders_total{outcome="updated"} 0.0',
        "watcher_exported_total 2.0",
        "watcher_unexportable_total 0.0",
        "watcher_store_retries_total 0.0",
        "watcher_files_waiting 4.0",
        "watcher_unsynced_orders 5.0",
        "watcher_store_up 1.0",
        "watcher_files_in_flight 7.0",
        "watcher_oldest_file_waiting_seconds 12.0",
        "watcher_oldest_unsynced_seconds 3630.0",
        'watcher_inbound_latency_seconds_bucket{le="0.005"} 0.0',
        'watcher_inbound_latency_seconds_bucket{le="0.01"} 1.0',
        'watcher_inbound_latency_seconds_bucket{le="0.025"} 1.0',
        'watcher_inbound_latency_seconds_bucket{le="0.05"} 2.0',
        'watcher_inbound_latency_seconds_bucket{le="+Inf"} 2.0',
        "watcher_inbound_latency_seconds_count 2.0",
        "watcher_inbound_latency_seconds_sum 0.04",
        "watcher_outbound_latency_seconds_count 0.0",
        "watcher_sweeps_total 1.0",
        'watcher_folder_free_bytes{folder="state"} 250.0',
        'watcher_folder_size_bytes{folder="state"} 1000.0',
        "watcher_last_snapshot_timestamp_seconds 1.79516523e+09",
        'watcher_paused{direction="inbound"} 0.0',
        'watcher_paused{direction="outbound"} 1.0',
        "watcher_swept_orders_total 3.0",
        "watcher_sweep_seconds_total 0.5",
        "watcher_last_sweep_duration_seconds 0.5",
        "watcher_outbound_progress_timestamp_seconds 1.79e+09",
        f'watcher_build_info{{python_version="{platform.python_version()}",version="1.0.0"}} 1.0',
    ]:
        assert line in body.splitlines()
    assert "quantile" not in body


def test_latency_histograms_count_every_sample_since_start() -> None:
    """The histogram keeps counting past the recent samples the console's percentiles use."""
    stats = Stats(started=T0)
    stats.latency_out.extend([0.02] * (SAMPLES + 500) + [400.0])
    seen = stats.snapshot(T0).histogram_out
    assert len(stats.latency_out) == SAMPLES
    assert seen.count == SAMPLES + 501
    assert seen.counts[BUCKETS.index(0.025)] == SAMPLES + 500
    assert seen.counts[-1] == 1  # past the last bound: only in +Inf
    assert seen.total == pytest.approx(0.02 * (SAMPLES + 500) + 400.0)


def test_the_recent_latency_ages_out_and_the_histogram_does_not() -> None:
    """An outage's huge latencies leave the console's p50/p95 once they are older than the
    window, also when no traffic comes after them; the histogram keeps every sample."""
    clock = Clock()
    stats = Stats(started=T0, latency_in=Latency(clock=clock))
    stats.latency_in.extend([120.0] * 10)  # files held by an outage
    assert stats.snapshot(T0).latency_in == (120.0, 120.0)
    clock.now += LATENCY_WINDOW - 1
    stats.latency_in.append(0.02)  # traffic resumes, a little, then stops
    assert stats.snapshot(T0).latency_in == (120.0, 120.0)
    clock.now += 2
    assert stats.snapshot(T0).latency_in == (0.02, 0.02)
    clock.now += LATENCY_WINDOW
    seen = stats.snapshot(T0)
    assert seen.latency_in is None  # nothing recent: no figure, not the outage's
    assert seen.histogram_in.count == 11


def test_a_batch_of_latencies_reads_the_clock_once() -> None:
    """An outbound batch's samples came together: one clock reading for all of them (read
    once a sample, a batch of 1,000 paid for 1,000), and they age out together."""
    readings = 0

    def clock() -> float:
        nonlocal readings
        readings += 1
        return 100.0

    latency = Latency(clock=clock)
    latency.extend([0.01, 0.02, 0.03])
    assert readings == 1
    assert list(latency) == [0.01, 0.02, 0.03]
    assert latency.histogram().count == 3
    assert latency.histogram().total == pytest.approx(0.06)


def test_nothing_behind_is_an_age_of_zero(server: MetricsServer) -> None:
    """No file waiting and no unsynced order: the lag gauges are 0, not missing."""
    server.update(Stats(started=T0).snapshot(T0))
    body = get(server, "/metrics")[1].splitlines()
    assert "watcher_oldest_file_waiting_seconds 0.0" in body
    assert "watcher_oldest_unsynced_seconds 0.0" in body


def test_metrics_speak_openmetrics_when_asked(server: MetricsServer) -> None:
    """A scraper asking for OpenMetrics gets it, ending with # EOF."""
    server.update(snapshot(connected=False))
    status, body = get(server, "/metrics", "application/openmetrics-text; version=1.0.0")
    assert status == 200
    assert "watcher_store_up 0.0" in body
    assert "watcher_store_retries_total 2.0" in body
    assert body.endswith("# EOF\n")


def test_livez_answers_while_serving(server: MetricsServer) -> None:
    """/livez is 200 even before the first snapshot, when /metrics has no samples yet."""
    assert get(server, "/livez") == (200, "ok\n")
    assert "watcher_" not in get(server, "/metrics")[1]


def test_livez_fails_only_when_snapshots_stop(server: MetricsServer, clock: Clock) -> None:
    """/livez: 200 through a store outage; 503 once no snapshot came for a minute (a stuck
    loop), 200 again when they come back."""
    server.update(snapshot(connected=False))
    assert get(server, "/livez") == (200, "ok\n")
    clock.now += 59.0
    assert get(server, "/livez") == (200, "ok\n")
    clock.now += 2.0
    assert get(server, "/livez") == (503, "not live: no snapshot for 61 s (the loop is stuck)\n")
    server.update(snapshot())
    assert get(server, "/livez") == (200, "ok\n")


def test_readyz_follows_the_store_and_the_snapshot_age(server: MetricsServer, clock: Clock) -> None:
    """/readyz is 200 only with a fresh snapshot of a connected store."""
    assert get(server, "/readyz") == (503, "not ready: no snapshot yet\n")
    server.update(snapshot())
    assert get(server, "/readyz") == (200, "ready\n")
    clock.now += 10.5
    assert get(server, "/readyz") == (503, "not ready: last snapshot is 10 s old\n")
    server.update(snapshot(connected=False))
    assert get(server, "/readyz") == (503, "not ready: store unavailable: connection refused\n")


def test_unknown_path_is_404(server: MetricsServer) -> None:
    """Anything else is not found."""
    assert get(server, "/nope")[0] == 404


def test_stop_releases_the_port() -> None:
    """After stop the port can be bound again, and stop twice is harmless."""
    first = MetricsServer(0, host="127.0.0.1")
    first.start()
    port = first.port
    first.stop()
    first.stop()
    with MetricsServer(port, host="127.0.0.1") as again:
        assert again.port == port
    with pytest.raises(RuntimeError):
        _ = again.port


@pytest.mark.parametrize(
    ("age", "connected", "expected"),
    [(0.0, True, ""), (9.9, True, ""), (10.1, True, "last snapshot is 10 s old")],
)
def test_readiness(age: float, connected: bool, expected: str) -> None:
    """The readiness decision is a pure function of the snapshot and its age."""
    assert readiness(snapshot(connected), age) == expected


def test_rude_scrapes_are_quiet_and_cost_no_threads(
    server: MetricsServer, capfd: pytest.CaptureFixture[str]
) -> None:
    """Scrapes reset mid-request print nothing; 200 idle connections start no thread."""
    reset_connections(server.port, 20)
    threads = threading.active_count()
    idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(200)]
    try:
        assert get(server, "/livez") == (200, "ok\n")
        assert threading.active_count() <= threads + 1
    finally:
        for conn in idle:
            conn.close()
    captured = capfd.readouterr()
    assert "Traceback" not in captured.out + captured.err


def test_every_metric_is_documented(server: MetricsServer) -> None:
    """docs/metrics.md names every metric family /metrics serves."""
    server.update(snapshot())
    body = get(server, "/metrics")[1]
    families = {
        line.split()[2].removesuffix("_total")
        for line in body.splitlines()
        if line.startswith("# TYPE")
    }
    docs = (Path(__file__).parents[2] / "docs" / "metrics.md").read_text()
    named = {name.removesuffix("_total") for name in re.findall(r"`(watcher_\w+)`", docs)}
    assert len(families) > 20
    assert families <= named, f"undocumented: {sorted(families - named)}"
