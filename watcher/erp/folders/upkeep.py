"""Operator actions on the folders: counting files, putting failed files back, and pruning
old ones (the product deletes nothing by itself; ``prune`` is the operator's retention)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from watcher import fs as files
from watcher.core.errors import CommandFailed
from watcher.core.settings import Settings
from watcher.erp.folders import layout
from watcher.erp.folders.claims import in_flight
from watcher.erp.folders.layout import REPORT_SUFFIX

REQUEUED_REPORTS: Final = "requeued-reports"


def _files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return [p for p in folder.iterdir() if p.is_file() and not p.name.endswith(REPORT_SUFFIX)]


def folder_counts(settings: Settings) -> dict[str, int]:
    return {
        "files_waiting": len(
            [p for p in _files(settings.inbound_dir) if layout.is_candidate(p.name)]
        ),
        "files_in_flight": in_flight(settings.inbound_dir),
        "files_archived": FILED.count(settings.archive_dir),
        "files_failed": FILED.count(settings.failed_dir),
    }


COUNT_SECONDS: Final = 2.0  # a folder's count is reused this long, changed or not
RACY_NS: Final = 1_000_000_000  # a folder changed this recently may change again unseen


@dataclass(frozen=True, slots=True)
class _Counted:
    key: tuple[int, int, int]  # the folder's device, inode and mtime when listed
    trusted: bool  # its mtime was old enough then: any change since moves it
    at: float  # when it was listed, by the counter's clock
    files: int


class FiledCounter:
    """The files in an archive or failed folder (reports left out), listed again only when
    the folder's mtime says it changed, and then at most once per ``COUNT_SECONDS``: the
    cost of ``/status`` asked in a loop does not grow with a 200,000-file archive."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._counted: dict[str, _Counted] = {}
        self._lock = threading.Lock()  # requests at once share one listing

    def count(self, folder: Path) -> int:
        with self._lock:
            try:
                info = os.stat(folder)
            except OSError:
                return 0
            key, now = (info.st_dev, info.st_ino, info.st_mtime_ns), self._clock()
            last = self._counted.get(os.fspath(folder))
            if last is not None and (
                now - last.at < COUNT_SECONDS or (last.trusted and last.key == key)
            ):
                return last.files
            trusted = info.st_mtime_ns < time.time_ns() - RACY_NS  # mtimes are coarse
            files = _count_files(folder)
            self._counted[os.fspath(folder)] = _Counted(key, trusted, now, files)
            return files


def _count_files(folder: Path) -> int:
    """One listing, no stat per file (the listing's file types)."""
    try:
        with os.scandir(folder) as entries:
            return sum(
                not entry.name.endswith(REPORT_SUFFIX) and entry.is_file(follow_symlinks=False)
                for entry in entries
            )
    except OSError:  # gone meanwhile, or not a folder
        return 0


FILED: Final = FiledCounter()  # the worker's, shared by its ``/status`` requests


def requeue(settings: Settings, names: Sequence[str]) -> tuple[list[str], list[str]]:
    """Move failed files (all, or these names) back to inbound; reports go to a side folder."""
    failed = settings.failed_dir
    if not failed.is_dir():  # most likely the wrong directory: nothing is made here
        raise CommandFailed(
            f"no failed folder at {failed}: run this in the worker's directory, or set"
            " DATA_FAILED_DIR to its failed folder"
        )
    wanted = [failed / Path(n).name for n in names] if names else sorted(_files(failed))
    moved, missing = [], []
    aside = failed / REQUEUED_REPORTS
    for path in wanted:
        if not path.is_file() or path.name.endswith(REPORT_SUFFIX):
            missing.append(path.name)
            continue
        report = path.with_name(path.name + REPORT_SUFFIX)
        if report.exists():  # first: a requeue cut short leaves a file (which a rerun
            aside.mkdir(exist_ok=True)  # moves), never a report without its file
            files.move_without_clobber(report, aside, report.name)
        target = files.move_without_clobber(path, settings.inbound_dir, path.name)
        moved.append(os.path.basename(target))
    return moved, missing


@dataclass
class Pruned:
    """What ``prune`` removed (or would remove), per folder, and what it could not."""

    removed: dict[Path, list[Path]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return sum(map(len, self.removed.values()))


def prune(settings: Settings, cutoff: float, dry_run: bool) -> Pruned:
    """Remove files in archive/ and failed/ that arrived there before ``cutoff`` (epoch
    seconds), a failed file together with its report; a report alone (requeued) by its own
    arrival. Reports go before their files: a prune cut short leaves a failed file without
    its report (which a rerun removes), never a report whose file is gone."""
    failed = settings.failed_dir
    folders = [settings.archive_dir, failed, failed / REQUEUED_REPORTS]
    if not any(folder.is_dir() for folder in folders[:2]):
        raise CommandFailed(
            f"no archive or failed folder at {settings.archive_dir}, {failed}: run this in the"
            " worker's directory, or set DATA_ARCHIVE_DIR and DATA_FAILED_DIR"
        )
    pruned = Pruned()
    for folder in folders:
        doomed = sorted(_older(folder, cutoff), key=lambda p: not p.name.endswith(REPORT_SUFFIX))
        if not dry_run:
            doomed = [path for path in doomed if _removed(path, pruned.errors)]
        pruned.removed[folder] = doomed
    return pruned


def _older(folder: Path, cutoff: float) -> Iterator[Path]:
    if not folder.is_dir():
        return
    paths = {p.name: p for p in folder.iterdir() if p.is_file()}
    for name, path in sorted(paths.items()):
        owner = (
            paths.get(name.removesuffix(REPORT_SUFFIX)) if name.endswith(REPORT_SUFFIX) else None
        )
        judged = owner or path  # a report goes with its file
        try:  # when it arrived: the worker's rename or link sets the ctime, while the mtime
            arrived = judged.stat().st_ctime  # is the ERP's (``cp -p`` keeps an old one)
        except FileNotFoundError:
            continue  # moved meanwhile (requeued, say)
        if arrived < cutoff:
            yield path


def _removed(path: Path, errors: list[str]) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False  # gone meanwhile (requeued, say): not ours to count
    except OSError as exc:
        errors.append(f"cannot remove {path}: {exc.strerror or exc}")
        return False
    return True
