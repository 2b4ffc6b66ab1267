"""The exchange folders' own rules: which names are ERP files, when a file landed, the
error reports beside quarantined files, and the folders made and checked at start-up.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import msgspec

from watcher import fs as files
from watcher.core.errors import ConfigError
from watcher.erp.folders import checked

IGNORED_SUFFIXES: Final = (".tmp", ".part", ".swp", "~")


REPORT_SUFFIX: Final = ".error.json"
CLAIMED_DIR: Final = ".processing"  # in the inbound folder: each worker's claim folder
STALE_TEMP_SECONDS: Final = 60.0  # a write takes milliseconds: older is a crash's


class RejectedElement(msgspec.Struct, frozen=True):
    """One refused element of a batch file, in its ``.error.json`` report."""

    index: int | None
    path: str
    reason: str


class ErrorReport(msgspec.Struct, frozen=True, omit_defaults=True):
    """``<name>.error.json``: what operators (and ``watcher failed``) read about a file."""

    file: str
    reason: str
    path: str
    time: str  # ISO 8601 with its offset, as ``datetime.isoformat`` spells it
    rejected: list[RejectedElement] | None = None  # a batch's refused elements (the first)
    unlisted: int = 0  # refused elements not listed in ``rejected``


_encode_report = msgspec.json.Encoder().encode


def is_candidate(name: str) -> bool:
    """Only ``*.json`` (any case); hidden, temporary and editor files are left alone."""
    lowered = name.lower()
    return (
        lowered.endswith(".json")
        and not name.startswith(".")
        and not lowered.endswith(IGNORED_SUFFIXES)
    )


def scan(folder: Path) -> list[str]:
    """Candidate names in ``folder``, directories skipped (the listing's file types: no stat)."""
    with os.scandir(folder) as entries:
        return sorted(
            entry.name
            for entry in entries
            if is_candidate(entry.name) and not entry.is_dir(follow_symlinks=False)
        )


def oldest_landed(folder: Path) -> float | None:
    """When the longest-waiting candidate in ``folder`` landed there (epoch seconds), or
    None when none waits: its ``ctime``, which writing it there or moving it in sets (a
    copy keeping an old ``mtime`` still lands now) — the clock of the inbound latency."""
    oldest = None
    with os.scandir(folder) as entries:
        for entry in entries:
            if not is_candidate(entry.name) or entry.is_dir(follow_symlinks=False):
                continue
            try:
                landed = entry.stat(follow_symlinks=False).st_ctime
            except FileNotFoundError:
                continue  # taken meanwhile
            oldest = landed if oldest is None else min(oldest, landed)
    return oldest


def report_bytes(report: ErrorReport) -> bytes:
    return _encode_report(report) + b"\n"


def prepare(folders: Sequence[tuple[str, Path]]) -> None:
    """Create the folders (setting name, path); one this user cannot use stops start-up."""
    for variable, folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            reason = f"cannot create folder {folder}: {exc.strerror or exc}"
            raise ConfigError(f"{variable} ({folder}): {reason}") from None
        if problem := _unusable(folder):
            raise ConfigError(f"{variable} ({folder}): {problem}")


def _unusable(folder: Path) -> str:
    """Why this process cannot read and write in ``folder`` ("" when it can)."""
    if not folder.is_dir():
        return "not a folder"
    if os.statvfs(folder).f_flag & os.ST_RDONLY:
        return "on a read-only file system"
    if not os.access(folder, os.R_OK | os.W_OK | os.X_OK):
        return "not readable and writable by this user"
    return ""


def inbound_folders(inbound: tuple[str, Path], others: Sequence[tuple[str, Path]]) -> None:
    """The inbound folder and the folders its files are filed into (setting name, path
    each): made and usable, on one file system, none of them the inbound one by a link."""
    prepare((inbound, *others))
    same_file_system(inbound, others)
    checked.refuse_aliases(inbound, others)


def nothing_waiting(inbound: Path) -> bool:
    """Whether ``inbound`` holds no file to take and its claim folder no worker's claims
    (alive or gone), by a look that changes nothing; a look that fails is no answer."""
    try:
        claims = inbound / CLAIMED_DIR
        if not stat.S_ISDIR(os.lstat(claims).st_mode) or os.listdir(claims):
            return False
        with os.scandir(inbound) as entries:
            return not any(is_candidate(entry.name) for entry in entries)
    except OSError:
        return False


def same_file_system(reference: tuple[str, Path], others: Sequence[tuple[str, Path]]) -> None:
    """Each of ``others`` (setting name, folder) must be reachable by rename from ``reference``."""
    device = reference[1].stat().st_dev
    for variable, folder in others:
        if folder.stat().st_dev != device:
            raise ConfigError(
                f"{variable} ({folder}) must be on the same file system as {reference[0]}:"
                " files are moved by atomic rename"
            )


def remove_stale_temps(folder: Path, now: float | None = None) -> None:
    """Temp files of ours left by a crash mid-write (the document stayed unsynced): those
    whose writer on this host is gone, and any untouched for ``STALE_TEMP_SECONDS``; never
    one another worker is writing now."""
    cutoff = (time.time() if now is None else now) - STALE_TEMP_SECONDS
    for path in folder.glob(".*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            if files.temp_writer_gone(path.name) or path.lstat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
