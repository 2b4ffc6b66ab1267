"""Folders inside the data folders opened without following a link, and the data folders
that must not lead into the inbound folder.

Anyone who can drop a file can plant a link: a folder the worker moves files from or into
is opened relative to its parent's descriptor with ``O_NOFOLLOW|O_DIRECTORY`` and then
used through that descriptor, so a link planted (or swapped in) later is never followed.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from watcher.core.errors import ConfigError

DIR_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PROC_FDS: Final = "/proc/self/fd"


class NotAFolder(OSError):
    """An entry where a folder of ours belongs is something else: its message says what."""


def open_dir_at(parent_fd: int, name: str, create: bool = False) -> int:
    """The folder ``name`` in the folder open as ``parent_fd``, never through a link
    (``NotAFolder`` says what is there instead); made first when ``create``."""
    if create:
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o755, dir_fd=parent_fd)
    try:
        return os.open(name, DIR_FLAGS, dir_fd=parent_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise NotAFolder(exc.errno, f"a {kind_at(parent_fd, name)}") from None
        raise


def kind_at(parent_fd: int, name: str) -> str:
    """What ``name`` is in the folder ``parent_fd``, in words."""
    try:
        mode = os.stat(name, dir_fd=parent_fd, follow_symlinks=False).st_mode
    except OSError:
        return "vanished entry"
    if stat.S_ISLNK(mode):
        return "symbolic link"
    return "file" if stat.S_ISREG(mode) else "folder" if stat.S_ISDIR(mode) else "special file"


def fd_path(fd: int, shown: Path) -> str:
    """A path to the folder open as ``fd`` that no rename or planted link can redirect (the
    kernel's name for the descriptor); ``shown`` where the system has no ``/proc``."""
    if _has_proc_fds():
        return f"{_PROC_FDS}/{fd}"
    return os.fspath(shown)  # pragma: no cover - Linux always has it


@functools.cache
def _has_proc_fds() -> bool:
    """Asked once: a claim names its folder this way for every file."""
    return os.path.isdir(_PROC_FDS)


def made_by_us(fd: int) -> bool:
    """Whether the folder open as ``fd`` belongs to this process's user."""
    return os.fstat(fd).st_uid == os.geteuid()


def refuse_aliases(inbound: tuple[str, Path], others: Sequence[tuple[str, Path]]) -> None:
    """A folder files are filed into that is (through a link) the inbound folder, or inside
    it, would feed the worker its own files: refused at start with one line."""
    inside = Path(os.path.realpath(inbound[1]))
    identity = _identity(inside)
    for variable, folder in others:
        real = Path(os.path.realpath(folder))
        if real == inside or _identity(real) == identity:
            problem = "is the inbound folder"
        elif inside in real.parents:
            problem = "is inside the inbound folder"
        else:
            continue
        via = f" (it leads to {real})" if real != folder.absolute() else ""
        raise ConfigError(
            f"{variable} ({folder}){via} {problem} {inbound[0]} ({inbound[1]}):"
            " give it a folder of its own"
        )


def _identity(folder: Path) -> tuple[int, int]:
    info = folder.stat()
    return info.st_dev, info.st_ino
