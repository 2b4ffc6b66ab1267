"""Start-up: ``watcher status`` and ``watcher health`` as an operator (or the container)
starts them, against a bare interpreter importing what the bare work needs."""

from __future__ import annotations

import compileall
import math
from pathlib import Path
from typing import Final

import anyio

import watcher

from ..report import Row
from ..scales import Sizes
from ..worker import count_files, folder_env, running_worker, started, wait_until
from ..workload import seed_unsynced

STARTUP_TARGET: Final = 3.0  # x the floor
FLOOR_COMMAND: Final = ("-c", "import msgspec, sqlite3")


def bench_startup(sizes: Sizes, root: Path) -> list[Row]:
    """Scenario 1: ``watcher status`` and ``watcher health`` on the embedded store (beside a
    running worker, so health reads a live status file and status a real store) against
    ``python -c "import msgspec, sqlite3"``, started the same way: same interpreter, folder
    and environment, interleaved, best of N; with PYTHONDONTWRITEBYTECODE=1 and without."""
    # As the install does (scripts/_uv.sh): a source edited since would be compiled again
    # by every run made with PYTHONDONTWRITEBYTECODE=1, and measured as start-up.
    compileall.compile_dir(Path(watcher.__file__).parent, quiet=1)
    documents = sizes.startup_documents
    with running_worker(root / "worker") as worker:
        anyio.run(seed_unsynced, worker.sqlite_path, documents)
        outbound = worker.dir("outbound")
        wait_until(lambda: count_files(outbound) >= documents, "the seed exported", 0.05)
        rows = []
        for no_bytecode in (True, False):
            env = folder_env(worker.root)
            if no_bytecode:
                env["PYTHONDONTWRITEBYTECODE"] = "1"
            else:
                env.pop("PYTHONDONTWRITEBYTECODE", None)
            rows += startup_rows(env, worker.root, sizes, no_bytecode)
    return rows


def startup_rows(env: dict[str, str], cwd: Path, sizes: Sizes, no_bytecode: bool) -> list[Row]:
    commands = {"floor": FLOOR_COMMAND, "status": ("-m", "watcher", "status")}
    commands["health"] = ("-m", "watcher", "health")
    best = dict.fromkeys(commands, math.inf)
    for _ in range(sizes.startup_runs):
        for name, args in commands.items():
            best[name] = min(best[name], started(args, env, cwd))
    floor, rows = best["floor"], []
    writes = "PYTHONDONTWRITEBYTECODE=1" if no_bytecode else "bytecode writes allowed"
    for name in ("status", "health"):
        ratio = best[name] / floor
        row = Row(f"start-up ({writes})", f"watcher {name}", best[name] * 1000, "ms", "", None)
        row.floor, row.ratio = floor * 1000, ratio
        row.target, row.passed = f"ratio <= {STARTUP_TARGET:.1f}", ratio <= STARTUP_TARGET
        row.note = (
            f"best of {sizes.startup_runs}, interleaved with the floor"
            ' `python -c "import msgspec, sqlite3"` (ms), same interpreter and environment;'
            f" the embedded store, beside a running worker ({sizes.startup_documents:,}"
            " documents; health reads its live status file)"
        )
        rows.append(row)
    return rows
