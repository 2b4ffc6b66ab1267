"""How far behind: the oldest file waiting, the files in flight and the oldest unsynced
order, as the worker's source and ``watcher status`` measure them."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from tests.helpers.builders import T0, erp, tracos_doc
from tests.helpers.conditions import wait_for
from tests.helpers.workers import drop, running
from watcher.core.errors import StoreUnavailable
from watcher.core.settings import Settings
from watcher.core.tracos import Clash, OrderUpsert, Outcome
from watcher.erp.folders.layout import oldest_landed
from watcher.erp.folders.source import FolderSource
from watcher.erp.registry import load_format
from watcher.observe.status_report import StoreAnswer, gather_status, status_lines
from watcher.store.sqlite import SqliteStore

pytestmark = pytest.mark.anyio
MINUTE = timedelta(minutes=1)


def test_a_file_lands_when_it_arrives_not_when_it_was_written(settings: Settings) -> None:
    """A file moved in with a modification time of 2001 has waited since it came."""
    drop(settings.inbound_dir, "old.json", b"{}")
    os.utime(settings.inbound_dir / "old.json", (978307200, 978307200))
    (settings.inbound_dir / "ignored.tmp").write_bytes(b"{}")
    landed = oldest_landed(settings.inbound_dir)
    assert landed is not None and landed > 978307200
    assert landed == os.stat(settings.inbound_dir / "old.json").st_ctime


def test_no_candidate_waiting_has_no_age(settings: Settings) -> None:
    """Ignored names and folders do not wait."""
    (settings.inbound_dir / "sub.json").mkdir(parents=True)
    (settings.inbound_dir / ".hidden.json").write_bytes(b"{}")
    assert oldest_landed(settings.inbound_dir) is None


async def test_the_source_counts_its_files_in_flight(settings: Settings) -> None:
    """Claimed and not yet filed away: in flight; filed away: no longer."""
    source = FolderSource(settings, lambda subject, reason: None)
    await source.open()
    try:
        drop(settings.inbound_dir, "1.json", erp_bytes(1))
        drop(settings.inbound_dir, "2.json", erp_bytes(2))
        landed = os.stat(settings.inbound_dir / "1.json").st_ctime
        first = await source.backlog()
        assert (first.oldest_landed, first.in_flight) == (oldest_landed(settings.inbound_dir), 0)
        taken = await source.take(["1.json"], load_format("challenge").judge, lambda: False)
        second = await source.backlog()
        assert (second.oldest_landed, second.in_flight) == (landed, 1)  # claimed: waits on
        await source.file_away(taken, datetime.now(UTC))
        assert (await source.backlog()).in_flight == 0
    finally:
        await source.close()


async def test_a_file_claimed_and_not_filed_away_still_waits(settings: Settings) -> None:
    """Claimed but held (the store down, the disk full): the lag runs from when the file
    landed, not from the oldest file left in the inbound folder; filed away, it is gone."""
    source = FolderSource(settings, lambda subject, reason: None)
    await source.open()
    try:
        drop(settings.inbound_dir, "1.json", erp_bytes(1))
        landed = os.stat(settings.inbound_dir / "1.json").st_ctime
        taken = await source.take(["1.json"], load_format("challenge").judge, lambda: False)
        held = await source.backlog()
        assert (held.oldest_landed, held.in_flight) == (landed, 1)
        drop(settings.inbound_dir, "2.json", erp_bytes(2))  # a newer one: the claimed is older
        assert (await source.backlog()).oldest_landed == landed
        await source.file_away(taken, datetime.now(UTC))
        after = await source.backlog()
        assert after.oldest_landed == os.stat(settings.inbound_dir / "2.json").st_ctime
    finally:
        await source.close()


async def test_status_counts_a_claimed_file_as_waiting(settings: Settings) -> None:
    """``watcher status`` (another process) sees a file held claimed: waiting since it was
    claimed at least, not "none" with nothing left in the inbound folder."""
    source = FolderSource(settings, lambda subject, reason: None)
    await source.open()
    try:
        drop(settings.inbound_dir, "1.json", erp_bytes(1))
        await source.take(["1.json"], load_format("challenge").judge, lambda: False)
        claimed = next(settings.inbound_dir.glob(".processing/*/1.json")).stat().st_ctime
        now = datetime.fromtimestamp(claimed, UTC) + MINUTE
        report = gather_status(settings, StoreAnswer(0, 0, 0), None, now)
        assert (report["oldest_file_waiting_seconds"], report["files_in_flight"]) == (60.0, 1)
    finally:
        await source.close()


class DownStore(SqliteStore):
    """The embedded store with its writes failing as an outage while ``down``."""

    down = False

    async def upsert(
        self, orders: Sequence[OrderUpsert], now: datetime, clashes: list[Clash] | None = None
    ) -> list[Outcome]:
        if self.down:
            raise StoreUnavailable("embedded store: disk I/O error (injected)")
        return await super().upsert(orders, now, clashes)


@pytest.mark.system
@pytest.mark.usefixtures("real_backoff")
async def test_the_lag_grows_while_an_outage_holds_claimed_files(settings: Settings) -> None:
    """A batch claimed and held by a store outage: the oldest file's age is not 0 (nothing
    left in the inbound folder) but grows for as long as the outage lasts."""
    store = DownStore(settings.sqlite_path)
    store.down = True
    async with running(settings, store) as worker:
        drop(settings.inbound_dir, "1.json", erp_bytes(1))
        await wait_for(lambda: worker.stats.in_flight == 1, "the file claimed")
        await wait_for(lambda: worker.stats.waiting_age is not None, "the held file's age")
        first = worker.stats.waiting_age or 0.0
        await wait_for(lambda: (worker.stats.waiting_age or 0.0) > first, "the age growing")
        store.down = False
        await wait_for(lambda: worker.stats.waiting_age is None, "no lag once it is filed")


def erp_bytes(number: int) -> bytes:
    return json.dumps(erp(orderNo=number)).encode()


def test_status_gives_each_age_and_what_it_is_measured_from(settings: Settings) -> None:
    """The oldest unsynced order's age from its updatedAt, the oldest file's from when it
    landed; nothing behind reads "none" for people and null for scripts."""
    answer = StoreAnswer(5, 2, 0, oldest_unsynced=T0)
    now = T0 + 90 * MINUTE
    report = gather_status(settings, answer, None, now)
    assert report["oldest_unsynced_seconds"] == 5400.0
    assert report["oldest_file_waiting_seconds"] is None
    drop(settings.inbound_dir, "late.json", b"{}")
    landed = datetime.fromtimestamp(os.stat(settings.inbound_dir / "late.json").st_ctime, UTC)
    waiting = gather_status(settings, StoreAnswer(5, 0, 0), None, landed + MINUTE)
    assert waiting["oldest_file_waiting_seconds"] == 60.0
    lines = status_lines(waiting)
    assert "oldest file waiting seconds: 60.0" in lines
    assert "    oldest unsynced seconds: none" in lines
    assert "                store error: none" in lines  # it answered: no error, not "unknown"
    down = status_lines(gather_status(settings, None, "no answer", landed + MINUTE))
    assert "                store error: no answer" in down
    assert "                     stored: unknown" in down


@pytest.mark.system
async def test_a_running_worker_knows_how_far_behind_it_is(any_settings: Settings) -> None:
    """An order that cannot go out stays the oldest unsynced; a file still being written
    waits: the worker's snapshot has both ages, on either store."""
    settings = msgspec.structs.replace(any_settings, settle_seconds=60.0)
    drop(settings.inbound_dir, "half.json", b'{"orderNo": ')
    landed = os.stat(settings.inbound_dir / "half.json").st_ctime
    async with running(settings) as worker:
        await worker.store.put_documents([tracos_doc(1, status="weird", updatedAt=T0)])
        await wait_for(lambda: worker.stats.unsynced_age is not None, "the oldest unsynced age")
        since = (worker.stats.counts_at or T0) - T0
        assert worker.stats.unsynced_age == since.total_seconds()
        await wait_for(lambda: worker.stats.waiting_age is not None, "the oldest file's age")
        assert 0 <= (worker.stats.waiting_age or 0) <= time.time() - landed
        assert worker.stats.in_flight == 0
