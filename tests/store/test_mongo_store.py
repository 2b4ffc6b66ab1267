"""MongoStore specifics over the mongomock facade: change-stream pipeline, resume, fallback."""

from __future__ import annotations

import contextlib
import gc
import socket
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest
from pymongo.errors import (
    AutoReconnect,
    BulkWriteError,
    NetworkTimeout,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
)

from tests.helpers.builders import NOW, T0, order, tracos_doc
from tests.helpers.mongo_facade import FacadeCollection
from tests.helpers.stores import all_unsynced
from watcher.core.errors import ConfigError, StoreUnavailable
from watcher.core.tracos import Clash, Outcome
from watcher.store import StoredDocument, SyncMark
from watcher.store.mongo import MongoStore
from watcher.store.mongo_errors import known_error
from watcher.store.mongo_ops import mark_filter, version_of
from watcher.store.mongo_stream import CHANGE_PIPELINE

pytestmark = pytest.mark.anyio


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    async def __call__(self, docs: list[StoredDocument]) -> None:
        self.batches.append([d.doc["number"] for d in docs])

    def seen(self, number: int) -> bool:
        return any(number in batch for batch in self.batches)


async def opened(facade: FacadeCollection) -> tuple[FacadeCollection, MongoStore]:
    """A MongoStore over this facade, opened (unique index created)."""
    store = MongoStore(facade)
    await store.open()
    return facade, store


async def until(condition: Any) -> None:
    with anyio.fail_after(10):
        while not condition():
            await anyio.sleep(0.01)


def test_pipeline_matches_only_unsynced_inserts_updates_replaces() -> None:
    """$match: insert/update/replace whose full document is not synced."""
    match = CHANGE_PIPELINE[0]["$match"]
    assert match["operationType"] == {"$in": ["insert", "update", "replace"]}
    assert match["fullDocument.isSynced"] == {"$ne": True}


def test_mark_filter_pins_every_exported_field() -> None:
    """The conditional mark matches the id, unsynced, and each exported value (absent too)."""
    doc = tracos_doc(4) | {"_id": "abc"}
    query = mark_filter(version_of(doc))
    assert query["_id"] == "abc" and query["isSynced"] == {"$ne": True}
    assert query["title"] == {"$eq": doc["title"]}
    assert query["updatedAt"] == {"$eq": doc["updatedAt"]}
    assert query["deletedAt"] == {"$exists": False}


async def test_own_marks_do_not_trigger_a_second_export() -> None:
    """After a mark, the stream stays quiet: the pipeline filters synced documents."""
    facade, store = await opened(FacadeCollection())
    seen = Recorder()
    async with anyio.create_task_group() as tg:
        tg.start_soon(store.follow_unsynced, seen, 0.05, 1000)
        await until(lambda: facade.streams)
        await store.put_documents([tracos_doc(1)])
        await until(lambda: seen.seen(1))
        [doc] = await all_unsynced(store)
        await store.mark_synced([SyncMark(doc.key, doc.version)], NOW)
        await store.upsert([order(2)], NOW)  # an inbound write: synced, so no event
        await store.put_documents([tracos_doc(3)])
        await until(lambda: seen.seen(3))
        tg.cancel_scope.cancel()
    assert [n for batch in seen.batches for n in batch] == [1, 3]
    assert store.mode == "MongoDB change stream"


async def test_resume_error_sweeps_and_reopens() -> None:
    """Code 286 (history lost) → a fresh stream and a sweep that finds what was missed."""
    facade, store = await opened(FacadeCollection())
    seen = Recorder()
    async with anyio.create_task_group() as tg:
        tg.start_soon(store.follow_unsynced, seen, 0.05, 1000)
        await until(lambda: seen.batches == [[]])  # the first sweep found nothing
        facade.raw.insert_one(tracos_doc(7))  # a change no stream reported
        facade.break_streams(286)
        await until(lambda: seen.seen(7))
        tg.cancel_scope.cancel()
    assert facade.watch_calls == 2
    assert seen.batches == [[], [7]]


async def test_standalone_server_falls_back_to_polling() -> None:
    """40573 → one warning, mode 'MongoDB polling', and unsynced documents still arrive."""
    facade, store = await opened(FacadeCollection(standalone=True))
    seen = Recorder()
    async with anyio.create_task_group() as tg:
        tg.start_soon(store.follow_unsynced, seen, 0.05, 1000)
        await store.put_documents([tracos_doc(5)])
        await until(lambda: seen.seen(5))
        tg.cancel_scope.cancel()
    assert store.mode == "MongoDB polling"
    assert facade.watch_calls == 1


async def test_outage_is_reported_as_store_unavailable() -> None:
    """A dropped connection surfaces as our StoreUnavailable, not a driver error."""
    facade, store = await opened(FacadeCollection())
    facade.down = True
    with pytest.raises(StoreUnavailable, match="MongoDB unreachable: connection refused"):
        await store.upsert([order(1)], datetime.now(UTC))


class RefusingFacade(FacadeCollection):
    async def create_index(self, key: str | list[tuple[str, int]], unique: bool = False) -> str:
        raise OperationFailure("Authentication failed.", 18)


async def test_refused_credentials_are_a_configuration_error() -> None:
    """Code 18 at start-up is a setting to fix (one line), not an outage to wait out."""
    with pytest.raises(ConfigError, match=r"authentication failed: .*\(Authentication failed"):
        await MongoStore(RefusingFacade()).open()


class RacingFacade(FacadeCollection):
    """Another writer inserts an older version just before our first upsert lands."""

    raced = False

    async def bulk_write(self, ops: list[Any], ordered: bool = True) -> Any:
        if not self.raced:
            self.raced = True
            self.raw.insert_one(
                tracos_doc(1, title="older", updatedAt=datetime(2020, 1, 1, tzinfo=UTC))
            )
        return await super().bulk_write(ops, ordered)


async def test_upsert_beaten_by_a_concurrent_older_insert_is_run_again() -> None:
    """11000 from a concurrent insert of an older version: ours is written after all."""
    facade, store = await opened(RacingFacade())
    assert await store.upsert([order(1, title="newer")], NOW) == [Outcome.UPDATED]
    assert facade.raw.find_one({"number": 1})["title"] == "newer"


class LosingFacade(FacadeCollection):
    """The replies of the bulk writes numbered in ``lose`` (from 1) are lost: applied, then
    a connection error, as when the network or a failover cuts in at the worst moment."""

    lose: frozenset[int] = frozenset()
    calls = 0

    async def bulk_write(self, ops: list[Any], ordered: bool = True) -> Any:
        self.calls += 1
        if self.calls not in self.lose:
            return await super().bulk_write(ops, ordered)
        with contextlib.suppress(BulkWriteError):  # its answer (11000s and all) is lost
            await super().bulk_write(ops, ordered)
        raise AutoReconnect("connection closed")


async def test_a_retried_upsert_whose_reply_was_lost_keeps_its_outcomes() -> None:
    """New, newer and the same version, then an unsynced TracOS version met (a clash, then
    written only while still as read): each write applied and its reply lost; the retry
    of the batch says what the lost writes did. Another batch of the same orders is
    unchanged: the token is the batch's."""
    facade = LosingFacade()
    _, store = await opened(facade)
    await store.upsert([order(2, T0 - timedelta(hours=1)), order(3)], NOW)
    facade.raw.insert_one(tracos_doc(4, updatedAt=T0 - timedelta(hours=1), isSynced=False))
    batch = [order(1), order(2), order(3), order(4)]
    clashes: list[Clash] = []
    facade.calls, facade.lose = 0, frozenset({1, 3})  # the first round, then the one after it
    for _ in range(2):
        with pytest.raises(StoreUnavailable):
            await store.upsert(batch, NOW, clashes)
    outcomes = await store.upsert(batch, NOW, clashes)
    assert outcomes == [Outcome.INSERTED, Outcome.UPDATED, Outcome.UNCHANGED, Outcome.UPDATED]
    assert [c.number for c in clashes] == [4]
    assert await store.upsert(batch, NOW + timedelta(seconds=1)) == [Outcome.UNCHANGED] * 4
    assert sorted(d["number"] for d in facade.raw.find()) == [1, 2, 3, 4]


async def test_a_retried_mark_whose_reply_was_lost_counts_as_marked() -> None:
    """The conditional mark applied, its reply lost: the retry of those marks finds its own
    token and reports them marked (not "changed meanwhile"); other marks do not."""
    facade = LosingFacade()
    _, store = await opened(facade)
    facade.raw.insert_one(tracos_doc(5))
    (doc,) = await all_unsynced(store)
    marks = [SyncMark(doc.key, doc.version)]
    facade.calls, facade.lose = 0, frozenset({1})
    with pytest.raises(StoreUnavailable):
        await store.mark_synced(marks, NOW)
    assert await store.mark_synced(marks, NOW) == {doc.key}
    assert await store.mark_synced(marks, NOW) == set()  # another call: not its mark


async def test_documents_with_a_string_id_are_marked() -> None:
    """An _id that is not an ObjectId (even 24 hex digits) still gets its conditional mark."""
    facade, store = await opened(FacadeCollection())
    facade.raw.insert_one(tracos_doc(3) | {"_id": "0123456789abcdef01234567"})
    [doc] = await all_unsynced(store)
    assert await store.mark_synced([SyncMark(doc.key, doc.version)], NOW) == {doc.key}
    assert await all_unsynced(store) == []


@pytest.mark.parametrize(
    "error",
    [OperationFailure("interrupted at shutdown", 11600), AutoReconnect("connection reset")],
    ids=["shutdown", "reset"],
)
async def test_an_outage_in_the_stream_is_raised_for_the_shell_to_wait_out(
    error: Exception,
) -> None:
    """A stream broken by an outage is no refusal: no polling; the caller retries and sweeps."""
    facade, store = await opened(FacadeCollection())
    seen = Recorder()

    async def break_after_the_sweep(docs: list[StoredDocument]) -> None:
        await seen(docs)
        for stream in facade.streams:
            stream.send.send_nowait(error)

    with anyio.fail_after(10), pytest.raises(StoreUnavailable):
        await store.follow_unsynced(break_after_the_sweep, 0.05, 1000)
    assert store.mode == "MongoDB change stream"
    facade.raw.insert_one(tracos_doc(8))
    async with anyio.create_task_group() as tg:
        tg.start_soon(store.follow_unsynced, seen, 0.05, 1000)
        await until(lambda: seen.seen(8))  # the next call starts with a sweep
        tg.cancel_scope.cancel()


async def test_the_oldest_unsynced_has_an_index_to_walk() -> None:
    """Opening makes {isSynced, updatedAt}: the unsynced read in updatedAt order, no scan."""
    facade, _ = await opened(FacadeCollection())
    keys = [info["key"] for info in facade.raw.index_information().values()]
    assert [("isSynced", 1), ("updatedAt", 1)] in keys


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(
    "options",
    # (a plain or replica-set URI is named the same way, from pymongo's "[Errno 111]", but
    # pymongo 4.20 then leaks its monitor's refused socket to a later test's collection)
    ["?replicaSet=rs0&directConnection=true&"],
    ids=["direct-to-a-set-member"],
)
@pytest.mark.system  # (the slow tier: even this form's monitor leaks a socket, now and then)
async def test_a_refused_connection_is_named_so_whatever_the_uri_form(options: str) -> None:
    """Nothing listens: 'connection refused', in one line, never pymongo's 'this node
    belongs to a set named None' nor its topology description."""
    uri = f"mongodb://127.0.0.1:{_closed_port()}/{options}serverSelectionTimeoutMS=300"
    store = MongoStore.connect(uri, "watcher_tests", "refused")
    try:
        with pytest.raises(StoreUnavailable) as raised:
            await store.open()
    finally:
        await store.close()
        with warnings.catch_warnings():  # pymongo 4.20 leaves a refused socket to the GC:
            warnings.simplefilter("ignore", ResourceWarning)  # its leak, not this test's
            await anyio.sleep(0.2)  # its monitor's last attempt ends
            gc.collect()
    said = str(raised.value)
    assert said.startswith("MongoDB unreachable: connection refused"), said
    assert "set named" not in said and "Topology" not in said and "\n" not in said


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (
            ServerSelectionTimeoutError(
                "127.0.0.1:1: [Errno 111] Connect call failed ('127.0.0.1', 1) (configured"
                " timeouts: socketTimeoutMS: 20000.0ms), Timeout: 0.5s, Topology Description: <…>"
            ),
            "MongoDB unreachable: connection refused (127.0.0.1:1: [Errno 111] Connect call"
            " failed ('127.0.0.1', 1))",
        ),
        (
            ServerSelectionTimeoutError(
                "db:27017: SSL handshake failed: [SSL: CERTIFICATE_VERIFY_FAILED] certificate"
                " verify failed, Timeout: 30s, Topology Description: <…>"
            ),
            "MongoDB unreachable: TLS failure (db:27017: SSL handshake failed: [SSL:"
            " CERTIFICATE_VERIFY_FAILED] certificate verify failed)",
        ),
        (
            NetworkTimeout("db:27017: timed out (configured timeouts: socketTimeoutMS: 30000ms)"),
            "MongoDB did not answer in time: db:27017: timed out",
        ),
    ],
    ids=["refused", "tls", "timeout"],
)
def test_connection_failures_are_named_in_one_line(error: PyMongoError, said: str) -> None:
    """Refused, TLS and timeouts say so, without pymongo's topology description."""
    known = known_error(error)
    assert known is not None and str(known) == said
