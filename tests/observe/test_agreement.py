"""`watcher verify` finds each kind of disagreement between the store and the ERP's folders,
and `watcher conflicts` lists the orders both sides changed (docs/agreement.md)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.helpers.builders import NOW, T0, erp, order, tracos_doc
from tests.helpers.conditions import wait_for
from tests.helpers.mongo_facade import FacadeCollection
from tests.helpers.stores import make_settings
from tests.helpers.workers import cli, drop, opened_store, running
from watcher.core.settings import Settings
from watcher.core.tracos import read_tracos
from watcher.erp.formats.challenge import FORMAT as CHALLENGE
from watcher.observe.agreement import Finding, verify
from watcher.observe.status_report import gather_status
from watcher.store import WorkOrderStore
from watcher.store.mongo import MongoStore
from watcher.sync.stats import Count

pytestmark = pytest.mark.anyio
HOUR = timedelta(hours=1)


def erp_file(number: int, at: datetime, summary: str = "from the ERP") -> bytes:
    order = erp(orderNo=number, summary=summary, lastUpdateDate=at.isoformat())
    return json.dumps(order).encode()


async def planted(store: WorkOrderStore, root: Path) -> Settings:
    """Orders 1..4 synced with agreeing files, then one disagreement of each kind."""
    settings = make_settings(root)
    settings.outbound_dir.mkdir(parents=True)
    settings.archive_dir.mkdir(parents=True)
    await store.put_documents([tracos_doc(n, isSynced=True) for n in (1, 2, 3, 4)])
    for doc in await store.find():
        file = CHALLENGE.render(read_tracos(doc))
        (settings.outbound_dir / file.name).write_bytes(file.data)
    stored_at = T0 + HOUR  # tracos_doc's updatedAt
    (settings.outbound_dir / "2.json").write_bytes(erp_file(2, stored_at))  # other content
    (settings.outbound_dir / "3.json").write_bytes(erp_file(3, stored_at + HOUR))  # newer
    (settings.outbound_dir / "9.json").write_bytes(erp_file(9, stored_at))  # not stored
    (settings.archive_dir / "4.json").write_bytes(erp_file(4, stored_at + HOUR))
    (settings.archive_dir / "1.json").write_bytes(erp_file(1, stored_at - HOUR))  # older: fine
    await store.put_documents([tracos_doc(5, updatedAt=datetime.now(UTC))])  # unsynced, now
    await store.upsert([order(6, stored_at + HOUR)], NOW)  # the ERP's own version
    (settings.outbound_dir / "6.json").write_bytes(erp_file(6, stored_at))  # TracOS's, older
    return settings


async def findings(
    store: WorkOrderStore, settings: Settings, later: timedelta
) -> set[tuple[str, int | None, bool]]:
    found: list[Finding] = [
        finding
        async for finding in verify(
            store,
            CHALLENGE,
            outbound=settings.outbound_dir,
            archive=settings.archive_dir,
            now=datetime.now(UTC) + later,
            grace=timedelta(seconds=60),
        )
    ]
    return {(f.kind, f.number, f.counts) for f in found}


async def test_verify_finds_each_kind_of_disagreement(
    store: WorkOrderStore, tmp_path: Path
) -> None:
    """Another version in a file, another than the ERP's own stored version (to be
    withdrawn), a file newer than stored, a file with no order, an archived version newer
    than stored; an unsynced order only once it waited too long."""
    settings = await planted(store, tmp_path)
    expected = {
        ("file_differs", 2, True),
        ("file_superseded", 6, True),
        ("file_newer", 3, True),
        ("file_without_order", 9, True),
        ("archive_newer", 4, True),
    }
    assert await findings(store, settings, timedelta(0)) == expected | {("unsynced", 5, False)}
    later = await findings(store, settings, timedelta(minutes=5))
    assert later == expected | {("unsynced", 5, True)}


async def test_verify_is_quiet_when_everything_agrees(
    store: WorkOrderStore, tmp_path: Path
) -> None:
    """Synced orders whose files hold their versions, an order with no file: all agree."""
    settings = make_settings(tmp_path)
    settings.outbound_dir.mkdir(parents=True)
    await store.put_documents([tracos_doc(n, isSynced=True) for n in (1, 2)])
    [doc] = await store.find([1])
    file = CHALLENGE.render(read_tracos(doc))
    (settings.outbound_dir / file.name).write_bytes(file.data)
    assert await findings(store, settings, timedelta(hours=1)) == set()


@pytest.mark.system
def test_verify_command_says_what_differs_and_exits_1(any_settings: Settings) -> None:
    """Exit 0 when all agree, 1 with one line per disagreement; --json gives JSON lines."""
    settings = any_settings
    cli(settings, "seed", "--tracos", "3", "--erp", "0")
    cli(settings, "once")
    agree = cli(settings, "verify")
    assert agree.stdout.strip() == "the store and the ERP's folders agree"
    (settings.outbound_dir / "2.json").write_bytes(erp_file(2, T0 - HOUR))
    differs = cli(settings, "verify", check=False)
    assert differs.returncode == 1
    assert "outbound/2.json holds another version than stored order 2" in differs.stdout
    said = cli(settings, "verify", "--json", check=False).stdout
    lines = [json.loads(line) for line in said.splitlines()]
    assert lines[0]["kind"] == "file_differs" and lines[-1] == {"disagreements": 1}


def conflicts_in_status(settings: Settings) -> object:
    return gather_status(settings, None, None, datetime.now(UTC))["conflicts_since_start"]


async def test_a_conflict_is_journalled_counted_and_listed(settings: Settings) -> None:
    """TracOS changed order 7 since it was synced, the ERP sends a newer version: the
    ERP's wins, `watcher status` counts it, `watcher conflicts` shows both times and what
    differs."""
    tracos_at = T0 + HOUR
    async with opened_store(settings) as store:
        await store.put_documents([tracos_doc(7, title="TracOS's title", updatedAt=tracos_at)])
    async with running(settings) as worker:
        drop(settings.inbound_dir, "7.json", erp_file(7, tracos_at + HOUR, "ERP's title"))
        await wait_for(lambda: worker.stats.counters[Count.CONFLICTS] == 1, "conflict counted")
        await wait_for(lambda: conflicts_in_status(settings) == 1, "in status and /status")
    [entry] = json.loads(cli(settings, "conflicts", "--json").stdout)
    assert entry["number"] == 7 and entry["file"] == "7.json"
    assert entry["version"].startswith("2025-10-01T02:04:29.045")
    assert entry["tracos_version"].startswith("2025-10-01T01:04:29.045")
    assert entry["differs"] == [
        "status: 'completed' → 'in_progress'",
        'title: "TracOS\'s title" → "ERP\'s title"',
    ]
    text = cli(settings, "conflicts").stdout
    assert "order 7 from 7.json" in text and "the ERP's version won" in text


async def test_an_erp_version_made_before_tracos_s_export_is_a_conflict_too(
    any_settings: Settings,
) -> None:
    """TracOS's change went out first; then comes an ERP version made before that export
    (it could not have seen it), newer: a conflict as well, on both stores. The ERP's
    version wins, and the outbound file holding TracOS's older version is withdrawn."""
    settings = any_settings
    tracos_at = T0 + HOUR
    async with opened_store(settings) as store:
        await store.put_documents([tracos_doc(7, title="TracOS's title", updatedAt=tracos_at)])
    exported = settings.outbound_dir / "7.json"
    async with running(settings) as worker:
        await wait_for(lambda: worker.stats.counters[Count.EXPORTED] == 1, "exported, marked")
        assert exported.exists()
        drop(settings.inbound_dir, "7.json", erp_file(7, tracos_at + HOUR, "ERP's title"))
        await wait_for(lambda: worker.stats.counters[Count.CONFLICTS] == 1, "conflict counted")
        await wait_for(lambda: not exported.exists(), "TracOS's older file withdrawn")
    [entry] = json.loads(cli(settings, "conflicts", "--json").stdout)
    assert (entry["number"], entry["file"]) == (7, "7.json")
    assert entry["version"].startswith("2025-10-01T02:04:29.045")
    assert entry["tracos_version"].startswith("2025-10-01T01:04:29.045")
    assert 'title: "TracOS\'s title" → "ERP\'s title"' in entry["differs"]
    assert cli(settings, "verify").returncode == 0


async def test_a_version_that_is_no_date_is_journalled(settings: Settings) -> None:
    """A stored updatedAt that names no date loses to the ERP's version, and history says so."""
    async with opened_store(settings) as store:
        await store.put_documents([tracos_doc(8, updatedAt="soon", isSynced=True)])
    async with running(settings) as worker:
        drop(settings.inbound_dir, "8.json", erp_file(8, T0))
        await wait_for(lambda: worker.stats.counters[Count.VERSIONS_NOT_DATES] == 1, "counted")
    story = cli(settings, "history", "8").stdout
    assert "the stored updatedAt 'soon' names no date: the ERP's version wins" in story


async def test_verify_finds_a_number_stored_twice(tmp_path: Path) -> None:
    """A collection without its unique index (made by hand, or before the worker) holding
    order 5 twice: said once, as stored twice."""
    facade = FacadeCollection()  # never opened by a store: no unique index on it
    facade.raw.insert_many([tracos_doc(n, isSynced=True) for n in (4, 5, 5, 6)])
    settings = make_settings(tmp_path)
    found = await findings(MongoStore(facade), settings, timedelta(0))
    assert found == {("stored_twice", 5, True)}


@pytest.mark.parametrize(
    ("plant", "said"),
    [
        (lambda path: path.write_bytes(b"garbage"), "outbound/2.json is not one order: "),
        (lambda path: path.symlink_to("/etc/hostname"), "not a regular file (symbolic link)"),
    ],
    ids=["damaged", "link"],
)
def test_verify_names_an_outbound_file_that_is_not_one_order(
    settings: Settings, plant: Callable[[Path], object], said: str
) -> None:
    """A file the ERP could not use either is a disagreement, never skipped as agreeing."""
    cli(settings, "seed", "--tracos", "3", "--erp", "0")
    cli(settings, "once")
    target = settings.outbound_dir / "2.json"
    target.unlink()
    plant(target)
    found = cli(settings, "verify", check=False)
    assert found.returncode == 1
    assert said in found.stdout
