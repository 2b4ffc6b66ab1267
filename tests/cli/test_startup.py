"""Commands import only what they use (docs/performance.md, start-up): on the embedded store, the
inspection commands never load the MongoDB driver, the live console, the file watcher or
the metrics server — ``watcher health`` runs every 15 s in the container."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.helpers.builders import erp, tracos_doc
from tests.helpers.workers import cli, env_for
from watcher.core.settings import Settings
from watcher.observe.heartbeat import write_worker_status
from watcher.store import configured
from watcher.sync.stats import Stats, StoreState

pytestmark = pytest.mark.system
NEVER_NEEDED = ("pymongo", "bson", "rich", "watchfiles", "prometheus_client")
# The command as ``python -m watcher`` runs it, then the names of every module it loaded.
WRAPPER = """
import json, sys
from watcher.cli.main import main
code = main(sys.argv[2:])
with open(sys.argv[1], "w") as out:
    json.dump({"code": code, "modules": sorted(sys.modules)}, out)
"""


def modules_of(settings: Settings, tmp_path: Path, *args: str) -> tuple[int, list[str]]:
    """Run ``watcher ARGS`` in a process of its own; its exit code and the modules it loaded."""
    found = tmp_path / "modules.json"
    subprocess.run(
        [sys.executable, "-c", WRAPPER, str(found), *args],
        env={**env_for(settings), "MONGO_URI": ""},
        capture_output=True,
        check=True,
        timeout=60,
    )
    result = json.loads(found.read_text())
    return result["code"], result["modules"]


@pytest.fixture
def embedded(settings: Settings, tmp_path: Path) -> Settings:
    """An embedded store holding unsynced documents, and a live worker's status file."""
    (tmp_path / "docs.json").write_text(
        json.dumps([tracos_doc(n) for n in (1, 2)], default=datetime.isoformat)
    )
    cli(settings, "put", str(tmp_path / "docs.json"))
    stats = Stats(started=datetime.now(UTC), store=StoreState(connected=True))
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    write_worker_status(settings, stats.snapshot(datetime.now(UTC)), "embedded")
    return settings


@pytest.mark.parametrize(
    "args",
    [("status",), ("status", "--json"), ("health",), ("show",), ("show", "1"), ("schema",)],
    ids=" ".join,
)
def test_inspection_commands_load_no_driver_console_or_watcher(
    embedded: Settings, tmp_path: Path, args: tuple[str, ...]
) -> None:
    """Each does its real work (exit 0: the store read, the worker found healthy) without them."""
    code, modules = modules_of(embedded, tmp_path, *args)
    assert code == 0
    loaded = sorted({name.partition(".")[0] for name in modules} & set(NEVER_NEEDED))
    assert loaded == []


@pytest.mark.parametrize(
    "args", [("status",), ("show",), ("show", "1"), ("history", "1")], ids=" ".join
)
def test_one_shot_commands_on_the_embedded_store_start_no_event_loop(
    embedded: Settings, tmp_path: Path, args: tuple[str, ...]
) -> None:
    """Nothing they do waits: the store works where it is called, without a worker thread
    or an event loop (about a quarter of ``status``'s start-up)."""
    code, modules = modules_of(embedded, tmp_path, *args)
    assert code == (1 if args[0] == "history" else 0)  # order 1 was put, never journaled
    assert "asyncio" not in modules


# What ``status`` must not load when nothing is unsynced: the worker's stats (the drift
# ledger has a module of its own), the journal, the ERP format (asked for by the first
# unsynced document), nor what only a reader gone needs (docs/performance.md, start-up).
NOT_NEEDED_BY_STATUS = (
    "signal",
    "watcher.sync.stats",
    "watcher.sync.drift",
    "watcher.store.journal",
    "watcher.erp.formats",
    "watcher.observe.history",
    "watcher.observe.logs",
)


def test_status_with_nothing_unsynced_loads_no_stats_journal_or_format(
    settled: Settings, tmp_path: Path
) -> None:
    """It reads the store, the status files, the folders and the drift ledger, no more."""
    _an_unsynced_document(settled)
    assert "1 exported" in cli(settled, "once").stderr
    code, modules = modules_of(settled, tmp_path, "status")
    assert code == 0
    assert [name for name in NOT_NEEDED_BY_STATUS if name in modules] == []


def test_status_tries_an_unsynced_document_through_the_format(
    embedded: Settings, tmp_path: Path
) -> None:
    """The format is still loaded when there is something to try (and the store is read)."""
    code, modules = modules_of(embedded, tmp_path, "status")
    assert code == 0 and "watcher.erp.formats.challenge" in modules


def test_health_creates_no_dataclass(embedded: Settings, tmp_path: Path) -> None:
    """Every 15 s in the container: the status file read, nothing of the worker's."""
    code, modules = modules_of(embedded, tmp_path, "health")
    assert code == 0
    assert [name for name in ("dataclasses", "signal", "asyncio") if name in modules] == []


# What ``once`` with nothing to do must not load: the retry library (only a failed store
# call or write needs it).
NOT_NEEDED_WITH_NOTHING_TO_DO = ("stamina", "tenacity")


def test_once_with_nothing_to_do_loads_no_retry_library(settings: Settings, tmp_path: Path) -> None:
    """``watcher once`` on the embedded store, nothing waiting: its start-up is most of its
    time, so the modules only a retry or another command needs stay unloaded."""
    code, modules = modules_of(settings, tmp_path, "once")
    assert code == 0
    loaded = sorted({name.partition(".")[0] for name in modules})
    assert [name for name in NOT_NEEDED_WITH_NOTHING_TO_DO if name in loaded] == []


# What ``once`` loads when a look finds nothing waiting: not the worker (its pipelines, its
# stats and their dataclasses), not the event loop, not the retry library (docs/performance.md).
NOT_LOADED_WITH_NOTHING_WAITING = (
    "asyncio",
    "signal",
    "stamina",
    "watcher.app",
    "watcher.cli.worker",
    "watcher.sync.stats",
    "watcher.sync.inbound",
    "watcher.sync.outbound",
    "watcher.erp.port",
    "watcher.erp.formats",
    *NEVER_NEEDED,
)


@pytest.fixture
def settled(settings: Settings) -> Settings:
    """Folders and a store made by a first ``once`` (the worker's pass), nothing left waiting."""
    assert "nothing to do" in cli(settings, "once").stderr
    return settings


def test_once_with_nothing_waiting_starts_no_worker_and_no_event_loop(
    settled: Settings, tmp_path: Path
) -> None:
    """The look finds nothing: the steps that still mean something run where they are called."""
    code, modules = modules_of(settled, tmp_path, "once")
    assert code == 0
    assert [name for name in NOT_LOADED_WITH_NOTHING_WAITING if name in modules] == []
    assert sorted({name.partition(".")[0] for name in modules} & set(NEVER_NEEDED)) == []


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_once_with_nothing_waiting_says_what_the_worker_pass_says(
    settings: Settings, log_format: str
) -> None:
    """The same line (the time aside), the same exit status, whichever pass said it: the
    first run makes the store (the worker's pass), the second finds nothing (the quiet one)."""
    env = {"LOG_FORMAT": log_format}
    full, quiet = (cli(settings, "once", env=env) for _ in range(2))
    assert (full.returncode, full.stdout, quiet.returncode, quiet.stdout) == (0, "", 0, "")

    def timeless(stderr: str) -> list[object]:
        if log_format == "text":
            return [line.partition(" ")[2] for line in stderr.splitlines()]
        return [{**json.loads(line), "time": None} for line in stderr.splitlines()]

    assert timeless(quiet.stderr) == timeless(full.stderr)
    assert len(timeless(full.stderr)) == 1 and "once: nothing to do;" in full.stderr


def _a_file(settings: Settings) -> None:
    (settings.inbound_dir / "7.json").write_text(json.dumps(erp(orderNo=7)))


def _an_unsynced_document(settings: Settings) -> None:
    docs = settings.state_dir.parent / "docs.json"
    docs.write_text(json.dumps([tracos_doc(3)], default=datetime.isoformat))
    cli(settings, "put", str(docs))


def _a_dead_workers_claim(settings: Settings) -> None:
    dead = settings.inbound_dir / ".processing" / "1234-deadbeef"
    dead.mkdir()
    (dead / ".lock").touch()  # nobody holds it: its worker is gone
    (dead / "8.json").write_text(json.dumps(erp(orderNo=8)))


@pytest.mark.parametrize(
    ("waiting", "said"),
    [
        (_a_file, "files 1 archived"),
        (_an_unsynced_document, "1 exported"),
        (_a_dead_workers_claim, "files 1 archived"),
    ],
    ids=["a file", "an unsynced document", "a dead worker's claim"],
)
def test_once_with_something_waiting_does_it(
    settled: Settings, waiting: Callable[[Settings], None], said: str
) -> None:
    """Whatever the look finds is the worker's to do, as always."""
    waiting(settled)
    done = cli(settled, "once")
    assert said in done.stderr and "nothing to do" not in done.stderr
    assert "nothing to do" in cli(settled, "once").stderr  # and then nothing is left


def test_once_with_nothing_waiting_still_keeps_the_journals_retention(
    settled: Settings, tmp_path: Path
) -> None:
    """The quiet pass forgets what retention lets go, and says so, as the worker's does."""
    for number in (1, 2):
        (settled.inbound_dir / f"{number}.json").write_text(json.dumps(erp(orderNo=number)))
    assert "files 2 archived" in cli(settled, "once").stderr
    quiet = cli(settled, "once", env={"HISTORY_MAX_ENTRIES": "1"})
    assert "nothing to do" in quiet.stderr and "entries forgotten" in quiet.stderr
    code, modules = modules_of(settled, tmp_path, "once")
    assert code == 0 and "watcher.app" not in modules  # it was the quiet pass


def test_a_one_shot_command_that_would_wait_is_stopped_and_said() -> None:
    with pytest.raises(RuntimeError, match="waited for something"):
        configured._to_the_end(asyncio.sleep(0))
