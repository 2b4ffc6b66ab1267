"""Inspection commands run from the wrong directory (or against the wrong database) create
nothing there and say that there is no store, and how to point at the right one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from tests.helpers.workers import cli
from watcher.core.settings import Settings

pytestmark = pytest.mark.system
POINTERS = "run this command in the worker's directory, or set DATA_STATE_DIR"


def run_in(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``watcher`` in ``folder`` with the default settings (no DATA_* or MONGO_* variables)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATA_", "MONGO_"))}
    return subprocess.run(
        [sys.executable, "-m", "watcher", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@pytest.mark.parametrize(
    "command", ["show", "status", "requeue", "health", "pause inbound", "resume outbound"]
)
def test_an_inspection_command_makes_no_store_or_folder(tmp_path: Path, command: str) -> None:
    """Nothing appears in the directory; the output says what is missing and what to set
    (a pause made here would hold no worker while it said it did)."""
    result = run_in(tmp_path, *command.split())
    assert list(tmp_path.iterdir()) == []
    assert result.returncode == (0 if command == "status" else 1)  # status shows what it knows
    said = result.stdout + result.stderr
    expected = {
        "show": f"watcher: no embedded store at data/state/tracos.sqlite3: {POINTERS}",
        "status": f"no embedded store at data/state/tracos.sqlite3: {POINTERS}",
        "requeue": "watcher: no failed folder at data/failed: run this in the worker's"
        " directory, or set DATA_FAILED_DIR",
        "health": "there is no data/state here; run this in the worker's directory,"
        " or set DATA_STATE_DIR",
        "pause inbound": "watcher: no state folder at data/state: run this in the worker's"
        " directory, or set DATA_STATE_DIR",
        "resume outbound": "watcher: no state folder at data/state: run this in the worker's"
        " directory, or set DATA_STATE_DIR",
    }[command]
    assert expected in said, said


def test_status_in_the_wrong_directory_still_shows_json(tmp_path: Path) -> None:
    """``status --json`` stays JSON, with the reason as the store error."""
    result = run_in(tmp_path, "status", "--json")
    assert '"store_reachable":false' in result.stdout and "no embedded store at" in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_commands_that_write_still_make_the_store(tmp_path: Path) -> None:
    """``seed`` (and ``put``) are the ones that may start a store in a new directory."""
    assert run_in(tmp_path, "seed", "--erp", "0").returncode == 0
    assert (tmp_path / "data" / "state" / "tracos.sqlite3").is_file()
    assert run_in(tmp_path, "show", "1").returncode == 0


def test_an_unknown_mongodb_collection_is_not_created(mongo_settings: Settings) -> None:
    """Against a MongoDB collection no worker made: one line naming it, and no collection."""
    result = cli(mongo_settings, "show", check=False)
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"watcher: no collection {mongo_settings.mongo_collection!r} in the MongoDB database"
    )
    client: MongoClient[dict[str, Any]]
    with MongoClient(mongo_settings.mongo_uri) as client:
        names = client[mongo_settings.mongo_database].list_collection_names()
        assert mongo_settings.mongo_collection not in names
