"""The embedded store's file deleted, or damaged: an outage the operator must fix, never success."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
from pathlib import Path

import pytest

from tests.helpers.builders import erp, tracos_doc
from tests.helpers.conditions import wait_for, wait_until
from tests.helpers.harness import start_worker
from tests.helpers.workers import cli, drop, names, opened_store, running
from watcher.core.settings import Settings
from watcher.store.sqlite_schema import FORMAT
from watcher.sync.stats import Count

pytestmark = [pytest.mark.anyio, pytest.mark.system]


def erp_file(number: int) -> bytes:
    return json.dumps(erp(orderNo=number)).encode()


def store_files(settings: Settings) -> list[Path]:
    path = settings.sqlite_path
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]


@pytest.mark.usefixtures("real_backoff")
async def test_a_deleted_store_file_stops_acknowledging(settings: Settings) -> None:
    """Deleted while running: no file is archived into the unlinked database; the view says so."""
    async with running(settings) as worker:
        for number in range(5):
            drop(settings.inbound_dir, f"{number}.json", erp_file(number))
        await wait_for(lambda: len(names(settings.archive_dir)) == 5, "first files archived")
        for path in store_files(settings):
            path.unlink(missing_ok=True)
        for number in range(5, 10):
            drop(settings.inbound_dir, f"{number}.json", erp_file(number))
        await wait_for(lambda: not worker.stats.store.connected, "the loss noticed")
        assert "deleted or replaced" in (worker.stats.store.error or "")
        await wait_for(lambda: worker.stats.counters[Count.RETRIES] >= 3, "several retries")
        assert len(names(settings.archive_dir)) == 5
        assert names(settings.failed_dir) == []
    assert len(list(settings.inbound_dir.rglob("*.json"))) == 5  # waiting, or claimed for later


@pytest.mark.usefixtures("real_backoff")
async def test_a_deleted_write_ahead_log_stops_acknowledging(settings: Settings) -> None:
    """Only ``-wal`` deleted while running: SQLite would go on committing into the unlinked
    log (lost at the next crash); no file is archived after it, the view names the log,
    and what was stored before it is still there after a restart."""
    wal = store_files(settings)[1]
    async with running(settings) as worker:
        for number in range(5):
            drop(settings.inbound_dir, f"{number}.json", erp_file(number))
        await wait_for(lambda: len(names(settings.archive_dir)) == 5, "first files archived")
        wal.unlink()
        for number in range(5, 10):
            drop(settings.inbound_dir, f"{number}.json", erp_file(number))
        await wait_for(lambda: not worker.stats.store.connected, "the loss noticed")
        assert f"{wal.name} was deleted or replaced" in (worker.stats.store.error or "")
        await wait_for(lambda: worker.stats.counters[Count.RETRIES] >= 3, "several retries")
        assert len(names(settings.archive_dir)) == 5
    assert len(list(settings.inbound_dir.rglob("*.json"))) == 5  # waiting, or claimed for later
    async with opened_store(settings) as store:
        assert sorted(d["number"] for d in await store.find()) == list(range(5))


def _newer_release(settings: Settings, change: str) -> None:
    """A store as a later release might leave it: a higher format, or one more column."""
    with sqlite3.connect(settings.sqlite_path) as db:
        db.execute(change)
    db.close()


@pytest.mark.parametrize(
    ("change", "what"),
    [
        ("PRAGMA user_version = 7", "store format 7"),
        (
            "ALTER TABLE workorders ADD COLUMN tenant TEXT",
            f"store format {FORMAT}, with columns tenant",
        ),
    ],
)
async def test_a_store_from_a_newer_release_is_one_line_and_exit_2(
    settings: Settings, change: str, what: str
) -> None:
    """Commands and the worker say which formats in one line and exit 2 (no retry can help)."""
    async with opened_store(settings):
        pass
    _newer_release(settings, change)
    for command in (["once"], ["run", "--no-console"], ["show"]):
        result = cli(settings, *command, check=False)
        assert result.returncode == 2, result.stderr
        [line] = result.stderr.strip().splitlines()
        assert line.startswith(
            f"watcher: embedded store {settings.sqlite_path} was written by a newer release"
        ), line
        assert f"({what}; this release " in line and f"reads format {FORMAT} at most" in line, line


def _garbage(settings: Settings) -> None:
    settings.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    settings.sqlite_path.write_bytes(b"this is not a database, just text " * 200)


async def _torn_pages(settings: Settings) -> None:
    async with opened_store(settings) as store:
        await store.put_documents([tracos_doc(n, title="x" * 2000) for n in range(500)])
    data = bytearray(settings.sqlite_path.read_bytes())
    rng = random.Random(5)
    for page in range(4, len(data) // 4096, 3):
        data[page * 4096 : page * 4096 + 4096] = rng.randbytes(4096)
    data[100:4096] = rng.randbytes(3996)  # the schema page too
    settings.sqlite_path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["not a database", "torn pages"])
async def test_a_damaged_store_is_one_line_and_the_worker_stays_up(
    settings: Settings, tmp_path: Path, damage: str
) -> None:
    """Commands say what is wrong in one line; the worker waits and says why; files untouched."""
    if damage == "not a database":
        _garbage(settings)
    else:
        await _torn_pages(settings)
    shown = cli(settings, "show", check=False)
    assert shown.returncode == 1 and shown.stdout == ""
    assert len(shown.stderr.strip().splitlines()) == 1, shown.stderr
    assert "is damaged" in shown.stderr and str(settings.sqlite_path) in shown.stderr
    status = json.loads(cli(settings, "status", "--json").stdout)
    assert status["store_reachable"] is False and "is damaged" in status["store_error"]
    drop(settings.inbound_dir, "1.json", erp_file(1))
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log:
        worker = start_worker(settings, log)
        try:
            wait_until(lambda: log_path.read_text().count("is damaged") >= 2, "retries say why")
            assert worker.poll() is None
            assert names(settings.archive_dir) == names(settings.failed_dir) == []
        finally:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=20) == 0
    assert "Traceback" not in log_path.read_text()
