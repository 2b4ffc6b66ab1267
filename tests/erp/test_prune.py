"""``watcher prune``: the operator's retention for archive/ and failed/, by arrival (real
temp folders; a file's arrival is its change time, which no one can set: "old" files are
made before a boundary the clock has passed, "young" ones after it)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.helpers.conditions import wait_until
from tests.helpers.workers import cli, names
from watcher.core.errors import CommandFailed
from watcher.core.settings import Settings
from watcher.erp.folders.failed import read_failed
from watcher.erp.folders.upkeep import REQUEUED_REPORTS, prune

DAY = 86400.0


def made(folder: Path, name: str, modified_days_ago: float = 0) -> Path:
    """A file arriving now; its modification time as old as asked (``cp -p`` does that)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("{}")
    when = time.time() - modified_days_ago * DAY
    os.utime(path, (when, when))
    return path


def boundary(after: Path) -> float:
    """A time after ``after`` arrived and before anything made from now on arrives."""
    before = after.stat().st_ctime
    probe = after.with_name(".probe")

    def later() -> bool:  # change times are coarse: wait until a new one is really later
        probe.write_text("")
        return probe.stat().st_ctime > before

    wait_until(later, "the change time to move on")
    cutoff = (before + probe.stat().st_ctime) / 2
    probe.unlink()
    return cutoff


@pytest.fixture
def folders(settings: Settings) -> tuple[Settings, float]:
    """Files that arrived before the cutoff returned and after it (modification times
    that say otherwise), reports beside the failed ones."""
    made(settings.archive_dir, "old.json")
    made(settings.failed_dir, "old-bad.json")
    made(settings.failed_dir, "young-bad.json.error.json")  # stays with its file
    last = made(settings.failed_dir / REQUEUED_REPORTS, "gone.json.error.json")
    cutoff = boundary(last)
    made(settings.archive_dir, "young.json", modified_days_ago=40)  # copied in with cp -p
    made(settings.failed_dir, "old-bad.json.error.json")  # goes with its file
    made(settings.failed_dir, "young-bad.json", modified_days_ago=40)
    return settings, cutoff


def test_prune_removes_old_files_and_their_reports(folders: tuple[Settings, float]) -> None:
    """Arrived before the cutoff goes, a report with its file; later stays whatever its
    modification time; the count is said."""
    settings, cutoff = folders
    pruned = prune(settings, cutoff, dry_run=False)
    assert pruned.count == 4 and pruned.errors == []
    assert names(settings.archive_dir) == ["young.json"]
    assert names(settings.failed_dir) == ["young-bad.json", "young-bad.json.error.json"]
    assert names(settings.failed_dir / REQUEUED_REPORTS) == []


def test_a_dry_run_removes_nothing(folders: tuple[Settings, float]) -> None:
    """--dry-run lists what would go and leaves every file."""
    settings, cutoff = folders
    pruned = prune(settings, cutoff, dry_run=True)
    assert sorted(p.name for paths in pruned.removed.values() for p in paths) == [
        "gone.json.error.json", "old-bad.json", "old-bad.json.error.json", "old.json",
    ]  # fmt: skip
    assert len(names(settings.archive_dir)) == 2 and len(names(settings.failed_dir)) == 4


def test_a_file_copied_in_with_an_old_modification_time_is_not_old(settings: Settings) -> None:
    """``cp -p`` of a file written 40 days ago, into archive/ now: a 30-day prune keeps it."""
    made(settings.archive_dir, "copied.json", modified_days_ago=40)
    made(settings.failed_dir, "copied-bad.json", modified_days_ago=40)
    made(settings.failed_dir, "copied-bad.json.error.json", modified_days_ago=40)
    pruned = prune(settings, time.time() - 30 * DAY, dry_run=False)
    assert pruned.count == 0
    assert names(settings.archive_dir) == ["copied.json"]
    assert len(names(settings.failed_dir)) == 2


def test_a_prune_cut_short_never_leaves_a_report_without_its_file(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after its first removal: ``watcher failed`` shows no report whose file is
    gone; run again, the prune finishes the work."""
    made(settings.failed_dir, "bad.json")
    made(settings.failed_dir, "bad.json.error.json")
    real_unlink = Path.unlink
    removals = 0

    def unlink(path: Path, missing_ok: bool = False) -> None:
        nonlocal removals
        removals += 1
        if removals > 1:
            raise KeyboardInterrupt  # the process ends here, as under SIGKILL
        real_unlink(path, missing_ok)

    monkeypatch.setattr(Path, "unlink", unlink)
    with pytest.raises(KeyboardInterrupt):
        prune(settings, time.time() + 60, dry_run=False)
    monkeypatch.undo()
    left = read_failed(settings.failed_dir)
    assert [e.file for e in left] == ["bad.json"] and "only the report" not in str(left)
    prune(settings, time.time() + 60, dry_run=False)
    assert names(settings.failed_dir) == []


def test_prune_in_the_wrong_directory_says_so(settings: Settings) -> None:
    """No archive or failed folder: one line saying which variables point at them."""
    with pytest.raises(CommandFailed, match="DATA_ARCHIVE_DIR and DATA_FAILED_DIR"):
        prune(settings, time.time(), dry_run=False)
    assert not settings.archive_dir.exists()


@pytest.mark.system
def test_prune_command_says_how_many(folders: tuple[Settings, float]) -> None:
    """The command: one line with the count per folder; negative days are refused."""
    settings, _ = folders
    dry = cli(settings, "prune", "--older-than", "0", "--dry-run").stdout.splitlines()
    assert f"would remove {settings.archive_dir / 'old.json'}" in dry
    assert dry[-1].startswith("would remove 7 files older than 0 days (2 from ")
    done = cli(settings, "prune", "--older-than", "30").stdout
    assert done.startswith(f"removed 0 files older than 30 days (0 from {settings.archive_dir}")
    done = cli(settings, "prune", "--older-than", "0").stdout
    assert done.startswith(f"removed 7 files older than 0 days (2 from {settings.archive_dir}, 4")
    refused = cli(settings, "prune", "--older-than", "-1", check=False)
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        "watcher prune: error: argument --older-than: must be 0 or more days, not -1"
        " (see watcher prune --help)"
    ]
