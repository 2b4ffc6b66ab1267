"""``watcher failed``: the failed folder as an operator reads it, from the files alone.

Each failed file is paired with the ``.error.json`` report quarantine wrote beside it, so
a failed folder copied from another machine reads the same. The folder is not trusted:
a report may be damaged, missing or without its file, a name may hold terminal escapes,
and a link planted there is never followed (reports are opened ``O_NOFOLLOW``).
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import msgspec

from watcher import fs as files
from watcher.core.errors import CommandFailed
from watcher.core.printable import display_name, printable
from watcher.erp.folders.layout import REPORT_SUFFIX, ErrorReport, RejectedElement

REPORT_LIMIT: Final = 1 << 20  # ours stay under 100 KB (100 listed elements at most)
SHOWN_REASON: Final = 500  # characters of a reason on a terminal line (--json: all)
_decode_report = msgspec.json.Decoder(ErrorReport).decode


class FailedFile(msgspec.Struct, frozen=True, kw_only=True):
    """One failed file and what its report says (``--json`` prints these as they are)."""

    file: str  # its name in the failed folder: what ``watcher requeue`` takes
    report: str | None  # its report's name, None when there is none
    original: str | None = None  # the name it had in the inbound folder (from the report)
    time: str | None = None  # when it was quarantined (ISO 8601, from the report)
    reason: str | None = None
    path: str | None = None  # where in the file (a JSON path)
    rejected: list[RejectedElement] = []  # a batch's refused elements (the first 100)
    unlisted: int = 0
    problem: str | None = None  # what is wrong here: no report, a damaged one, no file

    def when(self) -> datetime | None:
        """The report's time as an aware UTC datetime, when it is one."""
        try:
            moment = datetime.fromisoformat(self.time or "")
        except ValueError:
            return None
        return moment.astimezone(UTC) if moment.tzinfo else None


def pair_up(names: Collection[str]) -> list[tuple[str, bool, bool]]:
    """Each failed file's name with (its file is there, its report is there), by name.

    ``x.error.json`` is the report of ``x``, unless it has a report of its own (an inbound
    file may be called that): then it is a failed file.
    """
    present = set(names)

    def is_report(name: str) -> bool:
        return name.endswith(REPORT_SUFFIX) and name + REPORT_SUFFIX not in present

    failed = {name for name in present if not is_report(name)}
    reported = {name.removesuffix(REPORT_SUFFIX) for name in present if is_report(name)}
    return sorted((name, name in failed, name in reported) for name in failed | reported)


def read_failed(folder: Path) -> list[FailedFile]:
    """Every failed file in ``folder`` with its report, newest first (no time: last)."""
    if not folder.is_dir():  # most likely the wrong directory: say so, as requeue does
        raise CommandFailed(
            f"no failed folder at {folder}: run this in the worker's directory, or set"
            " DATA_FAILED_DIR to its failed folder"
        )
    with os.scandir(folder) as entries:
        kinds = {entry.name: _kind(entry) for entry in entries}
    listed = [n for n, kind in kinds.items() if kind != "directory"]  # requeued-reports/
    found = [
        _entry(folder, name, kinds, has_file, has_report)
        for name, has_file, has_report in pair_up(listed)
    ]
    return sorted(found, key=_newest_first)


def _kind(entry: os.DirEntry[str]) -> str:
    """``file``, ``directory`` or what else it is, from the listing (links not followed)."""
    if entry.is_symlink():
        return "symbolic link"
    if entry.is_dir(follow_symlinks=False):
        return "directory"
    return "file" if entry.is_file(follow_symlinks=False) else "special file"


def _newest_first(entry: FailedFile) -> tuple[bool, float, str]:
    when = entry.when()
    return when is None, -(when.timestamp() if when else 0.0), entry.file


def _entry(
    folder: Path, name: str, kinds: dict[str, str], has_file: bool, has_report: bool
) -> FailedFile:
    report_name = name + REPORT_SUFFIX
    report, problems = None, []
    if has_report:
        report, unreadable = _read_report(folder / report_name, kinds[report_name])
        problems += [unreadable] if unreadable else []
    else:
        problems.append(f"no report ({display_name(report_name)} is missing)")
    if not has_file:
        problems.append("only the report is here: the file was moved or removed")
    elif kinds[name] != "file":
        problems.append(f"not a regular file ({kinds[name]})")
    found = FailedFile(
        file=display_name(name),
        report=display_name(report_name) if has_report else None,
        problem="; ".join(problems) or None,
    )
    if report is None:
        return found
    return msgspec.structs.replace(
        found,
        original=report.file,
        time=report.time,
        reason=report.reason,
        path=report.path,
        rejected=report.rejected or [],
        unlisted=report.unlisted,
    )


def _read_report(path: Path, kind: str) -> tuple[ErrorReport | None, str]:
    """The report, or None and why it cannot be read (a link is never followed)."""
    if kind != "file":
        return None, f"the report is not a regular file ({kind}): not read"
    try:
        data, _ = files.read_regular(path, REPORT_LIMIT)
    except OSError as exc:
        reason = str(exc) if isinstance(exc, files.RefusedFile) else exc.strerror or str(exc)
        return None, f"the report cannot be read: {reason}"
    try:
        return _decode_report(data), ""
    except msgspec.DecodeError as exc:  # not JSON, or not shaped like our reports
        return None, f"the report is damaged (not an error report: {exc})"


def failed_lines(entries: list[FailedFile], inbound: Path) -> Iterator[str]:
    """One line per failed file for a terminal (everything from the folder escaped), then a
    line saying how to put them back."""
    for entry in entries:
        when = entry.when()
        stamp = f"{when:%Y-%m-%d %H:%M:%S}" if when else "time unknown       "
        yield printable(f"{stamp}  {entry.file}  {_said(entry)}")
    if entries:
        count = "1 failed file" if len(entries) == 1 else f"{len(entries)} failed files"
        yield (
            f"{count}; watcher requeue -- NAME (or no NAME: all) moves them back to {inbound}"
            " to be read again"
        )


def _said(entry: FailedFile) -> str:
    """What the report says of one file, on one line: reason at path, the first refused
    element of a batch, and what is wrong with the report or the file, if anything."""
    parts = []
    if entry.reason is not None:
        reason = " ".join(entry.reason.split())
        if len(reason) > SHOWN_REASON:
            reason = reason[: SHOWN_REASON - 1] + "…"
        parts.append(f"{reason} at {entry.path}" if entry.path else reason)
    if entry.rejected:
        first = entry.rejected[0]
        parts.append(f"first: {' '.join(first.reason.split())[:SHOWN_REASON]} at {first.path}")
    if entry.original is not None and entry.original != entry.file:
        parts.append(f"came in as {entry.original}")
    if entry.problem is not None:
        parts.append(f"[{entry.problem}]")
    return "; ".join(parts)
