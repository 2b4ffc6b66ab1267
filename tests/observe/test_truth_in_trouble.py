"""The product's view of itself tells the truth exactly when something is wrong
(docs/guarantees.md): a stuck store, a start-up outage, a MongoDB outage, two workers, after
``once``."""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from rich.console import Console

from tests.helpers.builders import erp, tracos_doc
from tests.helpers.conditions import wait_for, wait_until
from tests.helpers.harness import serving
from tests.helpers.stores import make_settings
from tests.helpers.workers import cli, drop, free_port, http_get, opened_store, worker
from watcher.app import build_worker
from watcher.core.settings import Settings
from watcher.observe.console import Header, render
from watcher.observe.heartbeat import health_problem, read_worker_status, write_worker_status
from watcher.sync.stats import Snapshot, Stats, StoreState

T = datetime(2026, 1, 1, tzinfo=UTC)


def status_json(settings: Settings, **env: str) -> dict[str, Any]:
    result = cli(settings, "status", "--json", env=env)
    parsed: dict[str, Any] = json.loads(result.stdout)  # JSON, whatever the store's state
    return parsed


def shown(snapshot: Snapshot, width: int = 100) -> str:
    console = Console(record=True, width=width, height=30, file=None, color_system=None)
    header = Header("1.0.0", "embedded SQLite", "embedded", *(Path(p) for p in "iofa"))
    console.print(render(snapshot, header))
    return console.export_text()


def test_a_store_call_hanging_shows_as_not_answering() -> None:
    """Counts asked 6 s ago and still unanswered: the view no longer says "connected"."""
    stats = Stats(started=T)
    stats.counts_at, stats.asked_since = T, T + timedelta(seconds=1)
    snapshot = stats.snapshot(T + timedelta(seconds=7))
    assert not snapshot.store.connected
    text = shown(snapshot)
    assert "store NOT ANSWERING: the store has not answered for 6 s · counts 7 s old" in text
    assert "store connected" not in text


def test_side_effect_problems_are_on_the_console() -> None:
    """A status file that cannot be written is a red line of its own."""
    stats = Stats(started=T)
    stats.problem("status file", "cannot write the status file s/w.json: No space left")
    assert "problem: cannot write the status file s/w.json: No space left" in shown(
        stats.snapshot(T)
    )


@pytest.mark.system
def test_an_embedded_store_held_exclusively_freezes_neither_heartbeat_nor_metrics(
    settings: Settings, tmp_path: Path
) -> None:
    """Another process holds BEGIN EXCLUSIVE for 13 s: heartbeat, status and /readyz go on."""
    port = free_port()
    with worker(settings, tmp_path / "w.log", METRICS_PORT=str(port)) as process:
        wait_until(lambda: serving(settings, process), "the worker serving")
        blocker = sqlite3.connect(settings.sqlite_path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        held = time.monotonic()
        try:
            drop(settings.inbound_dir, "1.json", json.dumps(erp(orderNo=1)).encode())
            wait_until(lambda: time.monotonic() - held > 12, "the lock held 12 s", 15)
            report = status_json(settings)
            status = read_worker_status(settings, process.pid)
            assert status is not None
            age = (datetime.now(UTC) - status.heartbeat).total_seconds()
            code, body = http_get(port, "/readyz")
            metrics = http_get(port, "/metrics")[1]
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert report["worker_running"] is True, report
        assert age < 5, f"heartbeat {age:.1f} s old while the store was held"
        assert not status.store_connected and status.store_error
        assert code == 503 and "store unavailable" in body
        assert "watcher_store_up 0.0" in metrics
        wait_until((settings.archive_dir / "1.json").exists, "the file after the lock")


@pytest.mark.system
@pytest.mark.anyio
@pytest.mark.usefixtures("real_backoff")
async def test_a_start_up_outage_is_shown_from_the_first_second(tmp_path: Path) -> None:
    """MongoDB unreachable at start: the reporter, the status file and health say why."""
    uri = f"mongodb://127.0.0.1:{free_port()}/?serverSelectionTimeoutMS=200"
    settings = make_settings(tmp_path, mongo_uri=uri)
    running = build_worker(settings)
    seen: list[Snapshot] = []

    async def report(snapshot: Snapshot) -> None:
        seen.append(snapshot)

    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(running.serve, stop, report, 0.05)
        # the first snapshots say "connecting": wait for the failed attempt to be reported
        await wait_for(lambda: any(_unreachable(s.store) for s in seen), "the outage reported")
        drop(settings.inbound_dir, "1.json", json.dumps(erp(orderNo=1)).encode())
        await wait_for(lambda: seen[-1].waiting_files == 1, "the file dropped meanwhile shown")
        await wait_for(lambda: _says_unreachable(settings), "the outage in the status file")
        problem = health_problem(settings, datetime.now(UTC))
        stop.set()
    assert not seen[0].store.connected, "'connected' before the store ever answered"
    assert "store connecting…" in shown(seen[0])
    outage = [s for s in seen if _unreachable(s.store)][-1]
    assert problem is not None and "cannot reach its store: MongoDB unreachable" in problem
    shown_text = shown(outage)
    assert "store RETRYING: MongoDB unreachable" in shown_text


def _unreachable(store: StoreState) -> bool:
    return not store.connected and "MongoDB unreachable" in store.error


def _says_unreachable(settings: Settings) -> bool:
    status = read_worker_status(settings)
    return status is not None and not status.store_connected and "unreachable" in status.store_error


@pytest.mark.system
def test_status_during_a_mongo_outage_tells_what_it_knows(tmp_path: Path) -> None:
    """No MongoDB: status answers in JSON with the worker's last counts and their age."""
    uri = f"mongodb://127.0.0.1:{free_port()}/?serverSelectionTimeoutMS=300"
    settings = make_settings(tmp_path, mongo_uri=uri)
    settings.state_dir.mkdir(parents=True)
    stats = Stats(started=datetime.now(UTC))
    stats.stored, stats.unsynced, stats.counts_at = (
        120,
        7,
        datetime.now(UTC) - timedelta(seconds=30),
    )
    stats.unsynced_age = 3600.0
    stats.store = StoreState(False, "MongoDB unreachable: connection refused")
    write_worker_status(settings, stats.snapshot(datetime.now(UTC)), "MongoDB change stream")
    result = cli(settings, "status", "--json")
    report = json.loads(result.stdout)
    assert report["store_reachable"] is False and "unreachable" in report["store_error"]
    assert (report["stored"], report["unsynced"]) == (120, 7)
    assert report["oldest_unsynced_seconds"] == 3600.0  # measured with those counts
    assert report["counts_age_seconds"] >= 30 and report["counts_from"].startswith("worker ")
    assert [w["running"] for w in report["workers"]] == [True]  # this test's own pid
    assert "stamina" not in result.stderr and "retry" not in result.stderr
    text = cli(settings, "status").stdout
    assert "store reachable: False" in text and "stored: 120" in text


@pytest.mark.system
def test_two_workers_each_have_their_own_heartbeat(settings: Settings, tmp_path: Path) -> None:
    """status lists both; health checks the worker it is asked about (WATCHER_ID)."""
    with (
        worker(settings, tmp_path / "a.log", WATCHER_ID="a") as a,
        worker(settings, tmp_path / "b.log", WATCHER_ID="b") as b,
    ):
        wait_until(lambda: serving(settings, a) and serving(settings, b), "both serving")
        listed = {w["id"]: w["running"] for w in status_json(settings)["workers"]}
        assert listed == {"a": True, "b": True}
        b.kill()
        b.wait()
        healthy = cli(settings, "health", check=False, env={"WATCHER_ID": "a"})
        broken = cli(settings, "health", check=False, env={"WATCHER_ID": "b"})
        assert (healthy.returncode, healthy.stdout.strip()) == (0, "healthy")
        assert broken.returncode == 1
        assert f"the worker (pid {b.pid}) is not running" in broken.stdout
        listed = {w["id"]: w["running"] for w in status_json(settings)["workers"]}
        assert listed == {"a": True, "b": False}


@pytest.mark.system
@pytest.mark.anyio
async def test_status_lists_unexportable_orders_after_once(settings: Settings) -> None:
    """After `watcher once`, orders that stay unsynced because they cannot be exported are
    listed with the field at fault."""
    async with opened_store(settings) as store:
        await store.put_documents(
            [tracos_doc(1, status="archived"), tracos_doc(2, title=5), tracos_doc(3)]
        )
    cli(settings, "once")
    report = status_json(settings)
    listed = {e["order"]: e["reason"] for e in report["unexportable"]}
    assert listed == {
        "order 1": "unknown status 'archived'",
        "order 2": "Expected `str`, got `int` at $.title",
    }
    assert (report["unexportable_total"], report["unsynced"]) == (2, 2)
    assert (
        "unexportable order 2: Expected `str`, got `int` at $.title"
        in cli(settings, "status").stdout
    )


@pytest.mark.system
@pytest.mark.anyio
async def test_an_unexportable_order_is_reported_once_not_at_every_start(
    settings: Settings,
) -> None:
    """The first ``once`` logs the order that cannot be exported; the next ones (and a
    worker started later) do not say it again, while ``status`` still lists it; a change
    to the order is news again."""
    async with opened_store(settings) as store:
        await store.put_documents([tracos_doc(1, status="archived")])
    said = [cli(settings, "once").stderr for _ in range(3)]
    assert [text.count("cannot be exported") for text in said] == [1, 0, 0], said
    assert [e["order"] for e in status_json(settings)["unexportable"]] == ["order 1"]
    async with opened_store(settings) as store:
        await store.put_documents([tracos_doc(1, status="lost")])
    assert cli(settings, "once").stderr.count("cannot be exported") == 1
