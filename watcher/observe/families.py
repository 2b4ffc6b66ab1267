"""The metric families that follow Prometheus practice beyond plain counters and gauges:
latency histograms, build information, the outbound trigger's sweeps and progress, and
the pause state of each direction (docs/metrics.md lists every metric)."""

from __future__ import annotations

import platform
from collections.abc import Iterator
from typing import Final

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from watcher import __version__
from watcher.sync import BUCKETS, Histogram, Snapshot

DIRECTIONS: Final = ("inbound", "outbound")


def histogram(name: str, documentation: str, seen: Histogram) -> Metric:
    """Cumulative buckets (``le``), ``_sum`` and ``_count`` of every sample since start."""
    cumulative, running = [], 0
    for bound, count in zip((*map(str, BUCKETS), "+Inf"), seen.counts, strict=True):
        running += count
        cumulative.append((bound, float(running)))
    return HistogramMetricFamily(name, documentation, buckets=cumulative, sum_value=seen.total)


def latencies(snapshot: Snapshot) -> Iterator[Metric]:
    yield histogram(
        "watcher_inbound_latency_seconds",
        "File landed → its orders committed and the file filed away, seconds.",
        snapshot.histogram_in,
    )
    yield histogram(
        "watcher_outbound_latency_seconds",
        "TracOS change (its change event's time) → outbound file durable, seconds.",
        snapshot.histogram_out,
    )


def build_info() -> Metric:
    info = GaugeMetricFamily(
        "watcher_build_info",
        "Always 1; the labels say which worker runs.",
        labels=["version", "python_version"],
    )
    info.add_metric([__version__, platform.python_version()], 1)
    return info


def trigger(snapshot: Snapshot) -> Iterator[Metric]:
    """The outbound trigger: its sweeps, and when it last showed life."""
    done = snapshot.trigger
    yield CounterMetricFamily(
        "watcher_sweeps",
        "Sweeps of every unsynced work order (each stream (re)open, poll, start).",
        value=done.sweeps,
    )
    yield CounterMetricFamily(
        "watcher_sweep_seconds",
        "Time spent sweeping, all sweeps together.",
        value=done.sweep_seconds,
    )
    yield CounterMetricFamily(
        "watcher_swept_orders", "Unsynced work orders found by sweeps.", value=done.swept_orders
    )
    yield GaugeMetricFamily(
        "watcher_last_sweep_duration_seconds",
        "How long the last sweep took (0: none yet).",
        done.last_sweep_seconds,
    )
    if done.progressed_at is not None:
        yield GaugeMetricFamily(
            "watcher_outbound_progress_timestamp_seconds",
            "Unix time the outbound trigger last showed progress: a change event, the change"
            " stream's resume point moving on, a poll, or a look at the embedded store.",
            done.progressed_at,
        )


def pauses(paused: frozenset[str]) -> Metric:
    gauge = GaugeMetricFamily(
        "watcher_paused",
        "1 while the direction is paused (watcher pause), else 0.",
        labels=["direction"],
    )
    for direction in DIRECTIONS:
        gauge.add_metric([direction], float(direction in paused))
    return gauge


def worker(snapshot: Snapshot) -> Iterator[Metric]:
    """When the newest snapshot was taken, and the room left for the data folders."""
    yield GaugeMetricFamily(
        "watcher_last_snapshot_timestamp_seconds",
        "Unix time of the newest snapshot (one a second while the worker's loop runs).",
        snapshot.now.timestamp(),
    )
    free = GaugeMetricFamily(
        "watcher_folder_free_bytes",
        "Free bytes on the file system of each data folder.",
        labels=["folder"],
    )
    size = GaugeMetricFamily(
        "watcher_folder_size_bytes",
        "Size in bytes of the file system of each data folder.",
        labels=["folder"],
    )
    for folder, (available, total) in sorted(snapshot.disk.items()):
        free.add_metric([folder], available)
        size.add_metric([folder], total)
    yield free
    yield size
