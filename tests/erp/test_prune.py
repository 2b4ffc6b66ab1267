"""``watcher prune``: the operator's retention for archive/ and failed/ (real temp folders;
ages set with ``os.utime``)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.helpers.workers import cli, names
from watcher.core.errors import CommandFailed
from watcher.core.settings import Settings
from watcher.erp.folders.upkeep import REQUEUED_REPORTS, prune

DAY = 86400.0


def aged(folder: Path, name: str, days: float) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("{}")
    when = time.time() - days * DAY
    os.utime(path, (when, when))
    return path


@pytest.fixture
def folders(settings: Settings) -> Settings:
    """Old and young files in archive/ and failed/, reports beside the failed ones."""
    aged(settings.archive_dir, "old.json", 40)
    aged(settings.archive_dir, "young.json", 5)
    aged(settings.failed_dir, "old-bad.json", 40)
    aged(settings.failed_dir, "old-bad.json.error.json", 1)  # goes with its file
    aged(settings.failed_dir, "young-bad.json", 5)
    aged(settings.failed_dir, "young-bad.json.error.json", 40)  # stays with its file
    aged(settings.failed_dir / REQUEUED_REPORTS, "gone.json.error.json", 40)
    return settings


def test_prune_removes_old_files_and_their_reports(folders: Settings) -> None:
    """Older than DAYS goes, a report with its file; younger stays; the count is said."""
    pruned = prune(folders, time.time() - 30 * DAY, dry_run=False)
    assert pruned.count == 4 and pruned.errors == []
    assert names(folders.archive_dir) == ["young.json"]
    assert names(folders.failed_dir) == ["young-bad.json", "young-bad.json.error.json"]
    assert names(folders.failed_dir / REQUEUED_REPORTS) == []


def test_a_dry_run_removes_nothing(folders: Settings) -> None:
    """--dry-run lists what would go and leaves every file."""
    pruned = prune(folders, time.time() - 30 * DAY, dry_run=True)
    assert sorted(p.name for paths in pruned.removed.values() for p in paths) == [
        "gone.json.error.json", "old-bad.json", "old-bad.json.error.json", "old.json",
    ]  # fmt: skip
    assert len(names(folders.archive_dir)) == 2 and len(names(folders.failed_dir)) == 4


def test_prune_in_the_wrong_directory_says_so(settings: Settings) -> None:
    """No archive or failed folder: one line saying which variables point at them."""
    with pytest.raises(CommandFailed, match="DATA_ARCHIVE_DIR and DATA_FAILED_DIR"):
        prune(settings, time.time(), dry_run=False)
    assert not settings.archive_dir.exists()


@pytest.mark.system
def test_prune_command_says_how_many(folders: Settings) -> None:
    """The command: one line with the count per folder; negative days are refused."""
    dry = cli(folders, "prune", "--older-than", "30", "--dry-run").stdout.splitlines()
    assert f"would remove {folders.archive_dir / 'old.json'}" in dry
    assert dry[-1].startswith("would remove 4 files older than 30 days (1 from ")
    done = cli(folders, "prune", "--older-than", "30").stdout
    assert done.startswith(f"removed 4 files older than 30 days (1 from {folders.archive_dir}, 2")
    refused = cli(folders, "prune", "--older-than", "-1", check=False)
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        "watcher prune: error: argument --older-than: must be 0 or more days, not -1"
        " (see watcher prune --help)"
    ]
