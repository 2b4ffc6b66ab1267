"""File primitives, blocking: read, claim, move, write; never clobber, durable when asked.

Invariants: a file is only ever renamed or linked, never overwritten or deleted before a
copy of it exists elsewhere; names in other folders are chosen without clobbering; no
name taken from file contents is ever joined to a folder.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import stat
import zlib
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final

AT_FDCWD: Final = -100
NAME_MAX: Final = 255  # bytes in one file name (ext4, xfs, btrfs, tmpfs)
StrPath = str | os.PathLike[str]


_UNLOADED: Final[Any] = object()
# libc's renameat2, syncfs (one call makes a file system's writes durable) and inotify, None
# where this libc has none; ctypes loads on first use (``_libc``), not at import
_renameat2: Any = _UNLOADED
_syncfs: Any = _UNLOADED
_inotify_init1: Any = _UNLOADED
_inotify_add_watch: Any = _UNLOADED
IN_MODIFY: Final = 0x2


def _libc(name: str) -> Any:
    call = globals()[name]
    if call is _UNLOADED:
        import ctypes

        call = getattr(ctypes.CDLL(None, use_errno=True), name.lstrip("_"), None)
        globals()[name] = call
    return call


def _errno() -> int:
    import ctypes

    return ctypes.get_errno()


class RefusedFile(OSError):
    """A file not to be read: its message says why."""


class NotRegularFile(RefusedFile):
    """A symlink, FIFO, socket or device where a file was expected."""


class FileTooLarge(RefusedFile):
    """Larger than the worker may hold in memory (``INBOUND_MAX_FILE_MB``)."""


def read_regular(path: StrPath, limit: int) -> tuple[bytes, os.stat_result]:
    """Read a regular file of at most ``limit`` bytes, never following a symlink or
    blocking on a FIFO."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotRegularFile("not a regular file (symbolic link): not read") from None
        if exc.errno == errno.ENXIO:  # what opening a UNIX socket says: name what it is
            kind = _kind(os.lstat(path).st_mode)
            raise NotRegularFile(f"not a regular file ({kind}): not read") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFile(f"not a regular file ({_kind(info.st_mode)}): not read")
        if info.st_size > limit:
            raise FileTooLarge(f"file too large: {info.st_size:,} bytes, the limit is {limit:,}")
        data = os.read(fd, info.st_size + 1)
        if len(data) <= info.st_size:
            return data, info
        chunks = [data]  # it grew while we read: take the rest too, up to the limit
        while (chunk := os.read(fd, 1 << 20)) and sum(map(len, chunks)) <= limit:
            chunks.append(chunk)
        if sum(map(len, chunks)) > limit:
            raise FileTooLarge(f"file too large: over the limit of {limit:,} bytes")
        return b"".join(chunks), info
    finally:
        os.close(fd)


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISLNK, "symbolic link"),
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISSOCK, "socket"),
    ):
        if test(mode):
            return name
    if stat.S_ISDIR(mode):
        return "directory"
    return "device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "special file"


def fitted(base: str, tail: str = "", room: int = 0) -> str:
    """``base + tail`` in at most ``NAME_MAX - room`` bytes: ``base`` is cut short (between
    two characters) when it must be, ``tail`` is kept whole. ``room``: for what is added to
    the name later (a report's ``.error.json``)."""
    if (len(base) + len(tail)) * 4 <= NAME_MAX - room:
        return base + tail  # fits however it encodes (at most 4 bytes a character)
    limit = NAME_MAX - room - len(os.fsencode(tail))
    raw = os.fsencode(base)
    if len(raw) <= limit:
        return base + tail
    while limit > 0 and raw[limit] & 0xC0 == 0x80:  # a UTF-8 continuation byte
        limit -= 1
    return os.fsdecode(raw[:limit]) + tail


def split_name(name: str) -> tuple[str, str]:
    """``a.b.json`` → (``a.b``, ``.json``): the part a derived name may shorten, and its tail."""
    base, dot, extension = name.rpartition(".")
    return (base, dot + extension) if base else (name, "")


def candidate_names(base: str, tail: str, room: int = 0) -> Iterator[str]:
    """``base + tail`` fitted, then the same with a unique suffix before the tail."""
    yield fitted(base, tail, room)
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S%f")
    for counter in range(1, 1_000_000):
        yield fitted(base, f".{stamp}-{counter}{tail}", room)
    raise FileExistsError(errno.EEXIST, "no free name", base + tail)


def unique_name(folder: StrPath, name: str, room: int = 0) -> str:
    """``folder/name``, or a suffixed name when that exists (the rename rechecks atomically);
    always short enough for the file system, with ``room`` bytes to spare."""
    return os.path.join(folder, _free_name(name, room, folder, None))


def _free_name(name: str, room: int, folder: StrPath, folder_fd: int | None) -> str:
    """The first of ``candidate_names`` that nothing in the folder holds (through
    ``folder_fd`` when given)."""
    for candidate in candidate_names(*split_name(name), room):
        try:
            if folder_fd is None:
                os.lstat(os.path.join(folder, candidate))
            else:
                os.lstat(candidate, dir_fd=folder_fd)
        except OSError:
            return candidate
    raise AssertionError("unreachable: candidate_names raises when it runs out")


def move_without_clobber(
    source: StrPath,
    folder: StrPath,
    name: str,
    room: int = 0,
    *,
    source_fd: int = AT_FDCWD,
    folder_fd: int | None = None,
) -> str:
    """Move ``source`` to ``folder/name``, or to a suffixed name if taken; never overwrite;
    the path it now has.

    ``source_fd``: ``source`` is a name in the folder open as it. ``folder_fd``: the move
    goes through that descriptor of ``folder`` (then ``folder`` only names the result). A
    claim folder is used so: no link planted on the way is followed, and no path through
    ``/proc`` is resolved again for each file. Paths are plain strings here: this runs
    twice per file on the hot path.
    """
    fits = len(name) * 4 <= NAME_MAX - room  # however it encodes: no need to split it
    target = name if fits else fitted(*split_name(name), room)
    while True:
        try:
            if folder_fd is None:
                rename_no_replace(source, os.path.join(folder, target), source_fd)
            else:
                rename_no_replace(source, target, source_fd, folder_fd)
            return os.path.join(folder, target)
        except FileExistsError:
            target = _free_name(name, room, folder, folder_fd)


def rename_no_replace(
    source: StrPath, target: StrPath, source_fd: int = AT_FDCWD, target_fd: int = AT_FDCWD
) -> None:
    """Atomic rename that fails with ``FileExistsError`` rather than replace ``target``
    (each path relative to its folder descriptor, when given).

    Linux's renameat2(RENAME_NOREPLACE) does it in one call; where the file system does
    not support it, link then unlink (a crash in between leaves two links, which
    ``resume`` recognises).
    """
    if not renamed_exclusively(source, target, source_fd, target_fd):
        dirs = {"src_dir_fd": _fd(source_fd), "dst_dir_fd": _fd(target_fd)}
        os.link(source, target, **dirs, follow_symlinks=False)
        os.unlink(source, dir_fd=_fd(source_fd))


def _fd(dir_fd: int) -> int | None:
    """``os``'s spelling of a folder descriptor: None for the working folder."""
    return None if dir_fd == AT_FDCWD else dir_fd


@functools.cache
def _host_tag() -> str:
    """This host, in 8 hex digits: with a pid, who wrote a temp file (``temp_writer_gone``)."""
    return "%08x" % zlib.crc32(os.uname().nodename.encode())  # noqa: UP031 (no format spec)


def write_temp(folder: StrPath, name: str, data: bytes, durable: bool = False) -> str:
    """A new file ``.{name}.{host}-{pid}-{random}.tmp`` in ``folder`` holding ``data``; its
    path.

    Created with ``O_EXCL|O_NOFOLLOW`` under a name no one can predict: a link or file
    planted in our folders is never followed or written through. Removed again if the
    write fails (a full disk must not fill up with our leftovers). The writer in the name
    lets a crash's leftovers be told from a file another worker is writing now.
    """
    writer = f"{_host_tag()}-{os.getpid()}-{os.urandom(4).hex()}"
    temp = os.path.join(folder, f".{name}.{writer}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(temp, flags, 0o644)
    try:
        write_all(fd, data)
        if durable:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        remove_temp(temp)
        raise
    os.close(fd)
    return temp


_TEMP_WRITER = re.compile(r"\.([0-9a-f]{8})-([0-9]+)-[0-9a-f]{8}\.tmp$")


def temp_writer_gone(name: str) -> bool:
    """Whether the temp file ``name`` was written by a process of this host that is no
    longer running (a crash's leftover). A pid running again (reused) or another host's
    writer count as alive: their files wait for the age rule instead."""
    found = _TEMP_WRITER.search(name)
    if found is None or found[1] != _host_tag():
        return False
    try:
        os.kill(int(found[2]), 0)
    except ProcessLookupError:
        return True
    except (OSError, OverflowError):
        return False  # someone else's process (EPERM), or no pid at all
    return False


def write_all(fd: int, data: bytes) -> None:
    """All of ``data`` to ``fd`` with plain ``os.write`` calls: a file written whole at
    once needs no buffered writer (one made per outbound file cost more than the write),
    but a write may take only part (a disk nearly full), and the rest must follow."""
    written = os.write(fd, data)
    if written < len(data):
        rest = memoryview(data)[written:]
        while rest:
            rest = rest[os.write(fd, rest) :]


def replace_with(temp: str, target: StrPath) -> None:
    """Rename ``temp`` over ``target``; on failure (a directory there, a full disk) the
    temp file is removed rather than left to pile up with every retry."""
    try:
        os.replace(temp, target)
    except BaseException:
        remove_temp(temp)
        raise


def remove_temp(path: str) -> None:
    # if even this fails, ``remove_stale_temps`` clears it at the next start
    with contextlib.suppress(OSError):
        os.unlink(path)


def renamed_exclusively(
    source: StrPath, target: StrPath, source_fd: int = AT_FDCWD, target_fd: int = AT_FDCWD
) -> bool:
    """renameat2(RENAME_NOREPLACE); False where this file system (or libc) has no such call."""
    renameat2 = _libc("_renameat2")
    if renameat2 is None:
        return False
    if renameat2(source_fd, os.fsencode(source), target_fd, os.fsencode(target), 1) == 0:
        return True
    code = _errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(source), None, str(target))


def write_new(path: StrPath, chunks: Sequence[bytes]) -> None:
    """Create ``path`` (it must not exist, and is never a link followed) holding ``chunks``;
    on failure (a full disk) nothing is left behind."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, 0o644)
    try:
        for chunk in chunks:
            write_all(fd, chunk)
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise
    os.close(fd)


def stages_with_fsync() -> bool:
    """Whether ``stage_file`` waits on the disk (an fsync each: no ``syncfs`` here)."""
    return _libc("_syncfs") is None


def stage_file(folder: StrPath, name: str, data: bytes) -> str:
    """A temp file holding ``data`` beside ``folder/name``, to be made durable together with
    the rest of its batch (``make_durable``), then renamed into place; its path. Where the
    system has no ``syncfs``, it is fsynced now instead."""
    return write_temp(folder, name, data, durable=stages_with_fsync())


def make_durable(folder_fd: int) -> None:
    """Every file staged since ``folder_fd`` was opened is on disk: one ``syncfs`` of the
    folder's file system for the whole batch rather than an fsync each (the data of a
    thousand files costs about one flush, not a thousand). It reports a write-back error
    of any file written since the descriptor was opened: then none may be relied on."""
    syncfs = _libc("_syncfs")
    if syncfs is not None and syncfs(folder_fd) != 0:
        code = _errno()
        raise OSError(code, f"cannot make the files durable: {os.strerror(code)}")


def open_folder(folder: Path) -> int:
    """The folder's descriptor (created if missing), for ``make_durable`` and its fsync."""
    folder.mkdir(parents=True, exist_ok=True)
    return os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def disk_space(folders: dict[str, Path]) -> dict[str, tuple[int, int]]:
    """Free and total bytes of the file system holding each folder (one that cannot be
    asked, e.g. not created yet, is left out)."""
    space = {}
    for name, folder in folders.items():
        try:
            usage = os.statvfs(folder)
        except OSError:
            continue
        space[name] = (usage.f_bavail * usage.f_frsize, usage.f_blocks * usage.f_frsize)
    return space


def watch_writes(path: StrPath) -> int | None:
    """A descriptor that turns readable whenever ``path`` is written to (inotify), for an
    event loop to wait on at no cost while nothing happens; None where that cannot be
    (no inotify, no such file, the watch limit reached): then the caller polls."""
    init, add = _libc("_inotify_init1"), _libc("_inotify_add_watch")
    if init is None or add is None:
        return None
    fd = int(init(os.O_NONBLOCK | os.O_CLOEXEC))
    if fd < 0:
        return None
    if add(fd, os.fsencode(path), IN_MODIFY) < 0:
        os.close(fd)
        return None
    return fd


def drain_events(fd: int) -> bool:
    """Read away what ``watch_writes``'s descriptor holds (its events only say "written");
    whether there was any."""
    read = False
    with contextlib.suppress(BlockingIOError):
        while os.read(fd, 1 << 16):
            read = True
    return read
