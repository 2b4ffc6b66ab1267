"""Outbound on the embedded store: change feed, durable export, conditional mark
(docs/spec.md §3)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from tests.helpers.builders import erp, tracos_doc
from tests.helpers.conditions import wait_for
from tests.helpers.stores import all_unsynced
from tests.helpers.workers import cli, drop, names, running
from watcher import fs as files
from watcher.app import Worker, build_worker
from watcher.core.settings import Settings
from watcher.erp.folders.sink import FolderSink
from watcher.erp.port import OutboundFile
from watcher.store import JournalEvent, StoredDocument, SyncMark
from watcher.store.sqlite import SqliteStore
from watcher.sync.batches import OutboundDone
from watcher.sync.stats import Count

pytestmark = [pytest.mark.anyio, pytest.mark.system]


def exported(worker: Worker, count: int) -> Callable[[], bool]:
    return lambda: worker.stats.counters[Count.EXPORTED] == count


async def synced_count(worker: Worker) -> int:
    return sum(1 for d in await worker.store.find() if d.get("isSynced") is True)


def parse(text: object) -> datetime:
    return datetime.fromisoformat(str(text))


def outbound_file(settings: Settings, number: int) -> dict[str, object]:
    data: dict[str, object] = json.loads((settings.outbound_dir / f"{number}.json").read_text())
    return data


async def test_seed_in_another_process_is_exported_and_marked(settings: Settings) -> None:
    """`watcher seed --erp 0` against a running worker → ten files, ten synced documents."""
    async with running(settings) as worker:
        await anyio.to_thread.run_sync(lambda: cli(settings, "seed", "--erp", "0"))
        await wait_for(lambda: len(names(settings.outbound_dir)) == 10, "ten outbound files")
        await wait_for(lambda: worker.stats.counters[Count.EXPORTED] == 10, "ten marks")
        assert await synced_count(worker) == 10
        docs = {d["number"]: d for d in await worker.store.find()}
    for number in range(1, 11):
        exported = outbound_file(settings, number)
        assert exported["summary"] == docs[number]["title"]
        assert parse(exported["lastUpdateDate"]) == parse(docs[number]["updatedAt"])
    again = await anyio.to_thread.run_sync(lambda: cli(settings, "once"))
    [line] = again.stderr.strip().splitlines()  # a quiet system: nothing goes out twice
    assert " once: nothing to do; " in line and line.endswith("; 0 exported, 0 unexportable")


async def test_document_changed_by_another_process_goes_out_again(settings: Settings) -> None:
    """A TracOS-side change made through another connection is exported again."""
    async with running(settings) as worker:
        await worker.store.put_documents([tracos_doc(1)])
        await wait_for(lambda: worker.stats.counters[Count.EXPORTED] == 1, "first export")
        other = SqliteStore(settings.sqlite_path)
        await other.open()
        await other.put_documents([tracos_doc(1, title="Changed by TracOS", status="on_hold")])
        await other.close()
        await wait_for(lambda: worker.stats.counters[Count.EXPORTED] == 2, "second export")
        assert outbound_file(settings, 1)["summary"] == "Changed by TracOS"
        assert outbound_file(settings, 1)["isOnHold"] is True


class ChangeBeforeMark(SqliteStore):
    """The real store, with a TracOS write slipped in between file write and mark (once)."""

    armed = True

    async def mark_synced(
        self, marks: Sequence[SyncMark], now: datetime, refused: dict[str, str] | None = None
    ) -> set[str]:
        if self.armed:
            self.armed = False
            await self.put_documents([tracos_doc(1, title="Changed in between")])
        return await super().mark_synced(marks, now, refused)


async def test_change_between_write_and_mark_is_not_marked(settings: Settings) -> None:
    """The stale export is not marked; the new version goes out and is marked."""
    store = ChangeBeforeMark(settings.sqlite_path)
    async with running(settings, store) as worker:
        await store.put_documents([tracos_doc(1, title="First")])
        await wait_for(lambda: worker.stats.counters[Count.EXPORTED] == 1, "new version exported")
        assert worker.stats.counters[Count.CHANGED_DURING_EXPORT] == 1
        [doc] = await store.find([1])
        assert doc["isSynced"] is True and doc["title"] == "Changed in between"
    assert outbound_file(settings, 1)["summary"] == "Changed in between"


async def test_inbound_orders_are_not_echoed(settings: Settings) -> None:
    """Orders that came from the ERP are stored synced and never written back."""
    async with running(settings) as worker:
        drop(settings.inbound_dir, "5.json", json.dumps(erp(orderNo=5)).encode())
        await wait_for(lambda: names(settings.archive_dir) == ["5.json"], "inbound archived")
        await worker.store.put_documents([tracos_doc(6)])
        await wait_for(
            lambda: worker.stats.counters[Count.EXPORTED] == 1, "the TracOS order exported"
        )
    assert names(settings.outbound_dir) == ["6.json"]


class CountingSqlite(SqliteStore):
    """The real store, counting the change feed's queries."""

    queries = 0

    def _unsynced_after(self, seen: int, limit: int) -> tuple[list[StoredDocument], int]:
        self.queries += 1
        return super()._unsynced_after(seen, limit)


async def test_unexportable_document_is_reported_once(settings: Settings) -> None:
    """An unknown status is reported once, listed, not retried; a fix exports it."""
    async with running(settings) as worker:
        await worker.store.put_documents([tracos_doc(1, status="archived")])
        await wait_for(lambda: worker.stats.counters[Count.UNEXPORTABLE] == 1, "reported")
        for number in range(2, 5):  # the feed keeps moving past it...
            await worker.store.put_documents([tracos_doc(number)])
            await wait_for(exported(worker, number - 1), f"export {number}")
        assert worker.stats.counters[Count.UNEXPORTABLE] == 1  # ...without trying it again
        [entry] = worker.stats.unexportable.values()
        assert entry.reason == "unknown status 'archived'" and entry.subject == "order 1"
        await worker.store.put_documents([tracos_doc(1, status="completed")])
        await wait_for((settings.outbound_dir / "1.json").exists, "fixed order exported")
        await wait_for(lambda: not worker.stats.unexportable, "entry cleared")


async def test_unexportable_document_does_not_spin(settings: Settings) -> None:
    """While only an unexportable document is pending, the feed does not re-query in a loop."""
    store = CountingSqlite(settings.sqlite_path)
    async with running(settings, store) as worker:
        await store.put_documents([tracos_doc(1, status="archived")])
        await wait_for(lambda: worker.stats.counters[Count.UNEXPORTABLE] == 1, "reported")
        before = store.queries
        with anyio.move_on_after(1.0):
            await anyio.Event().wait()  # let the worker idle with the bad document pending
        assert store.queries - before <= 2  # a spinning feed would query hundreds of times
        assert worker.stats.counters[Count.UNEXPORTABLE] == 1


class SimulatedCrash(BaseException):
    """Stands for the process dying: nothing after it runs."""


class CrashBeforeMark(SqliteStore):
    """The process 'dies' after the files are durable and before the mark."""

    async def mark_synced(
        self, marks: Sequence[SyncMark], now: datetime, refused: dict[str, str] | None = None
    ) -> set[str]:
        raise SimulatedCrash


async def test_crash_between_write_and_mark_rewrites_identically(settings: Settings) -> None:
    """After a crash before the mark, a restart rewrites the same file and marks the document."""
    crashing = CrashBeforeMark(settings.sqlite_path)
    with pytest.RaisesGroup(SimulatedCrash, flatten_subgroups=True):
        async with running(settings, crashing):
            await crashing.put_documents([tracos_doc(3)])
            await wait_for(lambda: False, "the crash")
    first = (settings.outbound_dir / "3.json").read_bytes()
    store = SqliteStore(settings.sqlite_path)
    await store.open()
    assert len(await all_unsynced(store)) == 1  # never marked without the mark
    await store.close()
    async with running(settings) as worker:
        await wait_for(lambda: worker.stats.counters[Count.EXPORTED] == 1, "re-export")
        [doc] = await worker.store.find([3])
        assert doc["isSynced"] is True
    assert (settings.outbound_dir / "3.json").read_bytes() == first
    assert names(settings.outbound_dir) == ["3.json"]  # no temp file left behind


async def test_latency_from_change_to_file(settings: Settings) -> None:
    """An in-process TracOS write reaches the outbound folder quickly (figure printed)."""
    async with running(settings) as worker:
        for number in range(1, 21):
            await worker.store.put_documents([tracos_doc(number)])
            await wait_for(exported(worker, number), f"export {number}")
        samples = sorted(worker.stats.latency_out)
    print(
        f"change → file durable: p50 {samples[len(samples) // 2] * 1000:.1f} ms over {len(samples)}"
    )
    assert len(samples) == 20


async def test_two_versions_in_one_batch_never_leave_the_older_on_disk(
    settings: Settings,
) -> None:
    """A batch holding v1 after v2 of one order: never 'synced' with v1's file on disk."""
    store = SqliteStore(settings.sqlite_path)
    await store.open()
    await store.put_documents([tracos_doc(1, title="v1")])
    [v1] = await all_unsynced(store)
    await store.put_documents([tracos_doc(1, title="v2")])
    [v2] = await all_unsynced(store)
    settings.outbound_dir.mkdir(parents=True)
    one_thread = msgspec.structs.replace(settings, outbound_concurrency=1)
    outbound = build_worker(one_thread, store).outbound
    await outbound.export([v2, v1])
    [doc] = await store.find([1])
    if doc.get("isSynced"):
        assert outbound_file(settings, 1)["summary"] == doc["title"]
    await store.close()


async def test_a_failed_sync_renames_and_marks_nothing(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch's one sync fails (a write-back error): no file takes its name, none is
    marked, no temp file stays; once the sync succeeds, all go out."""
    real_sync = files.make_durable
    failing = True

    def sync(folder_fd: int) -> None:
        if failing:
            raise OSError(errno.EIO, "Input/output error")
        real_sync(folder_fd)

    monkeypatch.setattr(files, "make_durable", sync)
    store = SqliteStore(settings.sqlite_path)
    await store.open()
    await store.put_documents([tracos_doc(1), tracos_doc(2)])
    outbound = build_worker(settings, store).outbound
    await outbound.export(await all_unsynced(store))
    assert len(await all_unsynced(store)) == 2
    assert list(settings.outbound_dir.iterdir()) == []  # the ERP's folder: no lock file
    failing = False
    await outbound.export(await all_unsynced(store))
    assert await all_unsynced(store) == []
    assert names(settings.outbound_dir) == ["1.json", "2.json"]
    await store.close()


async def test_without_syncfs_each_file_is_fsynced_and_exported(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the system has no syncfs, each staged file is fsynced instead; export works."""
    monkeypatch.setattr(files, "_syncfs", None)
    files_synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            files_synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    async with running(settings) as worker:
        await worker.store.put_documents([tracos_doc(1), tracos_doc(2)])
        await wait_for(exported(worker, 2), "both exported")
    assert names(settings.outbound_dir) == ["1.json", "2.json"]
    assert len(files_synced) == 2


def test_a_staged_file_is_written_whole_through_writes_that_take_part(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Staging writes with plain ``os.write`` (no buffered writer per file); a write that
    takes only part of the data (a disk nearly full) is followed by the rest."""
    real_write = os.write
    calls: list[int] = []

    def part(fd: int, data: bytes) -> int:
        calls.append(len(data))
        return real_write(fd, bytes(data[:7]))

    data = msgspec.json.encode(erp(orderNo=12, summary="written seven bytes at a time"))
    with monkeypatch.context() as patched:
        patched.setattr(os, "write", part)
        staged = files.stage_file(tmp_path, "12.json", data)
    with open(staged, "rb") as written:
        assert written.read() == data
    assert len(calls) == -(-len(data) // 7)  # every write was ours, and took seven bytes


@pytest.mark.parametrize("has_syncfs", [True, False], ids=["syncfs", "fsync-each"])
async def test_staging_takes_threads_only_where_each_file_waits_on_the_disk(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, has_syncfs: bool
) -> None:
    """With syncfs staging never waits on the disk: one thread stages the batch (more would
    only contend for the GIL); with an fsync per file, OUTBOUND_CONCURRENCY threads do."""
    if has_syncfs and files.stages_with_fsync():
        pytest.skip("this system has no syncfs")
    if not has_syncfs:
        monkeypatch.setattr(files, "_syncfs", None)
    parts: list[range] = []
    real_stage = FolderSink._stage_files

    def stage(sink: FolderSink, outgoing: Sequence[OutboundFile], part: range, *rest: Any) -> None:
        parts.append(part)
        real_stage(sink, outgoing, part, *rest)

    monkeypatch.setattr(FolderSink, "_stage_files", stage)
    store = SqliteStore(settings.sqlite_path)
    await store.open()
    await store.put_documents([tracos_doc(n) for n in range(1, 9)])
    outbound = build_worker(settings, store).outbound
    await outbound.export(await all_unsynced(store))
    assert await all_unsynced(store) == []
    assert len(parts) == (1 if has_syncfs else settings.outbound_concurrency)
    assert sorted(i for part in parts for i in part) == list(range(8))
    await store.close()


async def test_an_unwritable_file_does_not_hold_up_the_others(settings: Settings) -> None:
    """1.json blocked by a directory: 2 and 3 go out and are marked; 1 follows once freed."""
    (settings.outbound_dir / "1.json").mkdir(parents=True)
    async with running(settings) as worker:
        await worker.store.put_documents([tracos_doc(n) for n in (1, 2, 3)])
        await wait_for(exported(worker, 2), "the two writable orders exported")
        await wait_for(
            lambda: worker.stats.counters[Count.EXPORT_ERRORS] >= 3, "several failed attempts"
        )
        # no failed attempt leaves its full-size temp file behind (a disk would fill up)
        assert list(settings.outbound_dir.glob(".*.tmp")) == []
        (settings.outbound_dir / "1.json").rmdir()
        await wait_for(exported(worker, 3), "the blocked order exported once freed")
    assert outbound_file(settings, 1)["orderNo"] == 1


def test_once_ends_even_when_a_file_cannot_be_written(settings: Settings) -> None:
    """`watcher once` marks what it wrote and exits; the blocked order stays unsynced."""
    (settings.outbound_dir / "2.json").mkdir(parents=True)
    cli(settings, "seed", "--tracos", "3", "--erp", "0")
    result = cli(settings, "once")
    assert "cannot write 2.json" in result.stderr
    shown = {d["number"]: d.get("isSynced") for d in json.loads(cli(settings, "show").stdout)}
    assert shown == {1: True, 2: None, 3: True}


async def test_outbound_folder_removed_while_running(settings: Settings) -> None:
    """The outbound folder vanishes: it is made again and exports go on."""
    async with running(settings) as worker:
        await worker.store.put_documents([tracos_doc(1)])
        await wait_for(exported(worker, 1), "first export")
        shutil.rmtree(settings.outbound_dir)
        await worker.store.put_documents([tracos_doc(2)])
        await wait_for(exported(worker, 2), "export after the folder vanished")
    assert names(settings.outbound_dir) == ["2.json"]


def test_once_clears_a_crashs_temp_files_but_not_one_being_written(settings: Settings) -> None:
    """Cron users never `run`: `once` removes temp files left long ago, and leaves a fresh
    one, which another worker may be writing right now."""
    settings.outbound_dir.mkdir(parents=True)
    old, fresh = (
        settings.outbound_dir / ".1.json.ab12.tmp",
        settings.outbound_dir / ".2.json.cd34.tmp",
    )
    for temp in (old, fresh):
        temp.write_bytes(b"{")
    hours_ago = time.time() - 7200
    os.utime(old, (hours_ago, hours_ago))
    cli(settings, "once")
    assert not old.exists()
    assert fresh.exists()


def test_a_crashed_writers_temp_file_goes_at_once_a_running_writers_stays(
    settings: Settings,
) -> None:
    """A temp file names its writer: one whose process on this host is gone is a crash's
    leftover, cleared at the next start whatever its age; a running writer's (or one of
    another host) is left until it is old."""
    settings.outbound_dir.mkdir(parents=True)
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    crashed = files.write_temp(settings.outbound_dir, "1.json", b"{")
    crashed_by_gone = crashed.replace(f"-{os.getpid()}-", f"-{ended.stdout.strip()}-")
    os.rename(crashed, crashed_by_gone)
    running = files.write_temp(settings.outbound_dir, "2.json", b"{")
    elsewhere = settings.outbound_dir / ".3.json.0badc0de-1-12345678.tmp"
    elsewhere.write_bytes(b"{")
    cli(settings, "once")
    assert not os.path.exists(crashed_by_gone)
    assert os.path.exists(running) and elsewhere.exists()


async def test_a_stale_read_of_an_export_made_here_is_nothing_another_workers_is_superseded(
    settings: Settings,
) -> None:
    """A second read of the version this worker just exported and marked (a sweep after a
    reconnect) says nothing; the same stale read by another worker is ``superseded``."""
    store = SqliteStore(settings.sqlite_path)
    await store.open()
    await store.put_documents([tracos_doc(1)])
    read = await all_unsynced(store)
    told: list[OutboundDone] = []
    here, other = build_worker(settings, store).outbound, build_worker(settings, store).outbound

    class Told:
        async def inbound(self, done: object) -> None: ...

        async def outbound(self, done: OutboundDone) -> None:
            told.append(done)

    for outbound in (here, other):
        outbound.books = Told()  # type: ignore[assignment]
    await here.export(read)
    await here.export(read)  # the same read again: this export
    await other.export(read)  # another worker's stale read
    events = [[e.event for e in done.exports] for done in told if done.exports]
    assert events == [[JournalEvent.EXPORTED], [JournalEvent.SUPERSEDED]]
    await store.close()
