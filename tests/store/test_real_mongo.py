"""The MongoDB adapter against a real MongoDB-wire server: stream, invalidation, outages.

Each test here runs in every test session (SecantusDB, or the server that
``WATCHER_TEST_MONGO_URI`` names); those that kill or step down a server start their own.
"""

from __future__ import annotations

import json
import logging
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from pymongo import AsyncMongoClient

from tests.helpers.builders import erp, tracos_doc
from tests.helpers.conditions import wait_for, wait_until
from tests.helpers.harness import serving, start_worker
from tests.helpers.mongo_server import ROOT, MongoServer, missing_server
from tests.helpers.stores import make_settings, unique_collection
from tests.helpers.workers import cli, drop, names, running, stored_docs
from watcher.app import Worker
from watcher.core.settings import Settings
from watcher.sync.stats import Count

pytestmark = [pytest.mark.anyio, pytest.mark.system]


def erp_file(number: int) -> bytes:
    return json.dumps(erp(orderNo=number)).encode()


def exported(worker: Worker, count: int) -> Callable[[], bool]:
    return lambda: worker.stats.counters[Count.EXPORTED] >= count


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[MongoServer]:
    """A server of this test's own, on a data folder that survives a kill (sync on commit)."""
    server = MongoServer(storage=str(tmp_path / "mongo-data"), sync_on_commit=True).start()
    yield server
    server.stop()


def settings_on(root: Path, uri: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"mongo_database": "watcher_tests"}
    values.update(overrides)
    return make_settings(root, mongo_uri=uri, mongo_collection=unique_collection(), **values)


async def test_a_tracos_write_reaches_the_outbound_folder_through_the_stream(
    mongo_settings: Settings,
) -> None:
    """Files in → documents; a TracOS write → its file, carried by a change event (not a poll)."""
    slow_poll = make_settings(
        mongo_settings.inbound_dir.parent,
        mongo_uri=mongo_settings.mongo_uri,
        mongo_database=mongo_settings.mongo_database,
        mongo_collection=mongo_settings.mongo_collection,
        poll_seconds=3600.0,  # a fallback to polling could not export within the deadline
    )
    async with running(slow_poll) as worker:
        await wait_for(lambda: worker.store.mode == "MongoDB change stream", "the stream opened")
        drop(slow_poll.inbound_dir, "1.json", erp_file(1))
        await wait_for(lambda: names(slow_poll.archive_dir) == ["1.json"], "inbound archived")
        await worker.store.put_documents([tracos_doc(2)])
        await wait_for(exported(worker, 1), "TracOS order exported")
        assert worker.store.mode == "MongoDB change stream"
        assert len(worker.stats.latency_out) == 1  # only a change event carries its wallTime
    assert names(slow_poll.outbound_dir) == ["2.json"]
    docs = {d["number"]: d for d in await stored_docs(slow_poll)}
    assert docs[1]["isSynced"] is True and docs[2]["isSynced"] is True


async def test_a_server_without_change_streams_is_polled(tmp_path: Path) -> None:
    """A standalone server refuses the stream: mode says polling, and exports still happen."""
    server = MongoServer(standalone=True).start()
    try:
        settings = settings_on(tmp_path, server.uri, poll_seconds=0.1)
        async with running(settings) as worker:
            await worker.store.put_documents([tracos_doc(3)])
            await wait_for(exported(worker, 1), "export by polling")
            assert worker.store.mode == "MongoDB polling"
            assert list(worker.stats.latency_out) == []  # no change event was involved
    finally:
        server.stop()


async def _drop_collection(client: AsyncMongoClient[Any], settings: Settings) -> None:
    await client[settings.mongo_database].drop_collection(settings.mongo_collection)


async def _rename_collection(client: AsyncMongoClient[Any], settings: Settings) -> None:
    name = f"{settings.mongo_database}.{settings.mongo_collection}"
    await client.admin.command("renameCollection", name, to=f"{name}_renamed")
    await client[settings.mongo_database].drop_collection(f"{settings.mongo_collection}_renamed")


async def _drop_database(client: AsyncMongoClient[Any], settings: Settings) -> None:
    await client.drop_database(settings.mongo_database)


@pytest.mark.parametrize("invalidate", [_drop_collection, _rename_collection, _drop_database])
async def test_an_invalidated_stream_never_stops_the_worker(
    tmp_path: Path,
    mongo_uri: str,
    caplog: pytest.LogCaptureFixture,
    invalidate: Callable[[AsyncMongoClient[Any], Settings], Any],
) -> None:
    """Collection dropped or renamed, database dropped: a warning, a sweep, exports go on."""
    settings = settings_on(tmp_path, mongo_uri, mongo_database=unique_collection("db"))
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_uri)
    try:
        async with running(settings) as worker:
            await worker.store.put_documents([tracos_doc(1)])
            await wait_for(exported(worker, 1), "the first export")
            await invalidate(client, settings)
            await wait_for(lambda: "closed the change stream" in caplog.text, "the warning")
            await worker.store.put_documents([tracos_doc(2)])
            await wait_for(exported(worker, 2), "an export after the stream was invalidated")
            await wait_for(lambda: worker.store.mode == "MongoDB change stream", "stream again")
        coll = client[settings.mongo_database][settings.mongo_collection]
        assert (await coll.index_information())["number_1"]["unique"] is True
    finally:
        await client.drop_database(settings.mongo_database)
        await client.close()
    assert (settings.outbound_dir / "2.json").exists()


@pytest.mark.usefixtures("real_backoff")
async def test_a_step_down_delays_writes_and_loses_nothing(
    tmp_path: Path, own_server: MongoServer, caplog: pytest.LogCaptureFixture
) -> None:
    """replSetStepDown mid-burst: writes wait for a primary, are retried, nothing is lost."""
    caplog.set_level(logging.WARNING)
    settings = settings_on(tmp_path, own_server.uri)
    client: AsyncMongoClient[Any] = AsyncMongoClient(own_server.uri)
    try:
        async with running(settings) as worker:
            for number in range(20):
                drop(settings.inbound_dir, f"{number}.json", erp_file(number))
            await wait_for(lambda: len(names(settings.archive_dir)) == 20, "first files archived")
            await client.admin.command("replSetStepDown", 3, force=True)
            for number in range(20, 60):
                drop(settings.inbound_dir, f"{number}.json", erp_file(number))
            await wait_for(lambda: not worker.stats.store.connected, "the step-down noticed")
            assert "not primary" in (worker.stats.store.error or "")
            await wait_for(lambda: len(names(settings.archive_dir)) == 60, "all archived", 40)
    finally:
        await client.close()
    assert "unreachable" not in caplog.text
    assert sorted(d["number"] for d in await stored_docs(settings)) == list(range(60))
    assert names(settings.failed_dir) == []


def _health(settings: Settings) -> tuple[int, str]:
    result = cli(settings, "health", check=False)
    return result.returncode, result.stdout


def test_a_killed_server_is_waited_out_and_nothing_is_lost(
    tmp_path: Path, own_server: MongoServer
) -> None:
    """kill -9 of the server mid-burst, restarted seconds later on its data: work resumes."""
    settings = settings_on(tmp_path, own_server.uri)
    settings.inbound_dir.mkdir(parents=True)
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log:
        worker = start_worker(settings, log, {"STORE_RETRY_MAX_SECONDS": "0.5"})
        try:
            wait_until(lambda: serving(settings, worker), "the worker started")
            for number in range(30):
                drop(settings.inbound_dir, f"{number}.json", erp_file(number))
            wait_until(lambda: len(names(settings.archive_dir)) == 30, "first files archived")
            own_server.kill()
            for number in range(30, 80):
                drop(settings.inbound_dir, f"{number}.json", erp_file(number))
            wait_until(lambda: "cannot reach its store" in _health(settings)[1], "health says so")
            status = json.loads(cli(settings, "status", "--json").stdout)
            assert status["store_reachable"] is False  # and the worker's last counts, dated
            assert status["counts_from"].startswith("worker ") and status["stored"] is not None
            wait_until(lambda: log_path.read_text().count("store unavailable") >= 3, "retries")
            assert len(names(settings.archive_dir)) < 80  # files waited while it was down
            own_server.start()
            wait_until(lambda: len(names(settings.archive_dir)) == 80, "all archived", 60)
            wait_until(lambda: _health(settings)[0] == 0, "healthy again")
            status = json.loads(cli(settings, "status", "--json").stdout)
            assert (status["store_reachable"], status["stored"]) == (True, 80)
        finally:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=20) == 0
    assert "store is reachable again" in log_path.read_text()
    numbers = anyio.run(stored_docs, settings)
    assert sorted(d["number"] for d in numbers) == list(range(80))
    assert names(settings.failed_dir) == []


def test_where_mongodb_tests_may_not_skip_a_missing_server_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``.ci/run`` sets WATCHER_TEST_REQUIRE_MONGO=1: no server is then a failure, not a skip."""
    monkeypatch.setenv("WATCHER_TEST_REQUIRE_MONGO", "1")
    with pytest.raises(pytest.fail.Exception, match="may not skip"):
        missing_server("no server here")
    assert "WATCHER_TEST_REQUIRE_MONGO=1 ./scripts/test" in (ROOT / ".ci" / "run").read_text()
