"""No file the product writes follows a link planted in its folders (docs/guarantees.md)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.helpers.builders import tracos_doc
from tests.helpers.conditions import wait_for
from tests.helpers.workers import running
from watcher import fs as files
from watcher.core.settings import Settings
from watcher.observe.heartbeat import read_worker_status, write_worker_status
from watcher.sync.stats import Snapshot, Stats


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
