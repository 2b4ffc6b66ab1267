"""No file the product writes follows a link planted in its folders (docs/guarantees.md)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from tests.helpers.builders import erp, tracos_doc
from tests.helpers.conditions import wait_for
from tests.helpers.workers import cli, drop, names, running
from watcher import fs as files
from watcher.core.settings import Settings
from watcher.erp.folders import claims
from watcher.observe.heartbeat import read_worker_status, write_worker_status
from watcher.sync.stats import Snapshot, Stats


def order_file(number: int) -> bytes:
    return msgspec.json.encode(erp(orderNo=number))


def _snapshot() -> Snapshot:
    return Stats(started=datetime.now(UTC)).snapshot(datetime.now(UTC))


def test_status_file_never_writes_through_a_link_at_its_old_temp_name(
    settings: Settings, tmp_path: Path
) -> None:
    """A symlink at ``state/.worker.json.<pid>.tmp`` (the pid is public) is left alone."""
    settings.state_dir.mkdir(parents=True)
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    (settings.state_dir / f".worker.json.{os.getpid()}.tmp").symlink_to(victim)
    write_worker_status(settings, _snapshot(), "embedded")
    assert victim.read_bytes() == b"precious"
    assert read_worker_status(settings) is not None


def test_temp_files_are_created_exclusively_and_never_through_a_link(tmp_path: Path) -> None:
    """Whatever name a temp file gets, an existing entry there is never opened."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    names = set()
    for _ in range(20):
        temp = files.write_temp(tmp_path, "x.json", b"data")
        names.add(os.path.basename(temp))
        os.unlink(temp)
    assert len(names) == 20  # unpredictable: a fresh random part every time
    assert victim.read_bytes() == b"precious"


@pytest.mark.anyio
async def test_outbound_and_status_writes_leave_planted_links_alone(
    settings: Settings, tmp_path: Path
) -> None:
    """Links planted at every name a running worker used to derive stay untouched."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    for folder in (settings.state_dir, settings.outbound_dir):
        folder.mkdir(parents=True, exist_ok=True)
    (settings.state_dir / f".worker.json.{os.getpid()}.tmp").symlink_to(victim)
    async with running(settings) as worker:
        await worker.store.put_documents([tracos_doc(1)])
        await wait_for((settings.outbound_dir / "1.json").exists, "exported")
        await worker.reporting.write_status()
    assert victim.read_bytes() == b"precious"


# --- the claim area is trusted no more ------------------------------------------


def outside_folder(tmp_path: Path) -> Path:
    """A folder outside the data folders, with what a home folder holds."""
    outside = tmp_path / "home"
    (outside / "projects").mkdir(parents=True)
    (outside / "projects" / "notes.json").write_bytes(b"{}")
    (outside / "report.json").write_bytes(b"{}")
    (outside / ".profile").write_bytes(b"precious")
    return outside


def contents(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.system
def test_a_linked_claim_area_stops_start_up_and_is_left_alone(
    settings: Settings, tmp_path: Path
) -> None:
    """``.processing`` planted as a link to an outside folder: one line, exit 2; nothing
    there is moved, deleted or claimed through, the link stays."""
    outside = outside_folder(tmp_path)
    before = contents(outside)
    settings.inbound_dir.mkdir(parents=True)
    root = settings.inbound_dir / claims.CLAIMED_DIR
    root.symlink_to(outside)
    for command in (["once"], ["run", "--no-console"]):
        result = cli(settings, *command, check=False)
        assert result.returncode == 2, result.stderr
        [line] = result.stderr.strip().splitlines()
        assert line == (
            f"watcher: configuration error: DATA_INBOUND_DIR ({settings.inbound_dir}):"
            f" {root} is a symbolic link, not the claim folder: move it away"
        )
    assert contents(outside) == before and (outside / ".profile").read_bytes() == b"precious"
    assert root.is_symlink() and names(settings.inbound_dir) == []


@pytest.mark.anyio
async def test_a_folder_without_our_marks_is_not_taken_for_a_dead_workers_claims(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """A folder in ``.processing`` without a claim folder's lock file: one line, and nothing
    in it is moved or deleted (a dead worker's claim folder always has its lock)."""
    planted = settings.inbound_dir / claims.CLAIMED_DIR / "1234-deadbeef"
    planted.mkdir(parents=True)
    (planted / "7.json").write_bytes(b"{}")
    (planted / ".profile").write_bytes(b"precious")
    async with running(settings):
        pass
    assert sorted(p.name for p in planted.iterdir()) == [".profile", "7.json"]
    assert names(settings.inbound_dir) == [] and names(settings.failed_dir) == []
    said = [r.getMessage() for r in caplog.records if "1234-deadbeef" in r.getMessage()]
    assert said == [f"{planted}: not a claim folder (no .lock file): left alone"]


@pytest.mark.anyio
async def test_a_link_swapped_in_for_the_claim_area_is_never_claimed_through(
    settings: Settings, tmp_path: Path
) -> None:
    """While the worker runs, ``.processing`` is moved away and a link to an outside folder
    put in its place: files are still claimed into the worker's own folder and archived,
    and nothing is made or moved outside."""
    outside = tmp_path / "outside"
    outside.mkdir()
    root = settings.inbound_dir / claims.CLAIMED_DIR
    async with running(settings):
        root.rename(settings.inbound_dir / "moved-away")
        root.symlink_to(outside)
        drop(settings.inbound_dir, "1.json", order_file(1))
        await wait_for(lambda: names(settings.archive_dir) == ["1.json"], "the file archived")
        assert contents(outside) == []  # checked before the worker tidies up at its stop
    assert contents(outside) == []


@pytest.mark.anyio
async def test_a_name_taken_in_the_claim_folder_is_claimed_beside_it(settings: Settings) -> None:
    """Something already holds a file's name in the worker's claim folder (the claim moves
    files in through the folder's descriptor, and looks for a free name the same way): the
    file is claimed under another name, stored, and archived under its own."""
    async with running(settings) as worker:
        (mine,) = (settings.inbound_dir / claims.CLAIMED_DIR).iterdir()
        (mine / "1.json").mkdir()  # not a file: never taken for one of ours
        drop(settings.inbound_dir, "1.json", order_file(1))
        await wait_for(lambda: names(settings.archive_dir) == ["1.json"], "the file archived")
        assert [d["number"] for d in await worker.store.find()] == [1]
        assert (mine / "1.json").is_dir()


@pytest.mark.system
@pytest.mark.parametrize("where", ["", "sub"])
def test_an_archive_or_failed_folder_leading_into_inbound_is_refused(
    settings: Settings, tmp_path: Path, where: str
) -> None:
    """The archive (or failed) folder a link to the inbound folder or into it: exit 2 and
    one line at start, before any file is taken (else the worker eats its own files)."""
    (settings.inbound_dir / "sub").mkdir(parents=True)
    drop(settings.inbound_dir, "1.json", order_file(1))
    for variable, folder in (("DATA_ARCHIVE_DIR", "archive"), ("DATA_FAILED_DIR", "failed")):
        alias = tmp_path / f"{folder}-alias"
        alias.symlink_to(settings.inbound_dir / where)
        result = cli(settings, "once", check=False, env={variable: str(alias)})
        assert result.returncode == 2, result.stderr
        [line] = result.stderr.strip().splitlines()
        inside = "inside " if where else ""
        assert line == (
            f"watcher: configuration error: {variable} ({alias}) (it leads to"
            f" {settings.inbound_dir / where}) is {inside}the inbound folder DATA_INBOUND_DIR"
            f" ({settings.inbound_dir}): give it a folder of its own"
        )
    assert names(settings.inbound_dir) == ["1.json"]
