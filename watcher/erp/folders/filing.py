"""Filing a claimed file away: archived, or quarantined beside its report; crash-safe.

A failed file never lacks its report: the report is linked into the failed folder first,
the file after it. What is written for a file (its report, a batch's refused elements) is
staged beside it in the worker's own claim folder and then linked into the failed folder,
so the staged copy's link count says how far filing got: after a crash, the next start
finishes the job (``finish``) without writing anything twice, and a file dropped again is
a new input with files of its own.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from datetime import datetime

from watcher import fs as files
from watcher.core.printable import display_name
from watcher.erp.folders import layout
from watcher.erp.folders.layout import REPORT_SUFFIX
from watcher.erp.port import Taken
from watcher.fs import StrPath

log = logging.getLogger(__name__)

REPORT: str = "report"
REFUSED: str = "rejected"


def staged(claimed: StrPath, kind: str) -> str:
    """Where ``claimed``'s report or refused elements wait (hidden, in its claim folder)."""
    import hashlib  # on first use: ``status`` imports this module and needs no digest

    key = hashlib.blake2b(os.fsencode(os.path.basename(claimed)), digest_size=8).hexdigest()
    return os.path.join(os.path.dirname(claimed), f".{key}.{kind}")


def file_away(item: Taken, archive: StrPath, failed: StrPath, now: datetime, claim_fd: int) -> str:
    """Archive a used file (its refused elements, if any, to the failed folder first), or
    quarantine an unusable one; the name it now has there (the failed one's, if any).
    ``claim_fd``: the claim folder holding ``item.ref``, open (the archive's move goes
    through it: no path through ``/proc`` resolved per file)."""
    if item.verdict is None:
        assert item.error is not None
        error = item.error
        report = layout.ErrorReport(item.shown, error.reason, error.path, now.isoformat())
        return display_name(quarantine(item.ref, failed, item.name, layout.report_bytes(report)))
    refused = _refuse(item, failed, now) if item.verdict.rejected_count else None
    held = os.path.basename(item.ref)
    archived = files.move_without_clobber(held, archive, item.name, source_fd=claim_fd)
    if refused:
        discard(item.ref)
    return refused or display_name(os.path.basename(archived))


def changed(item: Taken, inbound: StrPath, claim_fd: int) -> bool:
    """A file written to while it was processed goes back to be read again (True): what it
    now holds is not what was stored, or reported. ``claim_fd`` as for ``file_away``."""
    held = os.path.basename(item.ref)
    if item.version is None or version(os.lstat(held, dir_fd=claim_fd)) == item.version:
        return False
    discard(item.ref)
    back = files.move_without_clobber(held, inbound, item.name, source_fd=claim_fd)
    log.warning("%s changed while it was processed: read again", display_name(back))
    return True


def version(info: os.stat_result) -> tuple[int, int, int]:
    """What changes when a file is written to: inode, size, modification time."""
    return info.st_ino, info.st_size, info.st_mtime_ns


def _refuse(item: Taken, failed: StrPath, now: datetime) -> str:
    verdict = item.verdict
    assert verdict is not None
    listed = [layout.RejectedElement(r.index, r.path, r.reason) for r in verdict.rejected]
    reason = verdict.rejected_reason()
    if verdict.unlisted:
        reason += f" (the first {len(listed)} are listed)"
    at = now.isoformat()
    report = layout.ErrorReport(item.shown, reason, "$", at, listed, verdict.unlisted)
    refused = verdict.rejected_chunks()
    return display_name(
        refuse_elements(item.ref, failed, item.name, refused, layout.report_bytes(report))
    )


def quarantine(claimed: str, failed: StrPath, name: str, report: bytes) -> str:
    """Move ``claimed`` to the failed folder after its report; the failed file's name."""
    target = _report_in(claimed, failed, name, "", report)
    while True:
        try:
            files.rename_no_replace(claimed, os.path.join(failed, target))
            break
        except FileExistsError:  # taken since the report went in: both move on
            target = _relink_report(claimed, failed, name, "", target)
    discard(claimed)
    return target


def refuse_elements(
    claimed: str, failed: StrPath, name: str, refused: Sequence[bytes], report: bytes
) -> str:
    """A batch's refused elements as ``<stem>.rejected.json`` after their report (once per
    claim, however often it is retried); the name in the failed folder."""
    elements = staged(claimed, REFUSED)
    if _linked_name(staged(claimed, REPORT), failed) is None:
        _stage(elements, refused)
    target = _report_in(claimed, failed, name, ".rejected", report)
    while os.lstat(elements).st_nlink < 2:
        try:
            os.link(elements, os.path.join(failed, target), follow_symlinks=False)
        except FileExistsError:
            target = _relink_report(claimed, failed, name, ".rejected", target)
    return target


def finish(claimed: str, failed: StrPath, archive: StrPath) -> str | None:
    """Complete what a stopped worker began filing for ``claimed``: where it went, or None
    when nothing had reached the failed folder yet (it is to be taken again)."""
    report = staged(claimed, REPORT)
    linked = _linked_name(report, failed)
    if linked is None:
        discard(claimed)
        return None
    name = os.path.basename(claimed)
    if not os.path.lexists(staged(claimed, REFUSED)):  # the report is in: never rewritten
        return os.path.join(failed, quarantine(claimed, failed, name, b""))
    refuse_elements(claimed, failed, name, [], b"")
    archived = files.move_without_clobber(claimed, archive, name)
    discard(claimed)
    return archived


def discard(claimed: StrPath) -> None:
    """Drop what was staged for ``claimed`` (linked copies stay where they were linked)."""
    for kind in (REPORT, REFUSED):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staged(claimed, kind))


def _report_in(claimed: str, failed: StrPath, name: str, tag: str, report: bytes) -> str:
    """The report in the failed folder (linked now, or found there from an earlier try); the
    name of the file it belongs to."""
    staged_report = staged(claimed, REPORT)
    linked = _linked_name(staged_report, failed)
    if linked is not None:
        return linked.removesuffix(REPORT_SUFFIX)
    _stage(staged_report, [report])
    return _link_report(staged_report, failed, name, tag)


def _link_report(staged_report: str, failed: StrPath, name: str, tag: str) -> str:
    """Link the report as ``<target>.error.json`` for a free ``target``; ``target``."""
    base, tail = files.split_name(name)
    for target in files.candidate_names(base, tag + tail, len(REPORT_SUFFIX)):
        if os.path.lexists(os.path.join(failed, target)):
            continue
        try:
            os.link(staged_report, os.path.join(failed, target + REPORT_SUFFIX))
        except FileExistsError:
            continue
        return target
    raise AssertionError("unreachable: candidate_names raises when it runs out")


def _relink_report(claimed: str, failed: StrPath, name: str, tag: str, taken: str) -> str:
    """``taken`` went to someone else: the report moves to a free name; that name."""
    target = _link_report(staged(claimed, REPORT), failed, name, tag)
    os.unlink(os.path.join(failed, taken + REPORT_SUFFIX))
    return target


def _linked_name(path: str, folder: StrPath) -> str | None:
    """The name ``path``'s second link has in ``folder``, if it has one there."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    return name_of_inode(folder, info.st_ino) if info.st_nlink > 1 else None


def _stage(path: str, chunks: Sequence[bytes]) -> None:
    """(Re)write a staged file whole; on failure none is left."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    files.write_new(path, chunks)


def name_of_inode(folder: StrPath, inode: int) -> str | None:
    """The name under which ``folder`` holds ``inode``, if it does (read from the listing)."""
    with os.scandir(folder) as entries:
        return next((entry.name for entry in entries if entry.inode() == inode), None)
