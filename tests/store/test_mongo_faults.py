"""The MongoDB adapter under the faults real deployments have: a write concern not met, a
document the server refuses, permanent errors at start, calls that hang.

Faults are injected on a SecantusDB server of the session's own with mongod's
``configureFailPoint``/``failCommand``, scoped to the worker's ``appName``.
"""

from __future__ import annotations

import json
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import anyio
import pytest
from pymongo import AsyncMongoClient, monitoring
from rich.console import Console

from tests.helpers.builders import NOW, T0, erp, order, tracos_doc
from tests.helpers.conditions import wait_for, wait_until
from tests.helpers.failpoints import WRITE_CONCERN_ERROR, app_uri, failing
from tests.helpers.harness import serving, start_worker
from tests.helpers.stores import all_unsynced, make_settings, unique_collection
from tests.helpers.workers import cli, drop, names, reports, running, stored_docs
from watcher.core.errors import OrdersHeld
from watcher.core.settings import Settings
from watcher.core.tracos import Outcome
from watcher.observe.api import routes
from watcher.observe.console import Header, render
from watcher.observe.status_report import gather_status
from watcher.store import HistoryQuery, SyncMark, read_history
from watcher.store.journal import Entry
from watcher.store.mongo import MongoStore
from watcher.sync import journaling
from watcher.sync.stats import Count

pytestmark = [pytest.mark.anyio, pytest.mark.system]
DATABASE = "watcher_tests"


def faulty_settings(root: Path, uri: str, **overrides: Any) -> Settings:
    """A worker's settings whose client the failpoints hit (the test's own client is spared)."""
    return make_settings(
        root,
        mongo_uri=app_uri(uri),
        mongo_database=DATABASE,
        mongo_collection=unique_collection(),
        **overrides,
    )


def erp_bytes(*numbers: int) -> bytes:
    """One order's file, or a batch (a JSON array) when several numbers are given."""
    orders = [erp(orderNo=n) for n in numbers]
    return json.dumps(orders[0] if len(orders) == 1 else orders).encode()


async def put_as_tracos(uri: str, settings: Settings, *numbers: int) -> None:
    """TracOS writes documents (through the test's own client: no failpoint applies)."""
    store = MongoStore.connect(uri, settings.mongo_database, settings.mongo_collection)
    try:
        await store.put_documents([tracos_doc(n) for n in numbers])
    finally:
        await store.close()


async def history(settings: Settings, number: int) -> list[Entry]:
    """The journal's entries of one order (a read: no failpoint here is on reads)."""
    return await anyio.to_thread.run_sync(read_history, settings, HistoryQuery(number=number))


def waiting_on(worker: Any, words: str) -> bool:
    """The worker is retrying its store, for a reason that says ``words``."""
    store = worker.stats.store
    return not store.connected and words in store.error


@pytest.mark.usefixtures("real_backoff")
async def test_an_upsert_without_its_write_concern_leaves_the_file_claimed(
    tmp_path: Path, fault_uri: str
) -> None:
    """A writeConcernError on the upsert is no success: nothing archived, counted or
    journalled until a retry is confirmed durable; then the file is archived once."""
    settings = faulty_settings(tmp_path, fault_uri)
    failure: dict[str, Any] = {"failCommands": ["update"], "writeConcernError": WRITE_CONCERN_ERROR}
    async with running(settings) as worker:
        async with failing(fault_uri, **failure):
            drop(settings.inbound_dir, "1.json", erp_bytes(1))
            await wait_for(lambda: waiting_on(worker, "write concern"), "the write retried")
            assert names(settings.archive_dir) == [] and names(settings.failed_dir) == []
            assert worker.stats.counters[Count.FILES_ARCHIVED] == 0
            assert sum(worker.stats.counters[c] for c in Count if "orders" in c) == 0
        await wait_for(lambda: names(settings.archive_dir) == ["1.json"], "archived once durable")
    assert [d["number"] for d in await stored_docs(settings)] == [1]
    assert worker.stats.counters[Count.FILES_ARCHIVED] == 1
    # the retry found its own unconfirmed write: still "inserted", never "unchanged"
    assert worker.stats.counters[Count.ORDERS_INSERTED] == 1
    assert worker.stats.counters[Count.ORDERS_UNCHANGED] == 0


@pytest.mark.usefixtures("real_backoff")
async def test_a_bulk_write_with_the_journal_without_its_write_concern_leaves_the_file_claimed(
    tmp_path: Path, fault_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client-level bulkWrite (an upsert with the journal of the batch before) gets a
    writeConcernError: an outage like the upsert's own. The file stays claimed, nothing of
    it is archived, counted or journalled; once durable, it is archived and journalled
    once, and the entries that rode along are in the journal once."""
    monkeypatch.setattr(journaling, "WINDOW_SECONDS", 60.0)  # file 1's entries ride with 2's
    settings = faulty_settings(tmp_path, fault_uri)
    failure: dict[str, Any] = {
        "failCommands": ["bulkWrite"],
        "writeConcernError": WRITE_CONCERN_ERROR,
    }
    async with running(settings) as worker:
        drop(settings.inbound_dir, "1.json", erp_bytes(1))
        await wait_for(lambda: names(settings.archive_dir) == ["1.json"], "the first archived")
        await wait_for(lambda: len(worker.journal.pending) == 1, "its entry waiting")
        async with failing(fault_uri, **failure):
            drop(settings.inbound_dir, "2.json", erp_bytes(2))
            await wait_for(lambda: waiting_on(worker, "write concern"), "the write retried")
            assert names(settings.archive_dir) == ["1.json"] and names(settings.failed_dir) == []
            assert worker.stats.counters[Count.FILES_ARCHIVED] == 1
            assert worker.stats.counters[Count.ORDERS_INSERTED] == 1
            assert await history(settings, 2) == []
            assert len(worker.journal.pending) == 1  # put back: not taken as written
        await wait_for(lambda: len(names(settings.archive_dir)) == 2, "archived once durable")
        assert worker.stats.counters[Count.ORDERS_INSERTED] == 2
    assert [d["number"] for d in await stored_docs(settings)] == [1, 2]
    assert [(e.event, e.to) for e in await history(settings, 1)] == [("inserted", "1.json")]
    assert [(e.event, e.to) for e in await history(settings, 2)] == [("inserted", "2.json")]


@pytest.mark.usefixtures("real_backoff")
async def test_marks_without_their_write_concern_are_retried_and_counted_once(
    tmp_path: Path, fault_uri: str
) -> None:
    """A writeConcernError on the marks: retried (never a crash), and the retry finds the
    marks it applied: exported once, nothing "changed meanwhile"."""
    settings = faulty_settings(tmp_path, fault_uri)
    failure: dict[str, Any] = {"failCommands": ["update"], "writeConcernError": WRITE_CONCERN_ERROR}
    async with running(settings) as worker:
        async with failing(fault_uri, **failure):
            await put_as_tracos(fault_uri, settings, 5)
            await wait_for(lambda: waiting_on(worker, "write concern"), "the marks retried")
            assert (settings.outbound_dir / "5.json").exists()
            assert worker.stats.counters[Count.EXPORTED] == 0
        await wait_for(lambda: worker.stats.counters[Count.EXPORTED] == 1, "marked once durable")
        assert worker.stats.counters[Count.CHANGED_DURING_EXPORT] == 0
    assert [d["isSynced"] for d in await stored_docs(settings)] == [True]


async def test_an_order_the_server_refuses_is_rejected_alone(
    tmp_path: Path, fault_uri: str
) -> None:
    """A validator refuses two orders: each reaches the failed folder with the server's
    reason (a single-order file whole, a batch's element), the other orders are stored."""
    settings = faulty_settings(tmp_path, fault_uri)
    client: AsyncMongoClient[Any] = AsyncMongoClient(fault_uri)
    schema = {"$jsonSchema": {"properties": {"number": {"maximum": 100}}}}
    await client[DATABASE].create_collection(settings.mongo_collection, validator=schema)
    await client.close()
    async with running(settings) as worker:
        drop(settings.inbound_dir, "batch.json", erp_bytes(1, 500, 2))
        drop(settings.inbound_dir, "501.json", erp_bytes(501))
        drop(settings.inbound_dir, "3.json", erp_bytes(3))
        archived = ["3.json", "batch.json"]
        await wait_for(lambda: names(settings.archive_dir) == archived, "the good ones archived")
        await wait_for(lambda: len(reports(settings)) == 2, "both refusals reported")
        assert worker.stats.store.connected
    assert sorted(d["number"] for d in await stored_docs(settings)) == [1, 2, 3]
    found = reports(settings)
    assert "order 501: MongoDB refused it: " in found["501.json"]["reason"]
    assert "Document failed validation" in found["501.json"]["reason"]
    (element,) = found["batch.json"]["rejected"]
    assert element["reason"].startswith("order 500: MongoDB refused it: ")


def refused_in_status(settings: Settings, worker: Any) -> list[dict[str, Any]]:
    """The orders whose mark was refused, as /status lists them (the worker's own route)."""
    status_route = routes(settings, lambda: worker.stats.snapshot(datetime.now(UTC)))["/status"]
    code, body = status_route({})
    assert code == 200
    return cast(list[dict[str, Any]], cast(dict[str, Any], body)["marks_refused"])


async def test_a_mark_refused_for_one_document_leaves_it_unsynced_and_listed_until_marked(
    tmp_path: Path, fault_uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A validator refuses one document's mark: it stays unsynced, the others are marked,
    and status, /status and the console list the order with the server's reason until a
    later export of it is marked."""
    settings = faulty_settings(tmp_path, fault_uri)
    client: AsyncMongoClient[Any] = AsyncMongoClient(fault_uri)
    db = client[DATABASE]
    never_synced = {"$or": [{"number": {"$ne": 7}}, {"isSynced": {"$ne": True}}]}
    await db.create_collection(settings.mongo_collection, validator=never_synced)
    try:
        async with running(settings) as worker:
            await put_as_tracos(fault_uri, settings, 7, 8, 9)
            await wait_for(lambda: worker.stats.counters[Count.EXPORTED] == 2, "8 and 9 marked")
            await wait_for(lambda: refused_in_status(settings, worker) != [], "7 listed")
            (listed,) = refused_in_status(settings, worker)
            assert listed["order"] == "order 7"
            assert "Document failed validation" in listed["reason"]
            assert worker.stats.counters[Count.CHANGED_DURING_EXPORT] == 0
            assert worker.stats.store.connected
            said = json.loads(cli(settings, "status", "--json").stdout)
            assert (said["marks_refused_total"], said["marks_refused"]) == (1, [listed])
            text = cli(settings, "status").stdout
            assert "mark refused order 7: MongoDB refused it: " in text
            assert "Document failed validation" in text.split("mark refused order 7")[1]
            shown = worker.stats.snapshot(datetime.now(UTC))
            console = Console(width=160, height=40, record=True)
            console.print(render(shown, Header.from_settings(settings, "t", "m")))
            drawn = console.export_text()
            assert "1 marks refused" in drawn and "Document failed validation" in drawn
            synced = {d["number"]: d.get("isSynced") for d in await stored_docs(settings)}
            assert synced == {7: None, 8: True, 9: True}
            await db.command("collMod", settings.mongo_collection, validator={})
            edit = {"$set": {"title": "edited by TracOS"}}  # out again, marked now
            await db[settings.mongo_collection].update_one({"number": 7}, edit)
            await wait_for(lambda: refused_in_status(settings, worker) == [], "7 marked, cleared")
            assert "cannot be marked synced" in caplog.text
    finally:
        await client.close()
    assert all(d["isSynced"] for d in await stored_docs(settings))


class Commands(monitoring.CommandListener):
    """The commands a client sends about one collection, as sent."""

    def __init__(self, collection: str) -> None:
        self.collection = collection
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command.get(event.command_name) == self.collection:
            self.sent.append((event.command_name, dict(event.command)))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def _sent_by_a_round_trip(uri: str) -> list[tuple[str, dict[str, Any]]]:
    """What a store sends for an inbound write, a TracOS write, a sweep, a check, marks."""
    name = unique_collection()
    listener = Commands(name)
    store = MongoStore.connect(uri, DATABASE, name, event_listeners=[listener])
    try:
        await store.open()
        await store.upsert([order(1)], NOW)
        await store.put_documents([tracos_doc(2)])
        (doc,) = await all_unsynced(store)
        marks = [SyncMark(doc.key, doc.version)]
        assert await store.unsynced_at(marks) == {doc.key}
        assert await store.mark_synced(marks, NOW) == {doc.key}
        await store.collection.drop()
    finally:
        await store.close()
    return listener.sent


async def test_writes_wait_for_the_majority_and_export_reads_see_only_its_data(
    mongo_uri: str,
) -> None:
    """On the wire: every write asks w:majority (unless the URI says otherwise), and the
    reads that decide an export (sweep, check before writing) ask readConcern majority."""
    sent = await _sent_by_a_round_trip(mongo_uri)
    writes = [c for name, c in sent if name == "update"]
    assert len(writes) == 3 and all(c["writeConcern"] == {"w": "majority"} for c in writes)
    unsynced = [c for name, c in sent if name == "find" and "isSynced" in str(c["filter"])]
    assert len(unsynced) >= 2
    assert all(c["readConcern"] == {"level": "majority"} for c in unsynced)
    chosen = await _sent_by_a_round_trip(mongo_uri + "&w=1")
    assert all(c.get("writeConcern", {}).get("w") != "majority" for _, c in chosen)


@pytest.mark.parametrize(
    ("command", "code", "said"),
    [
        ("ping", 8000, "a bad user or password in MONGO_URI"),
        ("ping", 18, "authentication failed: check the user, password"),
        ("createIndexes", 13, "lacks a privilege"),
        ("createIndexes", 67, "sharded on number"),
    ],
)
async def test_a_permanent_refusal_at_start_is_one_line_and_exit_2(
    tmp_path: Path, fault_uri: str, command: str, code: int, said: str
) -> None:
    """Bad credentials (Atlas's 8000 too), missing privileges, an index the server cannot
    make: one line naming what to fix, exit 2 — never waited out as an outage."""
    settings = faulty_settings(tmp_path, fault_uri)
    async with failing(fault_uri, failCommands=[command], errorCode=code):
        result = await anyio.to_thread.run_sync(lambda: cli(settings, "once", check=False))
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("watcher: configuration error: ") and said in line
    assert "full error" not in line and "{" not in line


async def test_duplicate_numbers_stop_the_start_naming_them(tmp_path: Path, fault_uri: str) -> None:
    """Numbers stored twice stop the unique index: exit 2, the numbers named."""
    settings = faulty_settings(tmp_path, fault_uri)
    client: AsyncMongoClient[Any] = AsyncMongoClient(fault_uri)
    coll = client[DATABASE][settings.mongo_collection]
    await coll.insert_many([tracos_doc(n) for n in (4, 4, 9, 9, 9, 10)])
    await client.close()
    result = await anyio.to_thread.run_sync(lambda: cli(settings, "once", check=False))
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.splitlines()
    assert "duplicate numbers stop the unique index on number: 4 (2 documents), 9 (3" in line


def _health(settings: Settings) -> str:
    result = cli(settings, "health", check=False)
    return f"{result.returncode} {result.stdout}{result.stderr}"


@pytest.mark.parametrize("stopped", ["while the write hangs", "after it timed out"])
async def test_a_hung_server_shows_not_answering_times_out_and_never_holds_a_stop(
    tmp_path: Path, fault_uri: str, stopped: str
) -> None:
    """Writes that hang: health fails saying so within seconds, the call ends at
    MONGO_TIMEOUT_SECONDS as an outage (retried), and SIGTERM is answered within the grace
    plus a second, whether it comes while the write hangs or after."""
    settings = faulty_settings(tmp_path, fault_uri)
    settings.inbound_dir.mkdir(parents=True)
    env = {"MONGO_TIMEOUT_SECONDS": "6", "STOP_GRACE_SECONDS": "2"}
    log_path = tmp_path / "worker.log"
    hang: dict[str, Any] = {
        "failCommands": ["update"],
        "blockConnection": True,
        "blockTimeMS": 60_000,
    }
    with log_path.open("w") as log:
        process = start_worker(settings, log, {**env, "STORE_RETRY_MAX_SECONDS": "0.5"})
        try:
            wait_until(lambda: serving(settings, process), "the worker started")
            async with failing(fault_uri, **hang):
                drop(settings.inbound_dir, "1.json", erp_bytes(1))
                wait_until(lambda: "has not answered for" in _health(settings), "health fails", 12)
                if stopped == "after it timed out":
                    wait_until(
                        lambda: "did not answer in time" in log_path.read_text(), "timed out", 15
                    )
                stopping = time.monotonic()
                process.send_signal(signal.SIGTERM)
                assert process.wait(timeout=10) == 0
                took = time.monotonic() - stopping
                assert took < 2 + 1, f"stopped {took:.1f} s after SIGTERM"  # the grace, + 1 s
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert names(settings.archive_dir) == []  # still claimed: resumed at the next start


def erp_version(number: int, hours: int) -> bytes:
    """Order ``number`` as the ERP had it ``hours`` after the builders' base time."""
    updated = f"2025-10-01T{hours:02d}:04:29.045089+00:00"
    return json.dumps(erp(orderNo=number, lastUpdateDate=updated)).encode()


async def _unique_index(client: AsyncMongoClient[Any], settings: Settings) -> bool:
    info = await client[DATABASE][settings.mongo_collection].index_information()
    return bool(info.get("number_1", {}).get("unique"))


async def test_a_dropped_unique_index_is_made_again_before_an_older_file_is_written(
    tmp_path: Path, fault_uri: str
) -> None:
    """A DBA drops the unique index under a running worker, then the ERP re-delivers an
    older version: the index is made again and the older version is stale, never a
    second document."""
    settings = faulty_settings(tmp_path, fault_uri)
    client: AsyncMongoClient[Any] = AsyncMongoClient(fault_uri)
    try:
        async with running(settings) as worker:
            drop(settings.inbound_dir, "1.json", erp_version(1, 5))
            await wait_for(lambda: names(settings.archive_dir) == ["1.json"], "the newer stored")
            await client[DATABASE][settings.mongo_collection].drop_index("number_1")
            drop(settings.inbound_dir, "1-again.json", erp_version(1, 3))
            await wait_for(lambda: len(names(settings.archive_dir)) == 2, "the older judged")
            assert worker.stats.counters[Count.ORDERS_STALE] == 1
        assert await _unique_index(client, settings)
    finally:
        await client.close()
    assert [d["number"] for d in await stored_docs(settings)] == [1]


def problems_in_status(settings: Settings, worker: Any) -> str:
    """What `watcher status` (the worker's line) and /status say is wrong, as one text."""
    now = datetime.now(UTC)
    report = gather_status(settings, None, None, now)
    code, body = routes(settings, lambda: worker.stats.snapshot(now))["/status"]({})
    assert code == 200
    served = cast(dict[str, Any], body)
    return f"{report['worker_problem']} | {served['worker_problem']}"


async def test_duplicates_that_stop_the_index_hold_only_their_numbers_and_say_so(
    tmp_path: Path, fault_uri: str
) -> None:
    """Index dropped and number 2 stored twice meanwhile: the files holding order 2 wait
    (claimed) with a problem line naming it in status and /status; files of other numbers
    (new, updated) are stored and archived, never as a second document. Once the twin is
    gone, the index is made again and the waiting files go through."""
    settings = faulty_settings(tmp_path, fault_uri)
    client: AsyncMongoClient[Any] = AsyncMongoClient(fault_uri)
    coll = client[DATABASE][settings.mongo_collection]
    try:
        async with running(settings) as worker:
            drop(settings.inbound_dir, "1.json", erp_version(1, 5))
            await wait_for(lambda: names(settings.archive_dir) == ["1.json"], "the first stored")
            await coll.drop_index("number_1")
            await coll.insert_many([tracos_doc(2), tracos_doc(2, title="twin")])
            drop(settings.inbound_dir, "2.json", erp_version(2, 5))
            drop(settings.inbound_dir, "5-and-2.json", erp_bytes(5, 2))
            drop(settings.inbound_dir, "1-newer.json", erp_version(1, 7))
            drop(settings.inbound_dir, "1-older.json", erp_version(1, 3))
            drop(settings.inbound_dir, "3.json", erp_bytes(3))
            others = ["1-newer.json", "1-older.json", "1.json", "3.json"]
            await wait_for(lambda: names(settings.archive_dir) == others, "the others archived")
            said = "duplicate numbers stop the unique index on number: 2 (2 documents)"
            await wait_for(lambda: said in problems_in_status(settings, worker), "the problem")
            assert "inbound holds 2 files" in problems_in_status(settings, worker)
            assert worker.stats.store.connected
            assert names(settings.failed_dir) == []
            numbers = sorted(d["number"] for d in await coll.find().to_list(None))
            assert numbers == [1, 2, 2, 3]  # 5 waits with its file; 1 and 3 once each
            await coll.delete_one({"title": "twin"})
            everything = sorted([*others, "2.json", "5-and-2.json"])
            await wait_for(lambda: names(settings.archive_dir) == everything, "the held went on")
            solved = lambda: "inbound holds" not in problems_in_status(settings, worker)  # noqa: E731
            await wait_for(solved, "the problem gone")
        assert await _unique_index(client, settings)
    finally:
        await client.close()
    stored = {d["number"]: d for d in await stored_docs(settings)}
    assert sorted(stored) == [1, 2, 3, 5]
    assert stored[1]["updatedAt"].hour == 7  # newer wins held while the index was gone


async def test_without_the_index_a_number_written_meanwhile_never_gets_a_second_document(
    mongo_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While duplicates stop the unique index, order 7 is new when read, and TracOS stores
    a newer 7 before the write: the _id the number gives refuses a second document, and
    the newer version stays. A number stored twice is held, nothing of its call written."""
    name = unique_collection()
    store, tracos = (MongoStore.connect(mongo_uri, DATABASE, name) for _ in range(2))
    await store.open()
    coll = store.collection
    read_first = store._find

    async def read_then_tracos_writes(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        found = await read_first(*args, **kwargs)
        if not await coll.count_documents({"number": 7}):
            await tracos.put_documents([tracos_doc(7, updatedAt=T0 + timedelta(days=1))])
        return found

    try:
        await coll.drop_index("number_1")
        await coll.insert_many([tracos_doc(2), tracos_doc(2, title="twin")])
        monkeypatch.setattr(store, "_find", read_then_tracos_writes)
        assert await store.upsert([order(7, T0)], NOW) == [Outcome.STALE]
        assert [d["title"] for d in await coll.find({"number": 7}).to_list(None)] == [
            "Example workorder #7"
        ]
        with pytest.raises(OrdersHeld, match="orders 2 wait: duplicate numbers"):
            await store.upsert([order(8), order(2)], NOW)
        assert await coll.count_documents({"number": 8}) == 0
    finally:
        await coll.drop()
        await store.close()
        await tracos.close()


async def test_every_sweep_makes_a_missing_index_again(mongo_uri: str) -> None:
    """A (re)opened follow starts with a sweep, and the sweep checks the indexes first."""
    store = MongoStore.connect(mongo_uri, DATABASE, unique_collection())
    await store.open()
    swept = anyio.Event()

    async def handle(batch: Any) -> None:
        swept.set()

    try:
        await store.collection.drop_index("number_1")
        async with anyio.create_task_group() as tg:
            tg.start_soon(store.follow_unsynced, handle, 0.1, 100)
            await swept.wait()
            tg.cancel_scope.cancel()
        info = await store.collection.index_information()
        assert info["number_1"]["unique"] is True
    finally:
        await store.collection.drop()
        await store.close()


def streaming(root: Path, uri: str) -> Settings:
    """A worker that could never export by polling within a test's deadline."""
    return faulty_settings(root, uri, poll_seconds=3600.0)


async def _stream_opened(worker: Any) -> None:
    await wait_for(lambda: worker.store.mode == "MongoDB change stream", "the stream opened")


async def test_a_tracos_edit_with_set_is_exported_through_the_stream(
    tmp_path: Path, fault_uri: str
) -> None:
    """TracOS edits an exported order with $set (an update event, no document in it): the
    stream looks the document up, and the edit goes out."""
    settings = streaming(tmp_path, fault_uri)
    client: AsyncMongoClient[Any] = AsyncMongoClient(fault_uri)
    coll = client[DATABASE][settings.mongo_collection]
    try:
        async with running(settings) as worker:
            await _stream_opened(worker)
            await put_as_tracos(fault_uri, settings, 9)
            await wait_for(lambda: worker.stats.counters[Count.EXPORTED] == 1, "first export")
            edit = {"title": "edited by TracOS", "isSynced": False, "updatedAt": NOW}
            await coll.update_one({"number": 9}, {"$set": edit})
            await wait_for(lambda: worker.stats.counters[Count.EXPORTED] == 2, "the edit out")
    finally:
        await client.close()
    assert json.loads((settings.outbound_dir / "9.json").read_bytes())["summary"] == (
        "edited by TracOS"
    )


@pytest.mark.parametrize("code", [10334, 11601, 280])
async def test_a_stream_error_reopens_the_stream_never_polling(
    tmp_path: Path, fault_uri: str, caplog: pytest.LogCaptureFixture, code: int
) -> None:
    """An event too large (10334), a killOp (11601), a fatal stream error (280): the stream
    is reopened after a sweep, and later changes still come through it."""
    settings = streaming(tmp_path, fault_uri)
    async with running(settings) as worker:
        await _stream_opened(worker)
        async with failing(fault_uri, mode={"times": 1}, failCommands=["getMore"], errorCode=code):
            await wait_for(lambda: "reopening" in caplog.text, "the stream reopened", 10)
        await _stream_opened(worker)
        await put_as_tracos(fault_uri, settings, 4)
        await wait_for(lambda: worker.stats.counters[Count.EXPORTED] == 1, "exported by stream")
        assert worker.store.mode == "MongoDB change stream"
