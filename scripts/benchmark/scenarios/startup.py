"""Start-up: ``watcher status``, ``watcher health`` and ``watcher once`` with nothing to do,
as an operator, the container or a cron job starts them, against interpreters started the
same way: one importing what the bare work needs, and a bare one."""

from __future__ import annotations

import compileall
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import anyio

import watcher

from ..report import Row
from ..scales import Sizes
from ..worker import count_files, folder_env, running_worker, started, wait_until
from ..workload import seed_unsynced

STARTUP_TARGET: Final = 2.0  # x the floor
FLOOR: Final = ("-c", "import msgspec, sqlite3")  # what the bare work of every floor imports
BARE: Final = ("-c", "pass")
COMMANDS: Final = {
    "status": ("-m", "watcher", "status"),
    "health": ("-m", "watcher", "health"),
    "once, nothing to do": ("-m", "watcher", "once"),
}
Command = tuple[Sequence[str], dict[str, str], Path]


def bench_startup(sizes: Sizes, root: Path) -> list[Row]:
    """``watcher status`` and ``watcher health`` on the embedded store, beside a running
    worker (so health reads a live status file and status a real store), and ``watcher
    once`` in folders of its own where nothing waits (its store made by a first ``once``);
    against ``python -c "import msgspec, sqlite3"`` (judged) and ``python -c pass`` (shown),
    started the same way: same interpreter, folder and environment; interleaved in turn,
    the median of N; with PYTHONDONTWRITEBYTECODE=1 and without."""
    # As the install does (scripts/_uv.sh): a source edited since would be compiled again
    # by every run made with PYTHONDONTWRITEBYTECODE=1, and measured as start-up.
    compileall.compile_dir(Path(watcher.__file__).parent, quiet=1)
    documents, quiet = sizes.startup_documents, root / "quiet"
    quiet.mkdir(parents=True)
    started(COMMANDS["once, nothing to do"], folder_env(quiet), quiet)  # makes the store
    with running_worker(root / "worker") as worker:
        anyio.run(seed_unsynced, worker.sqlite_path, documents)
        outbound = worker.dir("outbound")
        wait_until(lambda: count_files(outbound) >= documents, "the seed exported", 0.05)
        rows = []
        for no_bytecode in (True, False):
            commands: dict[str, Command] = {}
            for name, args in (("floor", FLOOR), ("bare", BARE), *COMMANDS.items()):
                where = quiet if name.startswith("once") else worker.root
                env = folder_env(where)
                if no_bytecode:
                    env["PYTHONDONTWRITEBYTECODE"] = "1"
                else:
                    env.pop("PYTHONDONTWRITEBYTECODE", None)
                commands[name] = (args, env, where)
            rows += startup_rows(commands, sizes, no_bytecode)
    return rows


def startup_rows(commands: dict[str, Command], sizes: Sizes, no_bytecode: bool) -> list[Row]:
    times: dict[str, list[float]] = {name: [] for name in commands}
    for run in range(sizes.startup_runs):
        names = list(commands)
        for name in names if run % 2 == 0 else reversed(names):  # neither side always first
            args, env, cwd = commands[name]
            times[name].append(started(args, env, cwd))
    median = {name: statistics.median(runs) * 1000 for name, runs in times.items()}
    floor, bare = median["floor"], median["bare"]
    writes = "PYTHONDONTWRITEBYTECODE=1" if no_bytecode else "bytecode writes allowed"
    rows, shown = [], []
    for name in COMMANDS:
        row = Row(f"start-up ({writes})", f"watcher {name}", median[name], "ms", "", None)
        row.floor, row.ratio = floor, median[name] / floor
        row.target = f"ratio <= {STARTUP_TARGET:.1f}"
        row.passed = row.ratio <= STARTUP_TARGET
        row.note = (
            f"median of {sizes.startup_runs}, interleaved with the floor"
            ' `python -c "import msgspec, sqlite3"` (ms), same interpreter and environment;'
            f" status and health beside a running worker ({sizes.startup_documents:,}"
            " documents; health reads its live status file), once in folders where nothing"
            " waits; the `python -c pass` rows: the same figure beside a bare interpreter"
        )
        rows.append(row)
        versus = Row(f"start-up ({writes})", f"watcher {name} / python -c pass", 0, "ms", "", None)
        versus.value, versus.floor, versus.ratio = median[name], bare, median[name] / bare
        shown.append(versus)
    return [*rows, *shown]
