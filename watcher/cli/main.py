"""The ``watcher`` command: argument parsing, logging set-up, and one-line errors."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from importlib import import_module
from typing import Any, Final, NoReturn

from watcher import __version__
from watcher.cli.environment import environment
from watcher.core.errors import (
    ConfigError,
    InvalidDocument,
    StoreMissing,
    StoreTooNew,
    StoreUnavailable,
    WatcherError,
)
from watcher.core.settings import Settings, load_settings

# Every command starts here, and `health` (every 15 s in the container) or `once` with
# nothing to do is little more than its start-up: what only some commands or the error
# line use (logging, msgspec, the ERP folders, the heartbeat) is imported where it is used.
Command = Callable[[Settings, argparse.Namespace], int | None]

DESCRIPTION: Final = "Keeps TracOS work orders and the ERP's JSON files in sync, both ways."


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    env: Mapping[str, str] = os.environ
    try:
        env, origins = environment()
        settings = load_settings(env, origins)
        return _unwrapped(lambda: int(args.command(settings, args) or 0))
    except WatcherError as exc:
        from watcher.observe import fatal, log_format_of

        message, code, kind = _fatal_line(exc)
        fatal(message, log_format_of(env), error=kind)
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return _reader_gone()


def _reader_gone() -> int:
    """The reader of our output went away (``watcher show | head``): stop quietly, with the
    status of a writer that SIGPIPE ended, as other command-line tools do."""
    import signal  # here: only a reader gone needs it, and every command starts in this module

    with contextlib.suppress(OSError):  # Python's flush at exit would hit the pipe again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 128 + signal.SIGPIPE


def _fatal_line(exc: WatcherError) -> tuple[str, int, str]:
    """The one line, the exit code and the kind of error for a JSON line."""
    if isinstance(exc, StoreTooNew):  # no setting is wrong: the message says what to run
        return str(exc), 2, "store from a newer release"
    if isinstance(exc, ConfigError):
        return f"configuration error: {exc}", 2, "configuration"
    if isinstance(exc, StoreMissing):  # its message says how to point at the right one
        return str(exc), 1, "no store"
    if isinstance(exc, StoreUnavailable):
        hint = f"; {exc.hint}" if exc.hint else ""
        return f"store unavailable: {exc}{hint}", 1, "store unavailable"
    if isinstance(exc, InvalidDocument):
        return f"put: {exc}; nothing written", 1, "invalid document"
    return str(exc), 1, "command failed"  # CommandFailed, or any other of ours


def _unwrapped(command: Callable[[], int]) -> int:
    """Run ``command``; one of our errors raised inside a task group comes out on its own."""
    try:
        return command()
    except BaseExceptionGroup as group:
        matched, _ = group.split((WatcherError, BrokenPipeError))
        if matched is None:
            raise
        ours: BaseException = matched
        while isinstance(ours, BaseExceptionGroup):
            ours = ours.exceptions[0]
        raise ours from None


class OneLineParser(argparse.ArgumentParser):
    """Usage errors in one line (exit 2), as every other error of ours."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def order_number(raw: str) -> int:
    """A work-order number as TracOS stores it: an integer from 0 to 2**63 - 1."""
    from watcher.core.tracos import INT64_MAX

    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 <= value <= INT64_MAX:
        raise argparse.ArgumentTypeError(f"not an order number (0 to {INT64_MAX}): {raw!r}")
    return value


def _count(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {raw!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def _positive_count(raw: str) -> int:
    value = _count(raw)
    if value == 0:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _since(raw: str) -> datetime:
    from watcher.observe import history

    try:
        return history.since(raw, datetime.now(UTC))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _days(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of days: {raw!r}") from None
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"must be 0 or more days, not {raw}")
    return value


def _in(module: str, name: str) -> Command:
    """The command ``name`` of ``module``, imported only once it runs:
    ``watcher.cli.store_commands`` loads the store and an ERP format,
    ``watcher.cli.worker`` the worker too, and ``health``, ``requeue`` or a usage error
    need neither (the container runs ``health`` every 15 s)."""

    def command(settings: Settings, args: argparse.Namespace) -> int | None:
        chosen: Command = getattr(import_module(module), name)
        return chosen(settings, args)

    return command


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="watcher", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"watcher {__version__}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND", parser_class=OneLineParser)
    run = commands.add_parser("run", help="the always-on worker")
    run.add_argument("--no-console", action="store_true", help="plain log lines even on a terminal")
    run.set_defaults(command=_in("watcher.cli.worker", "cmd_run"))
    once = commands.add_parser("once", help="process what is waiting in both directions, then exit")
    once.set_defaults(command=_in("watcher.cli.once", "cmd_once"))
    seed = commands.add_parser("seed", help="write the challenge's sample data")
    seed.add_argument(
        "--tracos", type=_count, default=10, metavar="N", help="TracOS documents (10)"
    )
    seed.add_argument("--erp", type=_count, default=10, metavar="N", help="ERP files (10)")
    seed.add_argument("--seed", type=int, default=None, help="random seed for repeatable data")
    seed.add_argument(
        "--force", action="store_true", help="replace stored orders and inbound files 1..N"
    )
    seed.set_defaults(command=_in("watcher.cli.store_commands", "cmd_seed"))
    put = commands.add_parser("put", help="write TracOS documents as TracOS would")
    put.add_argument("file", metavar="FILE", help="a JSON array of TracOS documents, - for stdin")
    put.add_argument("--force", action="store_true", help="replace stored ones, newer or not")
    put.set_defaults(command=_in("watcher.cli.store_commands", "cmd_put"))
    show = commands.add_parser("show", help="stored work orders as a JSON array")
    show.add_argument("numbers", nargs="*", type=order_number, metavar="NUMBER")
    show.set_defaults(command=_in("watcher.cli.store_commands", "cmd_show"))
    status = commands.add_parser("status", help="counts, store mode, worker alive?")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(command=_in("watcher.cli.store_commands", "cmd_status"))
    story = commands.add_parser("history", help="what happened to an order, or to a file")
    whose = story.add_mutually_exclusive_group(required=True)
    whose.add_argument("number", nargs="?", type=order_number, metavar="NUMBER")
    whose.add_argument("--file", metavar="NAME", help="an inbound or outbound file's story")
    _journal_window(story)
    story.set_defaults(command=_in("watcher.cli.store_commands", "cmd_history"))
    _agreement_commands(commands)
    again = commands.add_parser("requeue", help="move failed files back into the inbound folder")
    again.add_argument("names", nargs="*", metavar="NAME")
    again.set_defaults(command=cmd_requeue)
    failed = commands.add_parser("failed", help="failed files with their reasons, newest first")
    failed.add_argument("--json", action="store_true", help="machine-readable output")
    failed.set_defaults(command=cmd_failed)
    health = commands.add_parser("health", help="exit 0 when a worker is running and healthy")
    health.set_defaults(command=cmd_health)
    prune = commands.add_parser("prune", help="remove archived and failed files older than DAYS")
    prune.add_argument("--older-than", type=_days, required=True, metavar="DAYS")
    prune.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    prune.set_defaults(command=_in("watcher.cli.store_commands", "cmd_prune"))
    schema = commands.add_parser("schema", help="the JSON Schema of the ERP format's files")
    schema.add_argument(
        "--outbound", action="store_true", help="of the files written for the ERP instead"
    )
    schema.add_argument(
        "--receipts", action="store_true", help="of the receipts written for it (RECEIPTS_DIR)"
    )
    schema.set_defaults(command=_in("watcher.cli.store_commands", "cmd_schema"))
    _add_operations(commands)
    return parser


def _add_operations(commands: argparse._SubParsersAction[OneLineParser]) -> None:
    """``config``, ``pause`` and ``resume``: operating a deployment."""
    config = commands.add_parser("config", help="effective settings and where each came from")
    config.add_argument("--json", action="store_true", help="machine-readable output")
    config.set_defaults(command=_in("watcher.cli.operate", "cmd_config"))
    for verb, says in HOLDS.items():
        hold = commands.add_parser(verb, help=says)
        hold.add_argument("direction", choices=("inbound", "outbound"))
        hold.set_defaults(command=_in("watcher.cli.operate", f"cmd_{verb}"))


HOLDS = {
    "pause": "hold one direction, also across restarts (the batch in flight finishes)",
    "resume": "end a pause",
}


def _journal_window(reader: argparse.ArgumentParser) -> None:
    """``--since``, ``--limit`` and ``--json``: a command that reads the journal."""
    reader.add_argument(
        "--since", type=_since, metavar="WHEN", help="from this time (ISO 8601) or age (2h, 7d)"
    )
    reader.add_argument(
        "--limit", type=_positive_count, default=1000, metavar="N", help="the newest N (1000)"
    )
    reader.add_argument("--json", action="store_true", help="machine-readable output")


def _agreement_commands(commands: Any) -> None:
    """``verify``, ``conflicts``, ``resend`` and ``replay`` (docs/agreement.md)."""
    check = commands.add_parser("verify", help="where the store and the ERP's folders disagree")
    check.add_argument("--json", action="store_true", help="JSON lines, one per finding")
    check.add_argument(
        "--archive", action="store_true", help="also archived ERP files newer than stored"
    )
    check.set_defaults(command=_in("watcher.cli.agreement", "cmd_verify"))
    clashes = commands.add_parser("conflicts", help="orders both sides changed since last synced")
    _journal_window(clashes)
    clashes.set_defaults(command=_in("watcher.cli.agreement", "cmd_conflicts"))
    resend = commands.add_parser("resend", help="make orders go out to the ERP again")
    resend.add_argument("numbers", nargs="*", type=order_number, metavar="NUMBER")
    resend.add_argument("--since", type=_since, metavar="WHEN", help="orders updated since WHEN")
    resend.add_argument("--all", action="store_true", help="every stored order")
    resend.add_argument("--dry-run", action="store_true", help="only say what would go out")
    resend.set_defaults(command=_in("watcher.cli.repairs", "cmd_resend"))
    replay = commands.add_parser("replay", help="apply archived ERP files again (newer wins)")
    replay.add_argument("files", nargs="*", metavar="FILE", help="names in the archive folder")
    replay.add_argument("--since", type=_since, metavar="WHEN", help="files archived since WHEN")
    replay.add_argument("--dry-run", action="store_true", help="per order, what would happen")
    replay.set_defaults(command=_in("watcher.cli.repairs", "cmd_replay"))


def cmd_requeue(settings: Settings, args: argparse.Namespace) -> int:
    from watcher.core.printable import printable
    from watcher.erp import requeue

    moved, missing = requeue(settings, args.names)
    for name in moved:
        print(f"requeued {printable(name)}")
    for name in missing:
        print(f"watcher: no failed file named {printable(name)}", file=sys.stderr)
    if not moved and not missing:
        print("nothing to requeue")
    return 1 if missing else 0


def cmd_failed(settings: Settings, args: argparse.Namespace) -> int:
    import msgspec

    from watcher.core.printable import json_safe, printable
    from watcher.erp import failed_lines, read_failed

    entries = read_failed(settings.failed_dir)
    if args.json:
        print(json_safe(msgspec.json.encode(entries)).decode())
    elif entries:
        print("\n".join(failed_lines(entries, settings.inbound_dir)))
    else:
        print(f"no failed files in {printable(str(settings.failed_dir))}")
    return 0


def cmd_health(settings: Settings, args: argparse.Namespace) -> int:
    from watcher.core.printable import printable
    from watcher.observe import health_problem

    problem = health_problem(settings, datetime.now(UTC))
    if problem and not settings.state_dir.is_dir():  # most likely the wrong directory
        problem = (
            f"{problem}: there is no {settings.state_dir} here; run this in the worker's"
            " directory, or set DATA_STATE_DIR to its state folder"
        )
    if problem:
        print(f"unhealthy: {printable(problem)}")
        return 1
    print("healthy")
    return 0
