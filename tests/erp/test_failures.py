"""``watcher failed``: the failed folder read from its files, whatever it holds."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.helpers.builders import erp
from tests.helpers.workers import cli, drop, names
from watcher import fs as files
from watcher.app import build_worker, run_once
from watcher.core.errors import CommandFailed
from watcher.core.settings import Settings
from watcher.erp.folders.failed import FailedFile, failed_lines, pair_up, read_failed
from watcher.erp.folders.layout import ErrorReport, report_bytes
from watcher.erp.folders.upkeep import REQUEUED_REPORTS, requeue


def quarantine_with_the_worker(settings: Settings, dropped: dict[str, bytes]) -> None:
    for name, data in dropped.items():
        drop(settings.inbound_dir, name, data)
    run_once(build_worker(settings))


def report(name: str, reason: str, time: str) -> bytes:
    return report_bytes(ErrorReport(name, reason, "$.orderNo", time))


@pytest.mark.parametrize(
    ("listing", "pairs"),
    [
        (["a.json", "a.json.error.json"], [("a.json", True, True)]),
        (["a.json"], [("a.json", True, False)]),
        (["a.json.error.json"], [("a.json", False, True)]),
        # an inbound file called x.error.json, quarantined with its own report
        (["x.error.json", "x.error.json.error.json"], [("x.error.json", True, True)]),
    ],
)
def test_files_and_reports_pair_up_by_name(
    listing: list[str], pairs: list[tuple[str, bool, bool]]
) -> None:
    """A report goes with the file it is named after; either may be missing."""
    assert pair_up(listing) == pairs


def test_the_worker_s_reports_read_back_newest_first(settings: Settings) -> None:
    """Reasons, JSON paths and a batch's refused elements, as quarantine wrote them."""
    quarantine_with_the_worker(settings, {"bad-7.json": json.dumps(erp(orderNo="7")).encode()})
    batch = json.dumps([erp(orderNo=1), 5]).encode()
    quarantine_with_the_worker(settings, {"batch.json": batch})
    newest, oldest = read_failed(settings.failed_dir)
    assert (newest.file, newest.original, newest.reason, newest.path) == (
        "batch.rejected.json",
        "batch.json",
        "1 of 2 orders rejected",
        "$",
    )
    assert [(r.index, r.path) for r in newest.rejected] == [(1, "$[1]")]
    assert (oldest.file, oldest.reason, oldest.path) == (
        "bad-7.json",
        "Expected `int`, got `str`",
        "$.orderNo",
    )
    assert newest.problem is oldest.problem is None
    lines = list(failed_lines([newest, oldest], settings.inbound_dir))
    assert lines[0].endswith(
        "  batch.rejected.json  1 of 2 orders rejected at $; first: Expected `object`, got"
        " `int` at $[1]; came in as batch.json"
    )
    assert lines[1].endswith("  bad-7.json  Expected `int`, got `str` at $.orderNo")
    assert lines[2] == (
        f"2 failed files; watcher requeue -- NAME (or no NAME: all) moves them back to"
        f" {settings.inbound_dir} to be read again"
    )


def test_hostile_content_is_listed_and_never_believed(settings: Settings, tmp_path: Path) -> None:
    """Damaged, missing and orphaned reports, odd names and planted links: each one is a
    line saying what is wrong; nothing is followed or printed raw."""
    failed = settings.failed_dir
    failed.mkdir(parents=True)
    (failed / "junk.json").write_bytes(b"{}")
    (failed / "junk.json.error.json").write_bytes(b"\x00not json")
    (failed / "shape.json").write_bytes(b"{}")
    (failed / "shape.json.error.json").write_bytes(b'{"file": 1}')
    (failed / "alone.json").write_bytes(b"{}")
    (failed / "gone.json.error.json").write_bytes(report("gone.json", "why", "2026-01-02T00:00Z"))
    odd = "\x1b]52;c;evil\x07\n\udcff.json"
    (failed / odd).write_bytes(b"{}")
    shown = odd.replace("\udcff", "\ufffd")  # as the worker writes a name that is not UTF-8
    (failed / (odd + ".error.json")).write_bytes(report(shown, "bad\nline", "2026-01-01T00:00Z"))
    secret = tmp_path / "secret.json"
    secret.write_bytes(report("secret.json", "a report elsewhere", "2026-01-03T00:00Z"))
    (failed / "linked.json").write_bytes(b"{}")
    (failed / "linked.json.error.json").symlink_to(secret)
    (failed / "link.json").symlink_to(secret)
    (failed / "requeued-reports").mkdir()
    found = {entry.file: entry for entry in read_failed(failed)}
    assert found["junk.json"].problem is not None
    assert found["junk.json"].problem.startswith("the report is damaged (not an error report")
    assert found["shape.json"].problem is not None
    assert "Expected `str`, got `int`" in found["shape.json"].problem
    assert found["alone.json"].problem == "no report (alone.json.error.json is missing)"
    assert found["gone.json"].problem == "only the report is here: the file was moved or removed"
    assert found["gone.json"].reason == "why"
    assert (
        found["linked.json"].problem == "the report is not a regular file (symbolic link): not read"
    )
    assert found["linked.json"].reason is None
    assert found["link.json"].problem == (
        "no report (link.json.error.json is missing); not a regular file (symbolic link)"
    )
    assert "requeued-reports" not in found and len(found) == 7
    lines = list(failed_lines(list(found.values()), settings.inbound_dir))
    assert all("\x1b" not in line and "\n" not in line for line in lines)
    assert any(
        "\\x1b]52;c;evil\\x07\\x0a\ufffd.json  bad line at $.orderNo" in line for line in lines
    )
    assert not any("a report elsewhere" in line for line in lines)


def test_unknown_times_come_last(settings: Settings) -> None:
    """Newest first by the report's time; a file whose report gives none comes after."""
    entries = [
        FailedFile(file="a", report=None),
        FailedFile(file="b", report="b.error.json", time="2026-01-01T00:00:00+00:00"),
        FailedFile(file="c", report="c.error.json", time="2026-01-02T05:00:00+05:00"),
        FailedFile(file="d", report="d.error.json", time="2026-01-03T00:00:00+00:00"),
    ]
    settings.failed_dir.mkdir(parents=True)
    for entry in entries:
        (settings.failed_dir / entry.file).write_bytes(b"{}")
        if entry.time:
            data = report(entry.file, "r", entry.time)
            (settings.failed_dir / f"{entry.file}.error.json").write_bytes(data)
    assert [e.file for e in read_failed(settings.failed_dir)] == ["d", "c", "b", "a"]


def test_no_failed_folder_is_the_wrong_directory(settings: Settings) -> None:
    """Nothing is made where there is no failed folder; the error says where to look."""
    with pytest.raises(CommandFailed, match=r"no failed folder at .*DATA_FAILED_DIR"):
        read_failed(settings.failed_dir)
    assert not settings.failed_dir.exists()


@pytest.mark.system
def test_the_failed_command_for_people_and_scripts(settings: Settings) -> None:
    """One line per failed file and the way back; --json for scripts; none: says so."""
    drop(settings.inbound_dir, "bad.json", b"12")
    cli(settings, "once")
    lines = cli(settings, "failed").stdout.splitlines()
    assert lines[0].endswith("  bad.json  expected a JSON object or array, got a number at $")
    assert lines[1].startswith("1 failed file; watcher requeue -- NAME")
    [entry] = json.loads(cli(settings, "failed", "--json").stdout)
    assert (entry["file"], entry["report"], entry["path"]) == (
        "bad.json",
        "bad.json.error.json",
        "$",
    )
    cli(settings, "requeue")
    assert cli(settings, "failed").stdout == f"no failed files in {settings.failed_dir}\n"
    assert names(settings.failed_dir / "requeued-reports") == ["bad.json.error.json"]
    os.rename(settings.failed_dir, settings.failed_dir.with_name("elsewhere"))
    wrong = cli(settings, "failed", check=False)
    assert (wrong.returncode, wrong.stdout) == (1, "")
    assert wrong.stderr.startswith(f"watcher: no failed folder at {settings.failed_dir}")


# --- requeue repaired after a kill, names that look like options ----------


def test_a_requeue_cut_short_leaves_no_phantom_and_a_rerun_finishes(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after its first move: ``watcher failed`` shows no report whose file is gone;
    run again, the requeue finishes (the file in inbound, its report set aside)."""
    quarantine_with_the_worker(settings, {"bad.json": b"12"})
    real_move = files.move_without_clobber
    moves = 0

    def move(source: files.StrPath, folder: files.StrPath, name: str, room: int = 0) -> str:
        nonlocal moves
        moves += 1
        if moves > 1:
            raise KeyboardInterrupt  # the process ends here, as under SIGKILL
        return real_move(source, folder, name, room)

    monkeypatch.setattr(files, "move_without_clobber", move)
    with pytest.raises(KeyboardInterrupt):
        requeue(settings, [])
    monkeypatch.undo()
    left = read_failed(settings.failed_dir)
    assert all(e.problem is None or "only the report" not in e.problem for e in left), left
    requeue(settings, [])
    assert read_failed(settings.failed_dir) == []
    assert names(settings.inbound_dir) == ["bad.json"]
    assert names(settings.failed_dir / REQUEUED_REPORTS) == ["bad.json.error.json"]


@pytest.mark.system
@pytest.mark.parametrize("name", ["--help.json", "-rf.json"])
def test_a_name_like_an_option_is_requeued_the_way_the_hint_says(
    settings: Settings, name: str
) -> None:
    """``watcher failed``'s last line says how; done that way, the file goes back."""
    drop(settings.inbound_dir, name, b"12")
    cli(settings, "once")
    hint = cli(settings, "failed").stdout.splitlines()[-1]
    assert "watcher requeue -- NAME" in hint, hint
    done = cli(settings, "requeue", "--", name)
    assert name in done.stdout and names(settings.inbound_dir) == [name]
