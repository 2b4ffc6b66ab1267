"""The sync journal end to end, on both stores: what a worker records and `watcher history`
tells, for an order's whole life and for a batch file with rejected elements."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import anyio
import pytest

from tests.helpers.builders import T0, erp, tracos_doc
from tests.helpers.conditions import wait_for
from tests.helpers.stores import make_settings
from tests.helpers.workers import cli, drop, http_get, names, running
from watcher.app import Worker
from watcher.core.settings import Settings
from watcher.erp.port import OutboundFile, OutboundSink
from watcher.observe import api
from watcher.observe import history as history_text
from watcher.observe.metrics import MetricsServer
from watcher.store.journal import Entry, new_id
from watcher.sync.stats import Count

pytestmark = pytest.mark.anyio


def iso(when: Any) -> str:
    return str(when.isoformat())


class ChangeAfterWrite:
    """The worker's sink, with a TracOS write of order 42 slipped in after its first write:
    the export is then stale, and must not be marked."""

    def __init__(self, worker: Worker) -> None:
        self.sink: OutboundSink = worker.outbound.sink
        self.store = worker.store
        self.armed = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sink, name)

    async def write(self, files: Sequence[OutboundFile]) -> set[int]:
        failed = await self.sink.write(files)
        if self.armed:
            self.armed = False
            later = T0 + timedelta(days=3)
            await self.store.put_documents([tracos_doc(42, title="Changed", updatedAt=later)])
        return failed


def archived(settings: Settings, name: str) -> bool:
    return name in names(settings.archive_dir)


def history(settings: Settings, *args: str) -> list[dict[str, Any]]:
    done = cli(settings, "history", *args, "--json")
    found: list[dict[str, Any]] = json.loads(done.stdout)
    return found


async def test_the_whole_story_of_an_order(any_settings: Settings) -> None:
    """Insert, a stale file, an update, an export that a change made stale, the export
    of the change: each one line, oldest first, with its file and version."""
    settings = any_settings
    versions = [T0, T0 - timedelta(days=1), T0 + timedelta(hours=1)]
    async with running(settings) as worker:
        for name, version in zip("abc", versions, strict=True):
            order = erp(orderNo=42, lastUpdateDate=iso(version))
            drop(settings.inbound_dir, f"{name}.json", json.dumps(order).encode())
            await wait_for(partial(archived, settings, f"{name}.json"), "archived")
        worker.outbound.sink = ChangeAfterWrite(worker)
        await worker.store.put_documents([tracos_doc(42, updatedAt=T0 + timedelta(days=2))])
        await wait_for(lambda: worker.stats.counters[Count.EXPORTED] == 1, "exported")
    story = history(settings, "42")
    told = [(e["direction"], e["event"], e.get("file")) for e in story]
    assert told == [
        ("in", "inserted", "a.json"),
        ("in", "stale", "b.json"),
        ("in", "updated", "c.json"),
        ("out", "changed_during_export", "42.json"),
        ("out", "exported", "42.json"),
    ]
    assert [e["version"][:10] for e in story] == [
        "2025-10-01",
        "2025-09-30",
        "2025-10-01",
        "2025-10-03",
        "2025-10-04",
    ]
    text = cli(settings, "history", "42").stdout.splitlines()
    assert len(text) == 5
    assert "order 42 from b.json, version 2025-09-30T00:04:29.045Z" in text[1]
    assert text[4].endswith("order 42 to 42.json, marked synced, version 2025-10-04T00:04:29.045Z")
    # a file of one order: one entry tells both what became of the order and of the file
    [(filed, line)] = zip(
        history(settings, "--file", "c.json"),
        cli(settings, "history", "--file", "c.json").stdout.splitlines(),
        strict=True,
    )
    assert (filed["event"], filed["number"], filed["to"]) == ("updated", 42, "c.json")
    assert line.endswith(
        "order 42 from c.json, version 2025-10-01T01:04:29.045Z; file archived to archive/c.json"
    )


async def test_a_batch_file_with_rejected_elements(any_settings: Settings) -> None:
    """The file's story: its valid orders, then where it went and why some were refused."""
    settings = any_settings
    batch = [erp(orderNo=1), erp(orderNo="two"), erp(orderNo=3)]
    async with running(settings):
        drop(settings.inbound_dir, "batch.json", json.dumps(batch).encode())
        await wait_for(lambda: names(settings.archive_dir) == ["batch.json"], "archived")
    story = history(settings, "--file", "batch.json")
    assert [(e["event"], e.get("number")) for e in story] == [
        ("inserted", 1),
        ("inserted", 3),
        ("partly_rejected", None),
    ]
    filed = story[-1]
    assert filed["to"] == "batch.rejected.json"
    assert filed["counts"] == {"inserted": 2}
    assert filed["reason"].startswith("1 of 3 orders rejected; first: ")
    assert filed["reason"].endswith("at $[1].orderNo")


async def test_a_quarantined_file_and_a_name_never_recorded(settings: Settings) -> None:
    async with running(settings):
        drop(settings.inbound_dir, "bad.json", b"{not json")
        await wait_for(lambda: bool(names(settings.failed_dir)), "quarantined")
    [filed] = history(settings, "--file", "bad.json")
    assert (filed["event"], filed["to"]) == ("quarantined", "bad.json")
    missing = cli(settings, "history", "--file", "never.json", check=False)
    assert missing.returncode == 1
    assert missing.stderr == "watcher: nothing recorded for file never.json\n"


async def test_no_journal_when_history_days_is_zero(settings: Settings) -> None:
    """A worker told HISTORY_DAYS=0 records nothing; `history` told so says the journal is off."""
    off = make_settings(settings.state_dir.parent, history_days=0.0)
    async with running(off):
        drop(settings.inbound_dir, "1.json", json.dumps(erp()).encode())
        await wait_for(lambda: names(settings.archive_dir) == ["1.json"], "archived")
    assert cli(settings, "history", "1", check=False).returncode == 1
    done = cli(settings, "history", "1", check=False, env={"HISTORY_DAYS": "0"})
    assert (done.returncode, done.stderr) == (
        1,
        "watcher: the sync journal is off (HISTORY_DAYS=0): nothing is recorded\n",
    )


def test_a_hostile_name_or_reason_cannot_steer_the_terminal() -> None:
    hostile = Entry(
        at=T0,
        direction="in",
        event="quarantined",
        file="\x1b[2J\x1b[31mevil\r.json",
        to="evil\n.json",
        reason="bad \x07 bell",
    )
    shown = history_text.line(hostile)
    assert not any(ord(c) < 32 for c in shown), shown
    assert "evil" in shown and "bell" in shown


def test_since_takes_a_time_or_an_age() -> None:
    now = T0
    assert history_text.since("2h", now) == now - timedelta(hours=2)
    assert history_text.since("7d", now) == now - timedelta(days=7)
    assert history_text.since("2025-09-01", now) == datetime(2025, 9, 1, tzinfo=UTC)
    assert history_text.since("2025-09-01T10:00:00+02:00", now).hour == 10
    with pytest.raises(ValueError, match="not a time: 'yesterday'"):
        history_text.since("yesterday", now)


async def test_the_history_endpoint_says_what_history_json_says(any_settings: Settings) -> None:
    """``/history`` beside ``/metrics``: the same entries; 404 with a reason for nothing
    recorded; 400 with a reason for a bad or missing parameter."""
    settings = any_settings
    async with running(settings):
        drop(settings.inbound_dir, "7.json", json.dumps(erp(orderNo=7)).encode())
        await wait_for(lambda: names(settings.archive_dir) == ["7.json"], "archived")
    await anyio.to_thread.run_sync(ask_the_endpoint, settings)  # the server has its own loop


def ask_the_endpoint(settings: Settings) -> None:
    routes = lambda served: api.routes(settings, served.latest)  # noqa: E731
    with MetricsServer(0, routes=routes) as server:
        status, body = http_get(server.port, "/history?number=7")
        assert (status, json.loads(body)) == (200, history(settings, "7"))
        status, body = http_get(server.port, "/history?file=7.json&limit=1")
        told = [(e["event"], e["to"]) for e in json.loads(body)]
        assert status == 200 and told == [("inserted", "7.json")]
        status, body = http_get(server.port, "/history?number=8")
        assert (status, json.loads(body)) == (404, {"error": "nothing recorded for order 8"})
        for target, reason in (
            ("/history", "/history takes number=N or file=NAME (one of them)"),
            ("/history?number=7&file=7.json", "/history takes number=N or file=NAME"),
            ("/history?number=-1", "not a whole number from 0 to"),
            ("/history?number=7&limit=0", "not a whole number from 1 to"),
            ("/history?number=7&since=soon", "not a time: 'soon'"),
            ("/history?numbr=7", "unknown parameter 'numbr'"),
        ):
            status, body = http_get(server.port, target)
            assert status == 400 and reason in json.loads(body)["error"], (target, body)


# --- every input edge answers a reason ------------------------------------------


@pytest.mark.parametrize("age", ["99999999999d", "999999d"])
def test_an_age_beyond_the_calendar_is_a_reason(settings: Settings, age: str) -> None:
    """``--since`` too long ago: one line and exit 2, not a traceback."""
    with pytest.raises(ValueError, match="too long ago"):
        history_text.since(age, T0)
    told = cli(settings, "history", "7", "--since", age, check=False)
    assert told.returncode == 2 and len(told.stderr.strip().splitlines()) == 1, told.stderr
    assert "--since" in told.stderr and "Traceback" not in told.stderr


def plant_foreign_entry(settings: Settings) -> None:
    """A document another program put into the journal, about order 7."""
    if settings.mongo_uri:
        from pymongo import MongoClient
        from pymongo.database import Database

        from watcher.store.mongo_journal import journal_name

        client: MongoClient[dict[str, Any]]
        with MongoClient(settings.mongo_uri) as client:
            database: Database[dict[str, Any]] = client[settings.mongo_database]
            database[journal_name(settings.mongo_collection)].insert_one(
                {"number": 7, "at": datetime.now(UTC), "hello": "world"}
            )
        return
    db = sqlite3.connect(settings.sqlite_path)
    with db:
        db.execute(  # keyed by an id, ``at`` in microseconds (store format 3)
            "INSERT INTO journal (id, at, number, file, entry) VALUES (?, ?, 7, NULL, ?)",
            (new_id(), int(datetime.now(UTC).timestamp() * 1e6), b'{"hello": "world"}'),
        )
    db.close()


async def test_a_foreign_entry_in_the_journal_is_one_line(any_settings: Settings) -> None:
    """``history`` says in one line that the journal holds something not ours; ``/history``
    answers that reason (not "bad query string"); a far ``since`` there is a 400."""
    settings = any_settings
    async with running(settings):
        drop(settings.inbound_dir, "7.json", json.dumps(erp(orderNo=7)).encode())
        await wait_for(lambda: names(settings.archive_dir) == ["7.json"], "archived")
    plant_foreign_entry(settings)
    told = cli(settings, "history", "7", check=False)
    assert told.returncode == 1 and told.stdout == "", told.stderr
    [line] = told.stderr.strip().splitlines()
    assert "the sync journal holds an entry that is not a watcher entry" in line, line
    await anyio.to_thread.run_sync(ask_about_the_foreign_entry, settings)


def ask_about_the_foreign_entry(settings: Settings) -> None:
    routes = lambda served: api.routes(settings, served.latest)  # noqa: E731
    with MetricsServer(0, routes=routes) as server:
        status, body = http_get(server.port, "/history?number=7")
        assert status == 500 and "not a watcher entry" in json.loads(body)["error"], body
        status, body = http_get(server.port, "/history?number=7&since=99999999999d")
        assert status == 400 and "too long ago" in json.loads(body)["error"], body
