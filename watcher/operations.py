"""Operator actions on the folders: counting files and putting failed files back."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from watcher.erp import files
from watcher.erp.claims import CLAIMED_DIR
from watcher.erp.files import REPORT_SUFFIX
from watcher.settings import Settings

REQUEUED_REPORTS: Final = "requeued-reports"


def _files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return [p for p in folder.iterdir() if p.is_file() and not p.name.endswith(REPORT_SUFFIX)]


def folder_counts(settings: Settings) -> dict[str, int]:
    claimed = settings.inbound_dir / CLAIMED_DIR
    in_flight = sum(len(_files(d)) - 1 for d in claimed.iterdir()) if claimed.is_dir() else 0
    return {
        "files_waiting": len(
            [p for p in _files(settings.inbound_dir) if files.is_candidate(p.name)]
        ),
        "files_in_flight": max(0, in_flight),
        "files_archived": len(_files(settings.archive_dir)),
        "files_failed": len(_files(settings.failed_dir)),
    }


def requeue(settings: Settings, names: Sequence[str]) -> tuple[list[str], list[str]]:
    """Move failed files (all, or these names) back to inbound; reports go to a side folder."""
    failed = settings.failed_dir
    wanted = [failed / Path(n).name for n in names] if names else sorted(_files(failed))
    moved, missing = [], []
    aside = failed / REQUEUED_REPORTS
    for path in wanted:
        if not path.is_file() or path.name.endswith(REPORT_SUFFIX):
            missing.append(path.name)
            continue
        target = files.move_without_clobber(path, settings.inbound_dir, path.name)
        report = path.with_name(path.name + REPORT_SUFFIX)
        if report.exists():
            aside.mkdir(exist_ok=True)
            files.move_without_clobber(report, aside, report.name)
        moved.append(os.path.basename(target))
    return moved, missing
