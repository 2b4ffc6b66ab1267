"""This worker's claim folder, and putting back what a stopped worker left claimed.

A file is claimed by atomic rename into ``<inbound>/.processing/<pid>-<random>/``, whose
lock is held for as long as the worker lives: a folder whose lock is free belonged to a
worker that is gone, and its files go back into the inbound folder at the next start.
"""

from __future__ import annotations

import fcntl
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from watcher.erp.files import move_without_clobber

CLAIMED_DIR: Final = ".processing"
LOCK_FILE: Final = ".lock"


@dataclass
class ClaimDir:
    """This worker's private claim folder, locked for as long as the process lives."""

    path: Path
    lock_fd: int

    @classmethod
    def create(cls, inbound: Path) -> ClaimDir:
        path = inbound / CLAIMED_DIR / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        return cls(path, _locked_folder(path))

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
    fd = os.open(path / LOCK_FILE, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def orphaned_claims(inbound: Path) -> list[Path]:
    """Claim folders whose worker is gone (their lock is free)."""
    root = inbound / CLAIMED_DIR
    if not root.is_dir():
        return []
    orphans = []
    for folder in root.iterdir():
        try:
            fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            orphans.append(folder)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            orphans.append(folder)
        except BlockingIOError:
            pass
        finally:
            os.close(fd)
    return orphans


def resume(orphan: Path, inbound: Path, done: list[Path]) -> list[str]:
    """Put a dead worker's claimed files back into the inbound folder; names put back.

    A claimed file with a second link was already archived or quarantined before the
    crash (``done`` folders hold the other link): only the claimed link is dropped.
    """
    returned = []
    for path in sorted(orphan.iterdir()):
        if path.name == LOCK_FILE:
            continue
        if path.lstat().st_nlink > 1 and _linked_in(path, done):
            path.unlink()
            continue
        returned.append(os.path.basename(move_without_clobber(path, inbound, path.name)))
    (orphan / LOCK_FILE).unlink(missing_ok=True)
    orphan.rmdir()
    return returned


def _linked_in(path: Path, folders: list[Path]) -> bool:
    inode = path.lstat().st_ino
    for folder in folders:
        with os.scandir(folder) as entries:
            if any(entry.inode() == inode for entry in entries):
                return True
    return False
