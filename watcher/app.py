"""The composition root: settings → store, ERP integration, pipelines and reporting.

Only this module and ``watcher.store.configured`` (the store and its journal) pick
adapters, and each adapter (the MongoDB driver, the file watcher, the metrics server) is
imported only once it is picked. Constructors here and below do no I/O: folders, locks
and connections are taken in ``Worker.open``.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Final, NoReturn

import anyio
from anyio.abc import TaskGroup

from watcher.core.errors import ConfigError
from watcher.core.settings import Settings
from watcher.erp.port import ErpFormat, InboundSource, OutboundSink
from watcher.erp.registry import load_format
from watcher.observe.reporting import Reporter, Reporting
from watcher.opening import prepare_worker, recorder
from watcher.store import WorkOrderStore
from watcher.store.configured import build_store
from watcher.sync.bookkeeping import Observer, standard_books
from watcher.sync.drift import DriftWatch
from watcher.sync.drift_ledger import LEDGER_FILE, DriftLedger
from watcher.sync.inbound import Inbound
from watcher.sync.journaling import Recorder
from watcher.sync.outbound import Outbound
from watcher.sync.repair import Repair
from watcher.sync.reported import ReportedVersions
from watcher.sync.retrying import StoreRetry
from watcher.sync.stats import Count, Snapshot, Stats, StoreState

if TYPE_CHECKING:
    from watcher.observe.metrics import MetricsServer

log = logging.getLogger(__name__)
# Ctrl-C pressed this often quits without waiting for the batch in flight (README)
FORCE_QUIT_INTERRUPTS: Final = 3
REPORTED_FILE: Final = "unexportable-reported.json"  # in the state folder
_FORCE_QUIT_HINT: Final = f"Ctrl-C {FORCE_QUIT_INTERRUPTS} times quits at once"
DRIFT_JOURNAL_SECONDS: Final = 1.0


@dataclass(frozen=True, slots=True)
class Integration:
    """One customer's ERP: how it spells orders, where they come from and go to."""

    name: str
    format: ErpFormat
    source: InboundSource
    sink: OutboundSink


def build_integration(settings: Settings, stats: Stats) -> Integration:
    """The ERP named by ``ERP_FORMAT``, exchanging files through the configured folders."""
    from watcher.erp.folders.sink import FolderSink
    from watcher.erp.folders.source import FolderSource

    return Integration(
        name=settings.erp_format,
        format=DriftWatch(
            load_format(settings.erp_format),
            stats,
            DriftLedger(settings.state_dir / LEDGER_FILE),
        ),
        source=FolderSource(settings, stats.trouble("in")),
        sink=FolderSink(settings, stats.trouble("out", Count.EXPORT_ERRORS)),
    )


def build_worker(
    settings: Settings, store: WorkOrderStore | None = None, attempts: int | None = None
) -> Worker:
    """``attempts`` bounds store retries (``once``); None waits out any outage (``run``)."""
    # not "connected" before the store has answered once: a start-up outage must not
    # begin with two seconds of "store connected" on the console and in health
    stats = Stats(started=datetime.now(UTC), store=StoreState(connected=False))
    integration = build_integration(settings, stats)
    retry = StoreRetry(stats, settings.retry_max_seconds, attempts)
    return Worker(settings, store or build_store(settings), integration, stats, retry)


def pipelines(
    settings: Settings,
    *,
    store: WorkOrderStore,
    integration: Integration,
    stats: Stats,
    retry: StoreRetry,
    journal: Recorder,
) -> tuple[Inbound, Outbound]:
    """The two pipelines, the books they keep and the repair they share."""
    observers: list[Observer] = []
    if settings.receipts_dir is not None:
        from watcher.sync.receipts import Receipts

        observers.append(Receipts(settings.receipts_dir, settings.archive_dir, settings.failed_dir))
    books = standard_books(stats, journal, observers)
    repair = Repair(integration.format, integration.sink, store, stats, retry, journal)
    inbound = Inbound(
        integration.source,
        integration.format,
        store,
        stats,
        retry,
        settings.batch_size,
        settings.rescan_seconds,
        books,
        repair,
        integration.format.name_examples if isinstance(integration.format, DriftWatch) else None,
    )
    outbound = Outbound(
        integration.format,
        integration.sink,
        store,
        retry,
        settings.batch_size,
        settings.poll_seconds,
        settings.retry_max_seconds,
        str(settings.outbound_dir),
        books,
        stats.pauses,
        repair,
        ReportedVersions(settings.state_dir / REPORTED_FILE),
    )
    return inbound, outbound


class Worker:
    """One running worker: its store, ERP integration, pipelines and stats."""

    def __init__(
        self,
        settings: Settings,
        store: WorkOrderStore,
        integration: Integration,
        stats: Stats,
        retry: StoreRetry,
    ) -> None:
        self.settings = settings
        self.store = store
        self.integration = integration
        self.stats = stats
        stats.trigger = store.trigger  # the store's sweeps and progress, in every snapshot
        self.retry = retry
        self.opened = False  # the store was reached: files may have been claimed
        self.graced_out = False  # a stop did not wait for the batch in flight to finish
        self.left_claimed = 0  # files claimed when it closed: resumed at the next start
        self.journal = recorder(settings, store, retry)
        self.inbound, self.outbound = pipelines(
            settings,
            store=store,
            integration=integration,
            stats=stats,
            retry=retry,
            journal=self.journal,
        )
        self.reporting = Reporting(settings, stats, store, integration.source)

    async def open(self, meanwhile: TaskGroup | None = None) -> None:
        """Folders and the claim lock (a bad folder raises ``ConfigError``), then the store;
        while the store is awaited, ``meanwhile`` counts the files waiting for it."""
        await anyio.to_thread.run_sync(self._prepare)
        resumed = await self.integration.source.open()
        if resumed:
            log.warning(
                "resumed %d files left claimed by a stopped worker",
                resumed,
                extra={"counts": {"resumed": resumed}},
            )
        if meanwhile is not None:
            meanwhile.start_soon(self.reporting.count_waiting)
            meanwhile.start_soon(self.reporting.refresh_backlog)
        await self.retry(self.store.open)
        self.opened = True
        await self.journal.open()

    def _prepare(self) -> None:
        self.stats.pauses.update(prepare_worker(self.settings))  # before any work

    async def close(self) -> None:
        """Release the claim folder (a later start resumes anything left in it)."""
        self.left_claimed = await self.integration.source.close()
        if self.opened:
            await self.journal.close()
        await self.store.close()

    def stop_summary(self) -> str:
        """What a stop really did, for the last line of ``run``."""
        if not self.opened:
            return "stopped during start-up, before the store was reached: no file was claimed"
        if self.left_claimed:
            grace = f" after the {self.settings.stop_grace_seconds:g} s grace"
            return f"stopped{grace if self.graced_out else ''}; {_left_claimed(self.left_claimed)}"
        return "stopped: every file taken was stored and filed away"

    async def serve(
        self, stop: anyio.Event, report: Reporter | None = None, every: float = 1.0
    ) -> None:
        """Open (waiting out a store outage), run until ``stop``, close; ``stop`` ends any of it.

        Reporting runs from the first second: a start-up outage shows on the console, in
        the status file and in readiness like any other.
        """
        try:
            await anyio.to_thread.run_sync(self._prepare)  # the state folder, for the heartbeat
            async with anyio.create_task_group() as tg:
                tg.start_soon(self.reporting.run, report, every)
                opened = await _unless_stopped(stop, partial(self.open, tg))
                tg.cancel_scope.cancel()
            if opened:
                where, mode, erp = self.settings.inbound_dir, self.store.mode, self.integration.name
                fields = {"inbound": str(where), "mode": mode, "erp_format": erp}
                log.info(
                    "watching %s (store mode: %s, ERP format: %s)", where, mode, erp, extra=fields
                )
                await self.run(stop, report, every)
        finally:
            await self.close()

    async def run(
        self, stop: anyio.Event, report: Reporter | None = None, every: float = 1.0
    ) -> None:
        """Until ``stop``: inbound and outbound together; then finish the batch in flight.

        ``report`` gets a snapshot every ``every`` seconds (a live console wants 4 a second).
        """
        inbound_done = anyio.Event()

        async def inbound() -> None:
            await self.inbound.run(stop)
            inbound_done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(self.stats.pauses.follow, self.settings.state_dir)
            tg.start_soon(inbound)
            tg.start_soon(self.outbound.run)
            tg.start_soon(self.reporting.run, report, every)
            tg.start_soon(self.reporting.refresh_counts)
            tg.start_soon(self.reporting.refresh_backlog)
            tg.start_soon(self.journal.forget_old)
            tg.start_soon(self.journal.write_idle)
            tg.start_soon(self._journal_drift)
            await stop.wait()
            with anyio.move_on_after(self.settings.stop_grace_seconds) as grace:
                await inbound_done.wait()
                await self.outbound.finish()  # its batch in flight too: marks are said
            self.graced_out = grace.cancelled_caught
            tg.cancel_scope.cancel()

    async def once(self) -> None:
        """Process what is waiting in both directions, then return (the journal's entries
        go with the store's next write; what still waits is written when the worker closes)."""
        await self.outbound.sink.recover()  # a crash's temp files: cron users never `run`
        while True:
            await self.inbound.drain()
            due = self.integration.source.next_look()
            if due is None:
                break
            # files not yet valid JSON: judge them once they have been quiet long enough
            await anyio.sleep(max(0.05, due - time.monotonic()))
        if not self.stats.pauses.holds("outbound"):
            await self.outbound.sweep()
        await self._record_drift()
        await self.journal.forget()

    async def _journal_drift(self) -> None:
        """Keys the ERP started sending, into the journal as they are first seen."""
        while True:
            await anyio.sleep(DRIFT_JOURNAL_SECONDS)
            await self._record_drift()

    async def _record_drift(self) -> None:
        watch = self.integration.format
        if not isinstance(watch, DriftWatch):
            return
        entries = await anyio.to_thread.run_sync(watch.new_entries, self.journal.worker)
        if self.journal.on and entries:
            await self.journal.record(entries)


def serve(worker: Worker, reporters: list[Reporter], every: float) -> None:
    """Run ``worker`` until SIGINT/SIGTERM, with the metrics server if a port is set."""
    with ExitStack() as stack:
        if worker.settings.metrics_port:
            reporters = [*reporters, stack.enter_context(_metrics(worker.settings))]
        anyio.run(_serve, worker, _fan_out(reporters), every, backend="asyncio")


async def _serve(worker: Worker, report: Reporter, every: float) -> None:
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(_stop_on_signal, stop, worker.settings.stop_grace_seconds)
        await worker.serve(stop, report, every)
        tg.cancel_scope.cancel()


def _fan_out(reporters: list[Reporter]) -> Reporter:
    async def report(snapshot: Snapshot) -> None:
        for reporter in reporters:
            await reporter(snapshot)

    return report


@contextmanager
def _metrics(settings: Settings) -> Iterator[MetricsServer]:
    """The metrics server for as long as the worker runs; a busy port or an address that is
    not this host's is a setting error."""
    from watcher.observe import api  # the HTTP answers: only a worker that serves them imports them
    from watcher.observe.metrics import MetricsServer
    from watcher.observe.security import exposure_warning, tls_context, token_guard

    host, port = settings.metrics_host, settings.metrics_port or 0
    server = MetricsServer(
        port,
        host,
        routes=lambda served: api.routes(settings, served.latest),
        guard=token_guard(settings.http_token, settings.metrics_token_required),
        tls=tls_context(settings),
    )
    try:
        server.start()
    except OSError as exc:  # asyncio's bind error repeats the address: its errno says it
        reason = os.strerror(exc.errno) if exc.errno and exc.errno > 0 else exc.strerror
        raise ConfigError(
            f"METRICS_HOST/METRICS_PORT: cannot listen on {_url_host(host)}:{port}: {reason or exc}"
        ) from None
    paths = ", ".join(["/livez", "/readyz", *server.routes])
    scheme = "https" if settings.tls_cert_file else "http"
    url = f"{scheme}://{_url_host(server.host)}:{server.port}"
    if warning := exposure_warning(settings):
        log.warning("%s", warning)
    log.info("metrics on %s/metrics (also %s)", url, paths, extra={"url": url})
    try:
        yield server
    finally:
        server.stop()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _left_claimed(count: int) -> str:
    files = "1 claimed file" if count == 1 else f"{count} claimed files"
    return f"{files} will be resumed at the next start"


async def _stop_on_signal(stop: anyio.Event, grace: float) -> None:
    """Set ``stop`` at the first stop signal, and keep answering the ones that follow: a
    SIGTERM to the process group reaches the worker twice under ``uv run`` (once directly,
    once forwarded), and the default action of the second would cut the batch in flight.
    Only a deliberate third Ctrl-C quits at once."""
    stops = [signal.SIGINT, signal.SIGTERM]
    if signal.getsignal(signal.SIGHUP) != signal.SIG_IGN:  # under nohup, a hangup is no stop
        stops.append(signal.SIGHUP)
    interrupts = 0
    with anyio.open_signal_receiver(*stops) as signals:
        async for received in signals:
            name = signal.Signals(received).name
            interrupts += received == signal.SIGINT
            if interrupts >= FORCE_QUIT_INTERRUPTS:
                _force_quit(name)
            elif stop.is_set():
                log.warning("%s received again: already stopping (%s)", name, _FORCE_QUIT_HINT)
            else:
                log.warning(
                    "%s received: finishing the batch in flight (for up to %g s)", name, grace
                )
                stop.set()


def _force_quit(name: str) -> NoReturn:
    """The operator insists: leave now; what is claimed is resumed at the next start (the
    claim folder's lock dies with the process)."""
    log.warning(
        "%s received a third time: quitting at once; claimed files wait for the next start", name
    )
    logging.shutdown()
    os._exit(130)


def run_once(worker: Worker) -> None:
    """Process what is waiting in both directions with ``worker``, then close it (what it
    did is in ``worker.stats``)."""

    async def main() -> None:
        try:
            await worker.open()
            await worker.once()
        finally:
            await worker.close()
            if worker.left_claimed:
                log.warning("%s", _left_claimed(worker.left_claimed))

    anyio.run(main, backend="asyncio")


async def _unless_stopped(stop: anyio.Event, work: Callable[[], Awaitable[None]]) -> bool:
    """Run ``work`` unless ``stop`` is set first; True when it finished."""
    finished = False
    async with anyio.create_task_group() as tg:

        async def cancel_on_stop() -> None:
            await stop.wait()
            tg.cancel_scope.cancel()

        tg.start_soon(cancel_on_stop)
        await work()
        finished = True
        tg.cancel_scope.cancel()
    return finished
