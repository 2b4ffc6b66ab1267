"""The ``watcher`` command: argument parsing, logging set-up, and one-line errors."""

from __future__ import annotations

import argparse
import logging
import random
import sys
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any

import msgspec
import stamina

from watcher import __version__
from watcher.app import build_worker, run_once, serve, with_store
from watcher.console import Header, LiveConsole, LogSummary, is_interactive
from watcher.environment import environment
from watcher.erp.registry import load_format
from watcher.errors import ConfigError, StoreUnavailable
from watcher.operations import folder_counts, requeue
from watcher.seed import erp_files, tracos_documents, write_erp_files
from watcher.settings import Settings, load_settings
from watcher.status import read_worker_status, worker_problem

log = logging.getLogger("watcher")
ONCE_ATTEMPTS = 5
LIVE_REFRESH_SECONDS = 0.25


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    stamina.instrumentation.set_on_retry_hooks([])  # our own retry policy says it in words
    try:
        settings = load_settings(*environment())
        return _unwrapped(lambda: int(args.command(settings, args) or 0))
    except ConfigError as exc:
        print(f"watcher: configuration error: {exc}", file=sys.stderr)
        return 2
    except StoreUnavailable as exc:
        hint = f"; {exc.hint}" if exc.hint else ""
        print(f"watcher: store unavailable: {exc}{hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _unwrapped(command: Callable[[], int]) -> int:
    """Run ``command``; one of our errors raised inside a task group comes out on its own."""
    try:
        return command()
    except BaseExceptionGroup as group:
        matched, _ = group.split((ConfigError, StoreUnavailable))
        if matched is None:
            raise
        ours: BaseException = matched
        while isinstance(ours, BaseExceptionGroup):
            ours = ours.exceptions[0]
        raise ours from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="watcher", description=__doc__)
    parser.add_argument("--version", action="version", version=f"watcher {__version__}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="the always-on worker")
    run.add_argument("--no-console", action="store_true", help="plain log lines even on a terminal")
    run.set_defaults(command=cmd_run)
    once = commands.add_parser("once", help="process what is waiting in both directions, then exit")
    once.set_defaults(command=cmd_once)
    seed = commands.add_parser("seed", help="write the challenge's sample data")
    seed.add_argument("--tracos", type=int, default=10, metavar="N", help="TracOS documents (10)")
    seed.add_argument("--erp", type=int, default=10, metavar="N", help="ERP files (10)")
    seed.add_argument("--seed", type=int, default=None, help="random seed for repeatable data")
    seed.set_defaults(command=cmd_seed)
    show = commands.add_parser("show", help="stored work orders as a JSON array")
    show.add_argument("numbers", nargs="*", type=int, metavar="NUMBER")
    show.set_defaults(command=cmd_show)
    status = commands.add_parser("status", help="counts, store mode, worker alive?")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(command=cmd_status)
    again = commands.add_parser("requeue", help="move failed files back into the inbound folder")
    again.add_argument("names", nargs="*", metavar="NAME")
    again.set_defaults(command=cmd_requeue)
    health = commands.add_parser("health", help="exit 0 when a worker is running and healthy")
    health.set_defaults(command=cmd_health)
    return parser


def setup_logging(
    settings: Settings, stream: Any = None, handler: logging.Handler | None = None
) -> None:
    """Log lines to ``stream`` (or ``handler``), as text or JSON lines."""
    handler = handler or logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    stamina.instrumentation.set_on_retry_hooks([])  # our own retry log line says more
    logging.getLogger("watchfiles").setLevel(logging.WARNING)  # "N changes detected": noise


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return f"{when[:-4]}Z {record.levelname:<7} {record.getMessage()}"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        return msgspec.json.encode(entry).decode()


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
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
    return 0


def _banner(settings: Settings) -> str:
    store = settings.store_label
    if not settings.mongo_uri:
        store += f" store at {settings.sqlite_path} (set MONGO_URI to use MongoDB)"
    folders = f"inbound {settings.inbound_dir}, outbound {settings.outbound_dir}"
    return f"watcher {__version__} on {store}; {folders}"


def cmd_once(settings: Settings, args: argparse.Namespace) -> int:
    worker = build_worker(settings, attempts=ONCE_ATTEMPTS)
    setup_logging(settings, sys.stderr)
    run_once(worker)
    return 0


def cmd_seed(settings: Settings, args: argparse.Namespace) -> int:
    erp_format = load_format(settings.erp_format)
    setup_logging(settings, sys.stderr)
    rng, now = random.Random(args.seed), datetime.now(UTC)
    docs = tracos_documents(args.tracos, now, rng)
    if docs:
        with_store(settings, lambda store: store.put_documents(docs))
    write_erp_files(settings.inbound_dir, erp_files(erp_format, args.erp, now, rng))
    print(
        f"seeded {len(docs)} TracOS documents ({settings.store_label})"
        f" and {args.erp} ERP files in {settings.inbound_dir}"
    )
    return 0


def cmd_show(settings: Settings, args: argparse.Namespace) -> int:
    docs = with_store(settings, lambda store: store.find(args.numbers))
    sys.stdout.buffer.write(
        msgspec.json.format(msgspec.json.encode(docs, enc_hook=_plain), indent=2)
    )
    sys.stdout.write("\n")
    return 0


def _plain(value: object) -> object:
    """ObjectId and the like as strings; dates in ``show`` keep their offset."""
    return str(value)


def _counts_now(settings: Settings) -> tuple[tuple[int, int] | None, str | None]:
    """The store's (stored, unsynced) from one attempt, or None and why it did not answer."""
    try:
        return with_store(settings, lambda store: store.counts()), None
    except StoreUnavailable as exc:  # status tells what it knows, and that the store is down
        return None, str(exc)


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    counts, store_error = _counts_now(settings)
    stored, unsynced = counts or (None, None)
    worker = read_worker_status(settings)
    problem = worker_problem(worker, datetime.now(UTC))
    report = {
        "store": settings.store_label,
        "store_reachable": store_error is None,
        "store_error": store_error,
        "mode": worker.mode if worker else "unknown (no worker running)",
        "stored": stored,
        "unsynced": unsynced,
        "unexportable": worker.unexportable if worker else [],
        **folder_counts(settings),
        "worker_running": problem is None,
        "worker_problem": problem,
    }
    if args.json:
        print(msgspec.json.encode(report).decode())
        return 0
    for key, value in report.items():
        shown = len(value) if isinstance(value, list) else "unknown" if value is None else value
        print(f"{key.replace('_', ' '):>16}: {shown}")
    for entry in worker.unexportable if worker else []:
        print(f"  unexportable {entry.order}: {entry.reason}")
    return 0


def cmd_requeue(settings: Settings, args: argparse.Namespace) -> int:
    moved, missing = requeue(settings, args.names)
    for name in moved:
        print(f"requeued {name}")
    for name in missing:
        print(f"watcher: no failed file named {name}", file=sys.stderr)
    if not moved and not missing:
        print("nothing to requeue")
    return 1 if missing else 0


def cmd_health(settings: Settings, args: argparse.Namespace) -> int:
    problem = worker_problem(read_worker_status(settings), datetime.now(UTC))
    if problem:
        print(f"unhealthy: {problem}")
        return 1
    print("healthy")
    return 0
