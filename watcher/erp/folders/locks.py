"""Exclusive claims on names, across processes and threads, kept in the state folder.

One lock file per state folder; each name is one byte of it, locked with an
open-file-description lock (``F_OFD_SETLK``), which conflicts between processes *and*
between two opens in one process, and is released by the kernel when the holder closes it
or dies — a paused (SIGSTOPped) holder keeps its claims, a killed one loses them.
Non-blocking: a name someone else holds is simply not claimed, and the caller tries it
again later.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Final

LOCK_FILE: Final = "outbound-claims.lock"  # in the state folder, never the ERP's
_OFD_SETLK: Final = getattr(fcntl, "F_OFD_SETLK", None)
_SLOTS: Final = 2**62  # byte offsets a name hashes to (a collision only serialises two names)


def _slot(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest()) % _SLOTS


class Claims:
    """The names this holder has claimed in ``folder``; all released by ``release``."""

    def __init__(self, folder: Path) -> None:
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        self._fd: int | None = os.open(folder / LOCK_FILE, flags, 0o644)

    def take(self, names: Sequence[str]) -> set[int]:
        """Claim each name that no one else holds; the indexes claimed."""
        return {index for index, name in enumerate(names) if self._lock(_slot(name))}

    def _lock(self, offset: int) -> bool:
        assert self._fd is not None
        try:
            if _OFD_SETLK is None:  # no OFD locks (not Linux): process-wide POSIX locks
                fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset)
            else:
                # struct flock: l_type, l_whence, l_start, l_len, l_pid (0 for OFD locks)
                request = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, offset, 1, 0)
                fcntl.fcntl(self._fd, _OFD_SETLK, request)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                return False  # held by another worker (or another export in this one)
            raise
        return True

    def release(self) -> None:
        """Closing the lock file drops every claim taken through it."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
