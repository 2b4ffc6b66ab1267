"""The commands that run the worker: ``run`` (always on) and ``once`` (``cli.py`` parses
their arguments, and imports this module only to run one of them: the worker's modules,
the file watcher and the retry library load for these two commands alone)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Final

from watcher import __version__
from watcher.app import build_worker, run_once, serve
from watcher.cli.once import once_summary
from watcher.core.settings import Settings
from watcher.observe import setup_logging, tracing_from
from watcher.sync import ORDERS, Count, Snapshot

log = logging.getLogger("watcher")
ONCE_ATTEMPTS: Final = 5
LIVE_REFRESH_SECONDS: Final = 0.25
THREADS_WAIT_SECONDS: Final = 0.2  # for threads still busy when ``run`` has said its last line


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    with tracing_from(os.environ):  # before the store: its client reports its commands
        return _run(settings, args)


def _run(settings: Settings, args: argparse.Namespace) -> int:
    from watcher.observe import Header, LiveConsole, LogSummary, is_interactive

    worker = build_worker(settings)
    live = None
    if is_interactive(sys.stdout) and not args.no_console:
        live = LiveConsole(lambda: Header.from_settings(settings, __version__, worker.store.mode))
        setup_logging(settings, handler=live.log_handler())
        live.console.print(_banner(settings), highlight=False)
    else:
        setup_logging(settings, sys.stdout)
        log.info(_banner(settings))
    with ExitStack() as stack:
        if live:
            stack.enter_context(live)
        serve(worker, [live or LogSummary()], LIVE_REFRESH_SECONDS if live else 1.0)
    summary = worker.stop_summary()
    if live:
        live.console.print(summary, highlight=False)
    log.info("%s", summary)
    _leave_stuck_calls()
    return 0


def _leave_stuck_calls() -> None:
    """A store call stuck behind another process's lock was given up at the stop (its
    thread waits out SQLite's busy timeout): end now rather than wait for it at exit,
    beyond the grace a supervisor gives. SQLite allows it: what was committed is on disk,
    what was not is rolled back, and what stays claimed is resumed at the next start."""
    deadline = time.monotonic() + THREADS_WAIT_SECONDS
    others = [t for t in threading.enumerate() if t is not threading.current_thread()]
    for thread in others:
        if not thread.daemon:  # idle worker threads end at once: they are not waited for long
            thread.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() and not t.daemon for t in others):
        logging.shutdown()
        sys.stdout.flush()
        os._exit(0)


def _banner(settings: Settings) -> str:
    store = settings.store_label
    if not settings.mongo_uri:
        store += f" store at {settings.sqlite_path} (set MONGO_URI to use MongoDB)"
    folders = f"inbound {settings.inbound_dir}, outbound {settings.outbound_dir}"
    return f"watcher {__version__} on {store}; {folders}"


def cmd_once(settings: Settings, args: argparse.Namespace) -> int:
    with tracing_from(os.environ):
        worker = build_worker(settings, attempts=ONCE_ATTEMPTS)
        setup_logging(settings, sys.stderr)
        run_once(worker)
    counts = once_counts(worker.stats.snapshot(datetime.now(UTC)))
    log.info("%s", once_summary(counts), extra={"counts": counts})
    return 0


def once_counts(snapshot: Snapshot) -> dict[str, int]:
    """What one ``once`` did, by name: files archived and failed, orders by outcome, exports."""
    counted = snapshot.counters
    return {
        "files_archived": counted.get(Count.FILES_ARCHIVED, 0),
        "files_failed": counted.get(Count.FILES_FAILED, 0),
        **{f"orders_{o}": counted.get(c, 0) for o, c in ORDERS.items()},
        "exported": counted.get(Count.EXPORTED, 0),
        # stuck now (listed), whether or not this run was the first to say so
        "unexportable": snapshot.unexportable_total,
    }
