"""The embedded store's file deleted, or damaged: an outage the operator must fix, never success."""

from __future__ import annotations

import json
import random
import signal
from pathlib import Path

import pytest

from tests.helpers.builders import erp, tracos_doc
from tests.helpers.conditions import wait_for, wait_until
from tests.helpers.harness import start_worker
from tests.helpers.workers import cli, drop, names, opened_store, running
from watcher.core.settings import Settings
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
