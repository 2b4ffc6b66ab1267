"""This worker's claim folder, and putting back what a stopped worker left claimed.

A file is claimed by atomic rename into ``<inbound>/.processing/<pid>-<random>/``, whose
lock is held for as long as the worker lives: a folder whose lock is free belonged to a
worker that is gone, and its files go back into the inbound folder at the next start (or
on to the archive or failed folder, when it had begun filing them away).
"""

from __future__ import annotations

import fcntl
import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from watcher import fs as files
from watcher.core.errors import ConfigError
from watcher.erp.folders import filing
from watcher.fs import move_without_clobber

log = logging.getLogger(__name__)
CLAIMED_DIR: Final = ".processing"
LOCK_FILE: Final = ".lock"


@dataclass
class ClaimDir:
    """This worker's private claim folder, locked for as long as the process lives."""

    path: Path
    lock_fd: int

    @classmethod
    def create(cls, inbound: Path) -> ClaimDir:
        """A new claim folder; one that cannot be made stops start-up with one line."""
        root = inbound / CLAIMED_DIR
        path = root / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            return cls(path, _locked_folder(path))
        except OSError as exc:
            if root.exists() and not root.is_dir():
                problem = f"{root} is a file, not the claim folder: move it away"
            else:
                problem = f"cannot create the claim folder {path}: {exc.strerror or exc}"
            raise ConfigError(f"DATA_INBOUND_DIR ({inbound}): {problem}") from None

    def claim(self, source: str) -> str | None:
        """Move ``source`` in by atomic rename; None if another worker took it first."""
        name = os.path.basename(source)
        try:
            return move_without_clobber(source, self.path, name)
        except FileNotFoundError:
            if not os.path.lexists(source):
                return None  # another worker (or the ERP) took it first
            self._recreate()  # our folder went with a removed inbound folder
            return move_without_clobber(source, self.path, name)

    def _recreate(self) -> None:
        os.close(self.lock_fd)
        self.lock_fd = _locked_folder(self.path)

    def held(self) -> int:
        """How many files are claimed here now."""
        return claimed(self.path)

    def release(self) -> None:
        """Give the folder up; an empty one is removed, one with files waits for a resume."""
        os.close(self.lock_fd)
        try:
            if [p.name for p in self.path.iterdir()] == [LOCK_FILE]:
                (self.path / LOCK_FILE).unlink()
                self.path.rmdir()
        except OSError:
            pass  # gone with a removed inbound folder, or refilled: the next start sees to it


def _locked_folder(path: Path) -> int:
    """Create ``path`` and hold its lock for as long as this process lives."""
    path.mkdir(parents=True, exist_ok=True)
    fd = os.open(path / LOCK_FILE, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def orphaned_claims(inbound: Path) -> list[Path]:
    """Claim folders whose worker is gone (their lock is free); anything else is left alone."""
    root = inbound / CLAIMED_DIR
    if not root.is_dir():
        return []
    orphans = []
    for folder in sorted(root.iterdir()):
        if not folder.is_dir() or folder.is_symlink():
            log.warning("%s: not a claim folder (%s is ours): left alone", folder, root)
        elif _unlocked(folder):
            orphans.append(folder)
    return orphans


def _unlocked(folder: Path) -> bool:
    try:
        fd = os.open(folder / LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        return True  # its worker stopped before it took the lock, or it is half removed
    except OSError as exc:
        log.warning("claim folder %s: %s: left alone", folder, exc.strerror or exc)
        return False  # another user's worker: its claims are its own
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def resume(orphan: Path, inbound: Path, archive: Path, failed: Path) -> list[str]:
    """Put a dead worker's claimed files back into the inbound folder (or finish filing
    them away, when it had begun); the names put back."""
    returned = []
    linked_twice_is_ours = not _renames_atomically(orphan)
    for name in sorted(os.listdir(orphan)):
        path = orphan / name
        if name.startswith("."):
            continue  # ours: the lock, what was staged for a file, a probe (inputs never are)
        if filing.finish(str(path), failed, archive) is not None:
            continue
        if (
            linked_twice_is_ours
            and path.lstat().st_nlink > 1
            and _linked_in(path, [archive, failed])
        ):
            path.unlink()  # a crash between link and unlink, filing it away: already filed
            continue
        returned.append(os.path.basename(move_without_clobber(path, inbound, name)))
    for name in os.listdir(orphan):  # only ours are left
        (orphan / name).unlink()
    orphan.rmdir()
    return returned


def _linked_in(path: Path, folders: list[Path]) -> bool:
    inode = path.lstat().st_ino
    return any(filing.name_of_inode(folder, inode) is not None for folder in folders)


_atomic: dict[int, bool] = {}


def _renames_atomically(folder: Path) -> bool:
    """Whether ``rename_no_replace`` is one atomic rename on ``folder``'s file system (else
    it links and unlinks: a crash in between leaves two links)."""
    device = os.stat(folder).st_dev
    if device not in _atomic:
        probe = folder / f".rename-probe-{uuid.uuid4().hex[:8]}"
        files.write_new(probe, [])
        moved = probe.with_name(probe.name + "-moved")
        try:
            _atomic[device] = files.renamed_exclusively(probe, moved)
        finally:
            probe.unlink(missing_ok=True)
            moved.unlink(missing_ok=True)
    return _atomic[device]


def claimed(folder: Path) -> int:
    """How many files are claimed in one worker's claim folder: "in flight", defined once
    (its own lock and hidden names left out; a folder gone holds none)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    return sum(not name.startswith(".") for name in names)


def in_flight(inbound: Path) -> int:
    """Files claimed by every worker of this inbound folder, live or gone."""
    root = inbound / CLAIMED_DIR
    try:
        folders = os.listdir(root)
    except OSError:
        return 0
    return sum(claimed(root / name) for name in folders)
