"""Inbound with real folders, the real watcher and the embedded store (docs/spec.md §3 Inbound)."""

from __future__ import annotations

import errno
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from tests.helpers.builders import erp
from tests.helpers.conditions import wait_for
from tests.helpers.stores import make_settings
from tests.helpers.workers import challenge_files, drop, names, reports, running
from watcher.app import Worker
from watcher.core.settings import Settings
from watcher.erp.folders import claims as folders
from watcher.erp.folders.source import FolderSource
from watcher.sync.pausing import pause, resume
from watcher.sync.stats import Count

pytestmark = [pytest.mark.anyio, pytest.mark.system]


async def stored_numbers(worker: Worker) -> list[int]:
    return [d["number"] for d in await worker.store.find()]


async def test_challenge_files_become_orders_and_are_archived(settings: Settings) -> None:
    """The ten challenge files → ten stored orders, ten archived files, nothing left."""
    files = challenge_files()
    async with running(settings) as worker:
        for name, data in files.items():
            drop(settings.inbound_dir, name, data)
        await wait_for(lambda: len(names(settings.archive_dir)) == 10, "ten archived files")
        assert await stored_numbers(worker) == list(range(1, 11))
        assert worker.stats.counters[Count.ORDERS_INSERTED] == 10
    assert names(settings.inbound_dir) == [] and names(settings.failed_dir) == []
    assert sorted(names(settings.archive_dir)) == sorted(files)


async def test_bom_and_upper_case_extension_are_stored(settings: Settings) -> None:
    """A UTF-8 byte-order mark and a .JSON name are fine."""
    async with running(settings) as worker:
        drop(
            settings.inbound_dir, "bom.json", b"\xef\xbb\xbf" + json.dumps(erp(orderNo=1)).encode()
        )
        drop(settings.inbound_dir, "UPPER.JSON", json.dumps(erp(orderNo=2)).encode())
        await wait_for(lambda: len(names(settings.archive_dir)) == 2, "both archived")
        assert await stored_numbers(worker) == [1, 2]


BAD_FILES = {
    "broken.json": (b'{"orderNo": 1,,}', "not valid JSON"),
    "empty.json": (b"", "empty file"),
    "latin1.json": (
        json.dumps(erp(orderNo=5, summary="X")).encode().replace(b"X", b"\xe9"),
        "not valid UTF-8",
    ),
    "scalar.json": (b"12", "expected a JSON object or array"),
    "nocreation.json": (
        json.dumps({k: v for k, v in erp(orderNo=6).items() if k != "creationDate"}).encode(),
        "missing required field `creationDate`",
    ),
}


async def test_bad_files_are_quarantined_with_a_reason(settings: Settings) -> None:
    """Each unusable file lands in failed/ with a report naming its problem; good ones pass."""
    async with running(settings) as worker:
        drop(settings.inbound_dir, "good.json", json.dumps(erp(orderNo=1)).encode())
        for name, (data, _) in BAD_FILES.items():
            drop(settings.inbound_dir, name, data)
        await wait_for(lambda: len(reports(settings)) == len(BAD_FILES), "all bad files reported")
        assert await stored_numbers(worker) == [1]
    found = reports(settings)
    for name, (_, reason) in BAD_FILES.items():
        assert reason in found[name]["reason"], name
        assert {"file", "reason", "path", "time"} <= found[name].keys()
    assert found["nocreation.json"]["path"] == "$.creationDate"
    assert sorted(names(settings.failed_dir, ".json")) == sorted(
        [*BAD_FILES, *(f"{n}.error.json" for n in BAD_FILES)]
    )
    assert names(settings.archive_dir) == ["good.json"]


async def test_mixed_batch_keeps_good_orders_and_reports_bad_ones(settings: Settings) -> None:
    """An array: good elements stored, file archived; bad elements quarantined by index."""
    batch = [erp(orderNo=1), erp(orderNo=True), erp(orderNo=3), {"orderNo": 4}]
    async with running(settings) as worker:
        drop(settings.inbound_dir, "batch.json", json.dumps(batch).encode())
        await wait_for(lambda: names(settings.archive_dir) == ["batch.json"], "batch archived")
        assert await stored_numbers(worker) == [1, 3]
    [report] = reports(settings).values()
    assert [(r["index"], r["path"]) for r in report["rejected"]] == [
        (1, "$[1].orderNo"),
        (3, "$[3].isCanceled"),
    ]
    rejected = json.loads((settings.failed_dir / "batch.rejected.json").read_text())
    assert rejected == [batch[1], batch[3]]


async def test_empty_array_is_archived_as_zero_orders(settings: Settings) -> None:
    """[] is a valid batch of nothing."""
    async with running(settings) as worker:
        drop(settings.inbound_dir, "nothing.json", b"[]")
        await wait_for(lambda: names(settings.archive_dir) == ["nothing.json"], "archived")
        assert await stored_numbers(worker) == []
        assert worker.stats.counters[Count.FILES_FAILED] == 0


async def test_file_written_in_chunks_is_stored_once_complete(settings: Settings) -> None:
    """A file written in three chunks over a second is judged only when complete."""
    data = json.dumps(erp(orderNo=42, summary="complete")).encode()
    path = settings.inbound_dir / "slow.json"
    async with running(settings) as worker:
        thirds = [
            data[: len(data) // 3],
            data[len(data) // 3 : 2 * len(data) // 3],
            data[2 * len(data) // 3 :],
        ]
        for index, chunk in enumerate(thirds):
            with path.open("ab") as handle:  # reopened per chunk, like a naive writer
                handle.write(chunk)
            if index < 2:
                await anyio.sleep(0.4)  # the writer's pace, not a wait for the worker
        await wait_for(lambda: names(settings.archive_dir) == ["slow.json"], "slow file archived")
        [doc] = await worker.store.find([42])
        assert doc["title"] == "complete"
    assert names(settings.failed_dir) == []


async def test_two_thousand_files_at_once(settings: Settings) -> None:
    """2,000 files dropped at once are all stored and archived."""
    staging = settings.inbound_dir.parent / "staging"
    staging.mkdir()
    for number in range(2000):
        (staging / f"{number}.json").write_bytes(json.dumps(erp(orderNo=number)).encode())
    async with running(settings) as worker:
        started = time.monotonic()
        for path in staging.iterdir():
            path.rename(settings.inbound_dir / path.name)
        await wait_for(lambda: len(names(settings.archive_dir)) == 2000, "2,000 archived")
        elapsed = time.monotonic() - started
        assert len(await worker.store.find()) == 2000
    print(f"2,000 files stored and archived in {elapsed:.2f} s")


def archived(settings: Settings, name: str) -> Callable[[], bool]:
    return lambda: name in names(settings.archive_dir)


async def test_the_watch_rests_through_a_burst_and_wakes_for_the_file_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A listing longer than a batch is drained without the watch (its events would all
    be hints of what the next listing shows); it watches again once the burst is drained,
    so a file dropped after it is taken at once, not at the next rescan (a minute here).
    A trickle never pauses it."""
    settings = make_settings(tmp_path, batch_size=10, rescan_seconds=60.0)
    watching, starts = 0, 0
    real_watch = FolderSource.watch

    async def watch(self: FolderSource, wake: Callable[[], None], stop: anyio.Event) -> None:
        nonlocal watching, starts
        watching, starts = watching + 1, starts + 1
        try:
            await real_watch(self, wake, stop)
        finally:
            watching -= 1

    monkeypatch.setattr(FolderSource, "watch", watch)
    staging = tmp_path / "staging"
    staging.mkdir()
    for number in range(1, 41):
        (staging / f"{number}.json").write_bytes(json.dumps(erp(orderNo=number)).encode())
    async with running(settings) as worker:
        await wait_for(lambda: watching == 1, "the watch to begin")
        for path in staging.iterdir():
            path.rename(settings.inbound_dir / path.name)
        await wait_for(lambda: len(names(settings.archive_dir)) == 40, "the burst archived")
        # the drain ends (and the watch wakes again) just after the last file is archived
        await wait_for(lambda: (starts, watching) == (2, 1), "rested for the burst, then back")
        drop(settings.inbound_dir, "41.json", json.dumps(erp(orderNo=41)).encode())
        await wait_for(lambda: "41.json" in names(settings.archive_dir), "the file after it")
        for number in range(42, 45):  # one at a time: never a burst
            drop(settings.inbound_dir, f"{number}.json", json.dumps(erp(orderNo=number)).encode())
            await wait_for(archived(settings, f"{number}.json"), f"{number}.json archived")
        assert (starts, watching) == (2, 1), "a trickle leaves the watch on"
        assert len(await worker.store.find()) == 44


async def test_a_backlog_held_by_an_operators_pause_or_unclaimable_is_not_listed_again_and_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More files than a batch wait while inbound is paused by an operator, or while none
    of them can be claimed: the worker looks at them once per wake-up, never in a loop
    (resting its watch and waking it again at once listed them hundreds of times a
    second)."""
    settings = make_settings(tmp_path, batch_size=10, rescan_seconds=60.0)
    listings = 0
    real_waiting = FolderSource.waiting

    async def waiting(self: FolderSource) -> list[str]:
        nonlocal listings
        listings += 1
        return await real_waiting(self)

    monkeypatch.setattr(FolderSource, "waiting", waiting)
    async with running(settings) as worker:
        pause(settings.state_dir, "inbound")
        await wait_for(lambda: worker.stats.pauses.holds("inbound"), "the pause noticed")
        for number in range(1, 41):
            drop(settings.inbound_dir, f"{number}.json", json.dumps(erp(orderNo=number)).encode())
        await wait_for(lambda: worker.stats.waiting_files == 40, "the backlog seen")
        before = listings
        await anyio.sleep(1.0)  # a window in which nothing new happens: count what it does
        assert listings - before <= 2, f"{listings - before} listings of an unchanged backlog"
        assert names(settings.archive_dir) == []
        monkeypatch.setattr(folders.ClaimDir, "claim", refuse_claim)  # the claim folder read-only
        resume(settings.state_dir, "inbound")
        await wait_for(lambda: not worker.stats.pauses.holds("inbound"), "the pause ended")
        drop(settings.inbound_dir, "41.json", json.dumps(erp(orderNo=41)).encode())  # a wake-up
        await wait_for(lambda: listings - before >= 3, "the backlog tried")
        before = listings
        await anyio.sleep(1.0)
        assert listings - before <= 2, f"{listings - before} listings of an unclaimable backlog"
        assert len(names(settings.inbound_dir)) == 41


def refuse_claim(self: folders.ClaimDir, source: str) -> str | None:
    raise OSError(errno.EROFS, os.strerror(errno.EROFS), source)


async def test_claimed_file_from_a_crash_is_processed_at_start(settings: Settings) -> None:
    """A file left in a dead worker's claim folder is resumed at the next start."""
    dead = settings.inbound_dir / folders.CLAIMED_DIR / "1234-deadbeef"
    dead.mkdir(parents=True)
    (dead / folders.LOCK_FILE).touch()  # nobody holds the lock: its worker is gone
    (dead / "7.json").write_bytes(json.dumps(erp(orderNo=7)).encode())
    async with running(settings) as worker:
        await wait_for(lambda: names(settings.archive_dir) == ["7.json"], "resumed file archived")
        assert await stored_numbers(worker) == [7]
    assert not dead.exists()


async def test_file_archived_before_the_crash_is_not_processed_twice(settings: Settings) -> None:
    """Crash between linking into archive and unlinking the claim: only the claim link goes."""
    dead = settings.inbound_dir / folders.CLAIMED_DIR / "99-cafe"
    dead.mkdir(parents=True)
    settings.archive_dir.mkdir(parents=True)
    (dead / folders.LOCK_FILE).touch()  # a worker takes its lock before it claims a file
    (dead / "8.json").write_bytes(b"{}")
    os.link(dead / "8.json", settings.archive_dir / "8.json")
    async with running(settings):
        await wait_for(lambda: not dead.exists(), "dead claim folder cleared")
    assert names(settings.archive_dir) == ["8.json"] and names(settings.failed_dir) == []


async def test_temporary_and_hidden_files_are_left_alone(settings: Settings) -> None:
    """*.tmp, *.part, *.swp, *~ and hidden files stay where they are."""
    ignored = ["a.json.tmp", "b.json.part", ".c.json", "d.json~", "e.swp", "notes.txt"]
    async with running(settings):
        for name in ignored:
            drop(settings.inbound_dir, name, b"{}")
        drop(settings.inbound_dir, "real.json", json.dumps(erp()).encode())
        await wait_for(lambda: names(settings.archive_dir) == ["real.json"], "real file archived")
    assert names(settings.inbound_dir) == sorted(ignored)


async def test_redropped_file_is_unchanged_and_archived_under_a_new_name(
    settings: Settings,
) -> None:
    """The same file twice: the second is counted unchanged, archived beside the first."""
    data = json.dumps(erp(orderNo=3)).encode()
    async with running(settings) as worker:
        drop(settings.inbound_dir, "3.json", data)
        await wait_for(lambda: len(names(settings.archive_dir)) == 1, "first archived")
        drop(settings.inbound_dir, "3.json", data)
        await wait_for(lambda: len(names(settings.archive_dir)) == 2, "second archived")
        assert worker.stats.counters[Count.ORDERS_UNCHANGED] == 1
    archived = names(settings.archive_dir)
    assert "3.json" in archived and all(
        (settings.archive_dir / n).read_bytes() == data for n in archived
    )


async def test_restart_keeps_state(settings: Settings, tmp_path: Path) -> None:
    """After a restart, stored orders remain and an old file is stale."""
    async with running(settings):
        drop(settings.inbound_dir, "1.json", json.dumps(erp(orderNo=1, summary="new")).encode())
        await wait_for(lambda: len(names(settings.archive_dir)) == 1, "archived")
    older = erp(orderNo=1, summary="old", lastUpdateDate="2025-09-30T23:59:59Z")
    async with running(settings) as worker:
        drop(settings.inbound_dir, "old.json", json.dumps(older).encode())
        await wait_for(lambda: worker.stats.counters[Count.ORDERS_STALE] == 1, "stale counted")
        [doc] = await worker.store.find([1])
        assert doc["title"] == "new"
