"""This worker's claim folder, and putting back what a stopped worker left claimed.

A file is claimed by atomic rename into ``<inbound>/.processing/<pid>-<random>/``, whose
lock is held for as long as the worker lives: a folder whose lock is free belonged to a
worker that is gone, and its files go back into the inbound folder at the next start (or
on to the archive or failed folder, when it had begun filing them away).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from watcher import fs as files
from watcher.core.errors import ConfigError
from watcher.erp.folders import checked, filing, layout
from watcher.fs import move_without_clobber

log = logging.getLogger(__name__)
CLAIMED_DIR: Final = layout.CLAIMED_DIR
LOCK_FILE: Final = ".lock"


@dataclass
class ClaimDir:
    """This worker's private claim folder, locked for as long as the process lives, and
    used only through its descriptor: a link swapped in for ``.processing`` (or for the
    folder itself) while the worker runs is never claimed through."""

    path: Path  # for messages; work goes through ``where``
    root_fd: int
    fd: int
    lock_fd: int

    @classmethod
    def create(cls, inbound: Path) -> ClaimDir:
        """A new claim folder; one that cannot be made stops start-up with one line."""
        root = inbound / CLAIMED_DIR
        name = f"{os.getpid()}-{os.urandom(4).hex()}"
        try:
            root_fd = open_claim_root(inbound)
        except checked.NotAFolder as exc:
            problem = f"{root} is {exc.strerror}, not the claim folder: move it away"
            raise ConfigError(f"DATA_INBOUND_DIR ({inbound}): {problem}") from None
        except OSError as exc:
            problem = f"cannot create the claim folder {root}: {exc.strerror or exc}"
            raise ConfigError(f"DATA_INBOUND_DIR ({inbound}): {problem}") from None
        try:
            return cls(root / name, root_fd, *_locked_folder(root_fd, name))
        except OSError as exc:
            os.close(root_fd)
            problem = f"cannot create the claim folder {root / name}: {exc.strerror or exc}"
            raise ConfigError(f"DATA_INBOUND_DIR ({inbound}): {problem}") from None

    @property
    def where(self) -> str:
        """The folder's path through its descriptor (no link on the way is followed)."""
        return checked.fd_path(self.fd, self.path)

    def claim(self, source: str) -> str | None:
        """Move ``source`` in by atomic rename (through the folder's descriptor); the path
        it has here, or None if another worker took it first."""
        name = os.path.basename(source)
        try:
            return move_without_clobber(source, self.where, name, folder_fd=self.fd)
        except FileNotFoundError:
            if not os.path.lexists(source):
                return None  # another worker (or the ERP) took it first
            self._recreate()  # our folder went with a removed inbound folder
            return move_without_clobber(source, self.where, name, folder_fd=self.fd)

    def _recreate(self) -> None:
        self._close()
        inbound = self.path.parent.parent
        self.root_fd = open_claim_root(inbound)
        self.fd, self.lock_fd = _locked_folder(self.root_fd, self.path.name)

    def held(self) -> int:
        """How many files are claimed here now."""
        return claimed(self.where)

    def names(self) -> set[str]:
        """The files claimed here now (its lock and hidden names left out)."""
        try:
            return {name for name in os.listdir(self.where) if not name.startswith(".")}
        except OSError:
            return set()

    def release(self) -> None:
        """Give the folder up; an empty one is removed, one with files waits for a resume."""
        try:
            if os.listdir(self.where) == [LOCK_FILE]:
                os.unlink(LOCK_FILE, dir_fd=self.fd)
                os.rmdir(self.path.name, dir_fd=self.root_fd)
        except OSError:
            pass  # gone with a removed inbound folder, or refilled: the next start sees to it
        self._close()

    def _close(self) -> None:
        for fd in (self.lock_fd, self.fd, self.root_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


def open_claim_root(inbound: Path) -> int:
    """``<inbound>/.processing`` (made if missing), opened without following a link."""
    inbound_fd = os.open(inbound, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return checked.open_dir_at(inbound_fd, CLAIMED_DIR, create=True)
    finally:
        os.close(inbound_fd)


def _locked_folder(root_fd: int, name: str) -> tuple[int, int]:
    """Create the claim folder ``name`` and hold its lock for as long as this process
    lives; its descriptor and the lock's."""
    fd = checked.open_dir_at(root_fd, name, create=True)
    try:
        flags = os.O_CREAT | os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW
        lock_fd = os.open(LOCK_FILE, flags, 0o644, dir_fd=fd)
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException:
        os.close(fd)
        raise
    return fd, lock_fd


@dataclass
class Orphan:
    """A stopped worker's claim folder, open without following a link; ``path`` for messages."""

    path: Path
    root_fd: int
    fd: int

    @property
    def where(self) -> str:
        return checked.fd_path(self.fd, self.path)

    def remove(self) -> None:
        """Once only our own hidden files are left: those, the lock last, then the folder."""
        names = sorted(os.listdir(self.where), key=lambda name: name == LOCK_FILE)
        for name in names:
            os.unlink(name, dir_fd=self.fd)
        os.rmdir(self.path.name, dir_fd=self.root_fd)

    def close(self) -> None:
        os.close(self.fd)


@contextlib.contextmanager
def orphaned_claims(inbound: Path) -> Iterator[list[Orphan]]:
    """Claim folders whose worker is gone (their lock is free), for as long as the block
    runs; anything that is not what a worker of ours made is one line and left alone."""
    root = inbound / CLAIMED_DIR
    try:
        root_fd = open_claim_root(inbound)
    except OSError as exc:
        log.warning("%s: %s: left alone", root, exc.strerror or exc)
        yield []
        return
    orphans: list[Orphan] = []
    try:
        if not checked.made_by_us(root_fd):
            log.warning("%s: not made by this user: its claims are left alone", root)
        else:
            orphans = [
                o for name in sorted(os.listdir(root_fd)) if (o := _orphan(root, root_fd, name))
            ]
        yield orphans
    finally:
        for orphan in orphans:
            orphan.close()
        os.close(root_fd)


def _orphan(root: Path, root_fd: int, name: str) -> Orphan | None:
    """The claim folder ``name`` if its worker is gone; None if alive or not ours (said)."""
    try:
        fd = checked.open_dir_at(root_fd, name)
    except OSError as exc:
        log.warning("%s: %s, not a claim folder: left alone", root / name, exc.strerror or exc)
        return None
    if (problem := _not_ours(fd)) is None and _unlocked(root / name, fd):
        return Orphan(root / name, root_fd, fd)
    if problem:
        log.warning("%s: not a claim folder (%s): left alone", root / name, problem)
    os.close(fd)
    return None


def _not_ours(fd: int) -> str | None:
    """Why the folder open as ``fd`` is not a claim folder a worker of ours made, or None."""
    if not checked.made_by_us(fd):
        return "not made by this user"
    try:
        info = os.stat(LOCK_FILE, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return f"no {LOCK_FILE} file"
    return None if stat.S_ISREG(info.st_mode) else f"its {LOCK_FILE} is no file"


def _unlocked(folder: Path, fd: int) -> bool:
    try:
        lock = os.open(LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW, dir_fd=fd)
    except OSError as exc:
        log.warning("claim folder %s: %s: left alone", folder, exc.strerror or exc)
        return False  # another user's worker: its claims are its own
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(lock)


def resume(orphan: Orphan, inbound: Path, archive: Path, failed: Path) -> list[str]:
    """Put a dead worker's claimed files back into the inbound folder (or finish filing
    them away, when it had begun); the names put back."""
    returned = []
    where = orphan.where
    linked_twice_is_ours = not _renames_atomically(Path(where))
    for name in sorted(os.listdir(where)):
        path = Path(where) / name
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
    orphan.remove()  # only ours are left
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
        probe = folder / f".rename-probe-{os.urandom(4).hex()}"
        files.write_new(probe, [])
        moved = probe.with_name(probe.name + "-moved")
        try:
            _atomic[device] = files.renamed_exclusively(probe, moved)
        finally:
            probe.unlink(missing_ok=True)
            moved.unlink(missing_ok=True)
    return _atomic[device]


def claimed(folder: str | Path) -> int:
    """How many files are claimed in one worker's claim folder: "in flight", defined once
    (its own lock and hidden names left out; a folder gone holds none)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    return sum(not name.startswith(".") for name in names)


def in_flight(inbound: Path) -> int:
    """Files claimed by every worker of this inbound folder, live or gone; a planted link
    (the claim area or a folder in it) is not counted through."""
    return sum(claimed(folder) for folder in _claim_folders(inbound))


def oldest_claimed(inbound: Path) -> float | None:
    """When the longest-claimed file of every worker was claimed (its ``ctime``, which the
    claim's rename sets; epoch seconds), or None: for a reader outside the worker, which
    does not know when it landed, a lag at least that long."""
    moments = []
    for folder in _claim_folders(inbound):
        with contextlib.suppress(OSError):  # filed away and removed meanwhile
            moments.append(layout.oldest_landed(folder))
    return min((m for m in moments if m is not None), default=None)


def _claim_folders(inbound: Path) -> list[Path]:
    root = inbound / CLAIMED_DIR
    if root.is_symlink():
        return []
    try:
        names = os.listdir(root)
    except OSError:
        return []
    return [root / name for name in names if not (root / name).is_symlink()]
