"""Attacks on the promises: store outages, a vanishing folder, a full disk, leaked secrets."""

from __future__ import annotations

import errno
import json
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncGenerator, Sequence
from datetime import datetime
from pathlib import Path

import pytest

from tests.helpers.builders import erp, tracos_doc
from tests.helpers.conditions import wait_for, wait_until
from tests.helpers.harness import serving, start_worker
from tests.helpers.mongo_facade import FacadeCollection
from tests.helpers.stores import all_unsynced, make_settings
from tests.helpers.workers import cli, drop, env_for, names, running, stored_docs
from watcher import fs as folders
from watcher.core.errors import StoreUnavailable
from watcher.core.settings import Settings
from watcher.core.tracos import Clash, OrderUpsert, Outcome
from watcher.store import StoredDocument, SyncMark
from watcher.store.mongo import MongoStore
from watcher.store.sqlite import SqliteStore
from watcher.sync.stats import Count

pytestmark = [pytest.mark.anyio, pytest.mark.system]


class FlakyStore(SqliteStore):
    """The real embedded store behind a switch that makes every call fail as an outage."""

    down = False
    calls_while_down = 0

    def _check(self) -> None:
        if self.down:
            self.calls_while_down += 1
            raise StoreUnavailable("embedded store: disk I/O error (injected)")

    async def ping(self) -> None:
        self._check()
        await super().ping()

    async def upsert(
        self, orders: Sequence[OrderUpsert], now: datetime, clashes: list[Clash] | None = None
    ) -> list[Outcome]:
        self._check()
        return await super().upsert(orders, now, clashes)

    async def mark_synced(
        self, marks: Sequence[SyncMark], now: datetime, refused: dict[str, str] | None = None
    ) -> set[str]:
        self._check()
        return await super().mark_synced(marks, now, refused)

    async def iter_unsynced(self, batch_size: int) -> AsyncGenerator[list[StoredDocument], None]:
        self._check()
        async for batch in super().iter_unsynced(batch_size):
            yield batch


@pytest.mark.usefixtures("real_backoff")
async def test_store_outage_mid_burst_loses_nothing(settings: Settings) -> None:
    """Store down mid-burst: the outage shows, files wait, nothing is quarantined, work resumes."""
    store = FlakyStore(settings.sqlite_path)
    async with running(settings, store) as worker:
        for number in range(50):
            drop(settings.inbound_dir, f"{number}.json", json.dumps(erp(orderNo=number)).encode())
        await wait_for(lambda: len(names(settings.archive_dir)) == 50, "first half archived")
        store.down = True
        for number in range(50, 300):
            drop(settings.inbound_dir, f"{number}.json", json.dumps(erp(orderNo=number)).encode())
        await wait_for(lambda: store.calls_while_down >= 3, "several retries during the outage")
        assert not worker.stats.store.connected
        assert "disk I/O error" in worker.stats.store.error
        assert worker.stats.store.next_attempt is not None
        assert worker.stats.counters[Count.RETRIES] >= 3
        assert len(names(settings.archive_dir)) == 50 and names(settings.failed_dir) == []
        store.down = False
        await wait_for(lambda: len(names(settings.archive_dir)) == 300, "the rest archived")
        assert worker.stats.store.connected
        assert len(await store.find()) == 300
    assert names(settings.failed_dir) == [] and names(settings.inbound_dir) == []


@pytest.mark.usefixtures("real_backoff")
async def test_outage_during_export_marks_nothing_falsely(settings: Settings) -> None:
    """Store down between write and mark: the mark waits; afterwards all are synced once."""
    store = FlakyStore(settings.sqlite_path)
    async with running(settings, store) as worker:
        store.down = True
        await SqliteStore.put_documents(store, [tracos_doc(n) for n in range(1, 21)])
        await wait_for(lambda: store.calls_while_down >= 3, "retries during the outage")
        assert worker.stats.counters[Count.EXPORTED] == 0
        store.down = False
        await wait_for(lambda: worker.stats.counters[Count.EXPORTED] == 20, "all exported")
    assert len(names(settings.outbound_dir)) == 20


@pytest.mark.usefixtures("real_backoff")
async def test_mongo_outage_is_waited_out(settings: Settings) -> None:
    """A dropped MongoDB connection (facade) delays the batch; nothing is lost."""
    facade = FacadeCollection()
    async with running(settings, MongoStore(facade)) as worker:
        facade.down = True
        for number in range(20):
            drop(settings.inbound_dir, f"{number}.json", json.dumps(erp(orderNo=number)).encode())
        await wait_for(lambda: worker.stats.counters[Count.RETRIES] >= 2, "retries")
        assert "MongoDB unreachable" in worker.stats.store.error
        facade.down = False
        await wait_for(lambda: len(names(settings.archive_dir)) == 20, "archived after the outage")
        assert facade.raw.count_documents({}) == 20


async def test_inbound_folder_removed_while_running(settings: Settings) -> None:
    """The inbound folder vanishes: a clear error, and work resumes once it is back."""
    async with running(settings) as worker:
        drop(settings.inbound_dir, "1.json", json.dumps(erp(orderNo=1)).encode())
        await wait_for(lambda: names(settings.archive_dir) == ["1.json"], "first file archived")
        shutil.rmtree(settings.inbound_dir)
        await wait_for(
            lambda: any("inbound folder" in f.reason for f in worker.stats.failures),
            "the missing folder reported",
        )
        settings.inbound_dir.mkdir()
        drop(settings.inbound_dir, "2.json", json.dumps(erp(orderNo=2)).encode())
        await wait_for(lambda: len(names(settings.archive_dir)) == 2, "second file archived")
    assert [d["number"] for d in await stored_docs(settings)] == [1, 2]


@pytest.mark.usefixtures("real_backoff")
async def test_full_disk_on_outbound_gives_no_false_mark(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC: clear errors, documents stay unsynced, and go out once space returns."""
    real_write = folders.stage_file
    disk_full = True

    def write(folder: Path, name: str, data: bytes) -> str:
        if disk_full:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(folder, name, data)

    monkeypatch.setattr(folders, "stage_file", write)
    async with running(settings) as worker:
        await worker.store.put_documents([tracos_doc(1), tracos_doc(2)])
        await wait_for(
            lambda: worker.stats.counters[Count.EXPORT_ERRORS] >= 4, "repeated write errors"
        )
        assert "No space left on device" in worker.stats.failures[-1].reason
        assert len(await all_unsynced(worker.store)) == 2
        disk_full = False
        await wait_for(
            lambda: worker.stats.counters[Count.EXPORTED] == 2, "exported after space returns"
        )
    assert names(settings.outbound_dir) == ["1.json", "2.json"]


async def test_outbound_name_comes_only_from_the_integer_order_number(settings: Settings) -> None:
    """A document whose number is a path is unexportable; nothing is written outside."""
    facade = FacadeCollection()
    async with running(settings, MongoStore(facade)) as worker:
        facade.raw.insert_one(tracos_doc(1) | {"number": "../../escape"})
        await worker.store.put_documents([tracos_doc(2)])
        await wait_for(lambda: worker.stats.counters[Count.EXPORTED] == 1, "the good one exported")
        await wait_for(
            lambda: worker.stats.counters[Count.UNEXPORTABLE] == 1, "the bad one reported"
        )
    assert names(settings.outbound_dir) == ["2.json"]
    assert not any(p.name == "escape.json" for p in settings.outbound_dir.parent.rglob("*"))


def test_uri_password_never_reaches_logs_or_errors(tmp_path: Path) -> None:
    """With an unreachable MongoDB, `once` fails in one line and never prints the password."""
    settings = make_settings(tmp_path)
    unreachable = {
        "MONGO_URI": "mongodb://watcher:hunter2@127.0.0.1:9/?serverSelectionTimeoutMS=100",
        "STORE_RETRY_MAX_SECONDS": "0.1",
    }
    env = {**env_for(settings), **unreachable}
    once = cli(settings, "once", check=False, env=unreachable)
    assert once.returncode == 1
    assert "hunter2" not in once.stdout + once.stderr
    last = once.stderr.strip().splitlines()[-1]
    assert last.startswith("watcher: store unavailable: MongoDB unreachable:")
    assert last.endswith(
        "check that MongoDB is running and that MONGO_URI names it"
        " (with docker compose: docker compose ps mongo)"
    )
    output = _run_until_a_retry(env)
    assert "watcher:***@127.0.0.1" in output
    assert "hunter2" not in output


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_secret_options_of_the_uri_never_reach_the_output(tmp_path: Path, log_format: str) -> None:
    """A key-file password or an AWS session token in the URI's options is masked too."""
    uri = (
        "mongodb://AKIA:hunter2@127.0.0.1:9/?serverSelectionTimeoutMS=100"
        "&authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:t0ken-s3cret"
        "&tlsCertificateKeyFilePassword=k3y-s3cret"
    )
    env = {**env_for(make_settings(tmp_path)), "MONGO_URI": uri, "LOG_FORMAT": log_format}
    output = _run_until_a_retry(env)
    assert "authMechanismProperties=***" in output and "AKIA:***@127.0.0.1" in output
    for secret in ("hunter2", "t0ken-s3cret", "k3y-s3cret"):
        assert secret not in output


def _run_until_a_retry(env: dict[str, str]) -> str:
    """What `watcher run` prints up to its first store retry (then it is stopped)."""
    run = subprocess.Popen(
        [sys.executable, "-m", "watcher", "run", "--no-console"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output = _read_until(run, "next attempt")
    finally:
        run.terminate()
        output += run.communicate(timeout=10)[0]
    return output


def _read_until(process: subprocess.Popen[str], text: str) -> str:
    assert process.stdout is not None
    seen = ""
    for line in process.stdout:
        seen += line
        if text in line:
            break
    return seen


async def test_file_larger_than_the_limit_is_quarantined_unread(tmp_path: Path) -> None:
    """Over INBOUND_MAX_FILE_MB: quarantined as too large, never read into memory."""
    settings = make_settings(tmp_path, max_file_mb=1)
    async with running(settings) as worker:
        drop(settings.inbound_dir, "big.json", b" " * (2 * 2**20) + json.dumps(erp()).encode())
        drop(settings.inbound_dir, "small.json", json.dumps(erp(orderNo=2)).encode())
        await wait_for(
            lambda: worker.stats.counters[Count.FILES_FAILED] == 1, "big file quarantined"
        )
        await wait_for(lambda: names(settings.archive_dir) == ["small.json"], "small archived")
    [report] = [json.loads(p.read_text()) for p in settings.failed_dir.glob("*.error.json")]
    assert report["reason"].startswith("file too large: 2,097,")


async def test_archive_folder_removed_while_running(settings: Settings) -> None:
    """The archive folder vanishes: it is made again; no file is lost or left claimed."""
    async with running(settings):
        drop(settings.inbound_dir, "1.json", json.dumps(erp(orderNo=1)).encode())
        await wait_for(lambda: names(settings.archive_dir) == ["1.json"], "first archived")
        shutil.rmtree(settings.archive_dir)
        drop(settings.inbound_dir, "2.json", json.dumps(erp(orderNo=2)).encode())
        await wait_for(lambda: names(settings.archive_dir) == ["2.json"], "archived again")


def test_sigterm_after_the_inbound_folder_vanished_exits_zero(tmp_path: Path) -> None:
    """A removed inbound folder (and claim folder with it) does not spoil a clean stop."""
    settings = make_settings(tmp_path)
    with (tmp_path / "worker.log").open("w") as log:
        worker = start_worker(settings, log)
        wait_until(lambda: serving(settings, worker), "the worker to start")
        shutil.rmtree(settings.inbound_dir)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0
