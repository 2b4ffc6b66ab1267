"""Prometheus metrics and health endpoints, read from the latest stats snapshot.

A collector turns the newest ``Snapshot`` into metric families on each scrape (its own
registry, never the global one); a small HTTP server serves ``/metrics``, ``/livez`` and
``/readyz`` next to the worker, and the JSON routes of ``watcher.observe.api`` beside them.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Final, Self
from urllib.parse import urlsplit

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from watcher.core.printable import printable
from watcher.observe import api, families
from watcher.observe.heartbeat import FRESH_SECONDS
from watcher.observe.http_server import TEXT, Guard, HttpServer, Response
from watcher.sync import ORDERS, Count, Snapshot

# counter name (without _total) → (snapshot counter, help text)
COUNTERS: Final = {
    "watcher_files_seen": (Count.FILES_SEEN, "Inbound files taken (archived or quarantined)."),
    "watcher_files_failed": (
        Count.FILES_FAILED,
        "Inbound files quarantined in the failed folder.",
    ),
    "watcher_exported": (Count.EXPORTED, "Work orders written to the outbound folder and marked."),
    "watcher_unexportable": (Count.UNEXPORTABLE, "Work orders that could not be translated."),
    "watcher_export_errors": (Count.EXPORT_ERRORS, "Outbound files that could not be written."),
    "watcher_changed_during_export": (
        Count.CHANGED_DURING_EXPORT,
        "Exported work orders left unsynced because they changed meanwhile.",
    ),
    "watcher_conflicts": (
        Count.CONFLICTS,
        "ERP versions that met a TracOS change not yet synced (the newer won).",
    ),
    "watcher_versions_not_dates": (
        Count.VERSIONS_NOT_DATES,
        "Stored updatedAt values that named no date, overwritten by the ERP's version.",
    ),
    "watcher_outbound_repaired": (
        Count.REPAIRED,
        "Outbound files rewritten because they held another version than the store's.",
    ),
    "watcher_store_retries": (
        Count.RETRIES,
        "Store calls retried after the store was unavailable.",
    ),
}


class SnapshotCollector:
    """A prometheus-client collector over the latest snapshot (nothing before the first)."""

    def __init__(self) -> None:
        self.latest: Snapshot | None = None

    def update(self, snapshot: Snapshot) -> None:
        self.latest = snapshot  # one reference swap: safe to read from the server threads

    def collect(self) -> Iterator[Metric]:
        snapshot = self.latest
        if snapshot is None:
            return
        yield families.build_info()
        yield from _counters(snapshot)
        yield from _gauges(snapshot)
        yield from families.latencies(snapshot)
        yield from families.trigger(snapshot)
        yield families.pauses(snapshot.paused)
        yield from families.worker(snapshot)


def _counters(snapshot: Snapshot) -> Iterator[Metric]:
    for name, (key, documentation) in COUNTERS.items():
        yield CounterMetricFamily(name, documentation, value=snapshot.counters.get(key, 0))
    orders = CounterMetricFamily(
        "watcher_orders", "Inbound work orders by outcome.", labels=["outcome"]
    )
    for outcome, counter in ORDERS.items():
        orders.add_metric([outcome], snapshot.counters.get(counter, 0))
    yield orders


def _gauges(snapshot: Snapshot) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "watcher_files_waiting", "Files waiting in the inbound folder.", snapshot.waiting_files
    )
    yield GaugeMetricFamily(
        "watcher_unsynced_orders", "Work orders not yet exported.", snapshot.unsynced
    )
    yield from _lag(snapshot)
    yield GaugeMetricFamily(
        "watcher_unexportable_orders",
        "Work orders that cannot be exported until they change.",
        snapshot.unexportable_total,
    )
    yield GaugeMetricFamily(
        "watcher_store_up", "1 when the store answers, 0 while retrying.", snapshot.store.connected
    )
    yield GaugeMetricFamily(
        "watcher_start_time_seconds", "Worker start, Unix time.", snapshot.started.timestamp()
    )
    drift = GaugeMetricFamily(
        "watcher_erp_unknown_key_files",
        "Files checked that carried an ERP key the format does not know (at most 20 keys).",
        labels=["key"],
    )
    for key, seen in snapshot.drift.items():
        drift.add_metric([key], seen.files)
    yield drift


def _lag(snapshot: Snapshot) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "watcher_files_in_flight",
        "Inbound files claimed and not yet archived or quarantined.",
        snapshot.in_flight,
    )
    yield GaugeMetricFamily(
        "watcher_oldest_file_waiting_seconds",
        "Age of the oldest file waiting in the inbound folder, since it landed (0: none).",
        snapshot.waiting_age or 0.0,
    )
    yield GaugeMetricFamily(
        "watcher_oldest_unsynced_seconds",
        "Age of the oldest unsynced work order, since its updatedAt (0: none).",
        snapshot.unsynced_age or 0.0,
    )


def readiness(snapshot: Snapshot | None, age: float, fresh_seconds: float = FRESH_SECONDS) -> str:
    """Why the worker is not ready ("" when it is): no fresh snapshot, the store is down,
    or a side effect (the status file) keeps failing."""
    if snapshot is None:
        return "no snapshot yet"
    if age > fresh_seconds:
        return f"last snapshot is {age:.0f} s old"
    if not snapshot.store.connected:
        error = " ".join(snapshot.store.error.split()) or "not reached yet (connecting)"
        return f"store unavailable: {error}"
    if snapshot.problems:
        return "; ".join(" ".join(problem.split()) for problem in snapshot.problems)
    return ""


PATHS: Final = ("/metrics", "/livez", "/readyz")
# No snapshot for this long (one comes every second): the worker's loop is stuck, restart it.
LIVE_SECONDS: Final = 60.0


class MetricsServer:
    """``/metrics``, ``/livez``, ``/readyz`` and the JSON ``routes`` on ``host:port`` (port 0
    picks a free one); only this host can ask unless ``host`` says otherwise."""

    def __init__(
        self,
        port: int,
        host: str = "127.0.0.1",
        fresh_seconds: float = FRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        routes: Callable[[MetricsServer], Mapping[str, api.Route]] | None = None,
        *,
        guard: Guard | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """``routes``: the JSON routes, made for this server (they may ask ``latest``);
        ``guard`` refuses requests without the token; ``tls``: HTTPS only."""
        self.collector = SnapshotCollector()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.collector)
        self.fresh_seconds = fresh_seconds
        self._clock = clock
        self._received: float | None = None
        self._http = HttpServer(self.respond, host, port, guard=guard, tls=tls)
        self.routes = dict(routes(self)) if routes else {}

    async def __call__(self, snapshot: Snapshot) -> None:
        self.update(snapshot)

    def update(self, snapshot: Snapshot) -> None:
        self.collector.update(snapshot)
        self._received = self._clock()

    def latest(self) -> Snapshot | None:
        """The newest snapshot served (None before the first)."""
        return self.collector.latest

    @property
    def port(self) -> int:
        """The bound port (after ``start``), useful when it was 0."""
        return self._http.port

    @property
    def host(self) -> str:
        """The bound address (after ``start``)."""
        return self._http.host

    def start(self) -> None:
        """Bind and serve in a daemon thread; raises ``OSError`` when the port is taken."""
        self._http.start()

    def stop(self) -> None:
        self._http.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def respond(self, path: str, accept: str) -> Response:
        """The answer to a GET of ``path`` (called from the server threads)."""
        target = urlsplit(path)
        if (route := self.routes.get(target.path)) is not None:
            return api.answer(route, target.query)
        if target.path == "/metrics":
            encode, content_type = choose_encoder(accept)
            return 200, content_type, encode(self.registry)
        if target.path == "/livez":
            return self._live()
        if target.path == "/readyz":
            return self._ready()
        known = ", ".join((*PATHS, *self.routes))
        return 404, TEXT, f"not found: {printable(target.path[:200])} (try {known})\n".encode()

    def _live(self) -> Response:
        """Alive unless the worker's loop has stopped taking snapshots (never the store:
        snapshots go on through an outage); alive before the first one (start-up)."""
        if self._received is not None and (age := self._clock() - self._received) > LIVE_SECONDS:
            return (
                503,
                TEXT,
                f"not live: no snapshot for {age:.0f} s (the loop is stuck)\n".encode(),
            )
        return 200, TEXT, b"ok\n"

    def _ready(self) -> Response:
        age = 0.0 if self._received is None else self._clock() - self._received
        reason = readiness(self.collector.latest, age, self.fresh_seconds)
        if reason:
            return 503, TEXT, f"not ready: {reason}\n".encode()
        return 200, TEXT, b"ready\n"
