"""The outbound folder: exported ERP files, each durable before ``write`` returns.

Each file of a batch is written to a temporary name; then the data of all of them is made
durable at once (``syncfs``; an fsync each where there is none), each is renamed into
place, and the folder is fsynced. ``claim`` holds the files' names (``locks.Claims``, in the
state folder: the outbound folder is the ERP's and holds only its files) while an export
checks, writes and marks them: it saves duplicate work between workers sharing the state
folder, but correctness comes from the store (``watcher.sync.repair``), never this lock.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Final

import anyio

from watcher import fs as files
from watcher.core.settings import Settings
from watcher.erp.folders import layout, locks
from watcher.erp.port import OutboundFile, Trouble

log = logging.getLogger(__name__)
MAX_READ: Final = 1 << 20  # an outbound file is one order: anything larger is not ours
LISTING_FROM: Final = 100  # names read at once from which the folder is listed first


class FolderSink:
    """``OutboundSink`` on the outbound folder: ``{name}`` per file, durable on return."""

    def __init__(self, settings: Settings, trouble: Trouble) -> None:
        self.folder = settings.outbound_dir
        self.claims_in = settings.state_dir
        self.concurrency = settings.outbound_concurrency
        self._trouble = trouble

    async def recover(self) -> None:
        await anyio.to_thread.run_sync(layout.remove_stale_temps, self.folder)

    @asynccontextmanager
    async def claim(self, outgoing: Sequence[OutboundFile]) -> AsyncIterator[set[int]]:
        """Per-name locks in the state folder's lock file (``locks.Claims``), for the block."""
        held: tuple[locks.Claims | None, set[int]]
        try:
            held = await anyio.to_thread.run_sync(self._claims, [f.name for f in outgoing])
        except OSError as exc:
            self._error("the outbound folder", exc)
            held = None, set()
        try:
            yield held[1]
        finally:
            if held[0] is not None:
                held[0].release()

    def _claims(self, names: list[str]) -> tuple[locks.Claims, set[int]]:
        self.claims_in.mkdir(parents=True, exist_ok=True)
        claims = locks.Claims(self.claims_in)
        return claims, claims.take(names)

    async def read(self, names: Sequence[str]) -> list[bytes | None]:
        """What each named file holds now; None where there is none (taken by the ERP)."""
        return await anyio.to_thread.run_sync(self._read_all, names)

    def _read_all(self, names: Sequence[str]) -> list[bytes | None]:
        """Many names (a large inbound batch): one listing first, and only those there are
        opened (a listing of an emptied folder is cheaper than 100,000 failed opens)."""
        there = self._listing() if len(names) > LISTING_FROM else None
        found: list[bytes | None] = []
        for name in names:
            if there is not None and name not in there:
                found.append(None)
                continue
            try:
                found.append(files.read_regular(self.folder / name, MAX_READ)[0])
            except (FileNotFoundError, NotADirectoryError):
                found.append(None)
            except files.RefusedFile:
                found.append(b"")  # a link, a FIFO, a huge file under our name: replaced
            except OSError as exc:
                self._error(name, exc)
                found.append(None)
        return found

    def _listing(self) -> set[str] | None:
        try:
            return set(os.listdir(self.folder))
        except OSError:
            return None  # then each name is tried

    async def withdraw(self, names: Sequence[str]) -> set[int]:
        """Unlink each name (never what a link points at); the folder fsynced once."""
        return await anyio.to_thread.run_sync(self._withdraw_all, names)

    def _withdraw_all(self, names: Sequence[str]) -> set[int]:
        failed = set()
        for index, name in enumerate(names):
            try:
                os.unlink(self.folder / name)
            except FileNotFoundError:
                pass  # the ERP took it meanwhile
            except OSError as exc:
                failed.add(index)
                self._error(name, exc, "withdraw")
        with contextlib.suppress(OSError):  # durable when it can be: nothing is marked on it
            folder_fd = files.open_folder(self.folder)
            try:
                os.fsync(folder_fd)
            finally:
                os.close(folder_fd)
        return failed

    async def write(self, outgoing: Sequence[OutboundFile]) -> set[int]:
        """Stage, make durable, rename, fsync the folder; the indexes not written (none of
        them renamed unless all the data is durable). Staging takes ``concurrency`` threads
        only where each file is fsynced as it is staged: otherwise it never waits on the
        disk, and threads would only hand the GIL back and forth (bench, 10,000 files:
        2.3 s in four threads, 1.9 s in one)."""
        everything = set(range(len(outgoing)))
        try:
            # opened first: the sync reports write-back errors from this point on
            folder_fd = await anyio.to_thread.run_sync(files.open_folder, self.folder)
        except OSError as exc:
            self._error("the outbound folder", exc)
            return everything
        staged: dict[int, str] = {}
        failed: set[int] = set()
        try:
            parallel = self.concurrency if files.stages_with_fsync() else 1
            workers = max(1, min(parallel, len(outgoing)))
            async with anyio.create_task_group() as tg:
                for first in range(workers):
                    part = range(first, len(outgoing), workers)
                    tg.start_soon(
                        anyio.to_thread.run_sync, self._stage_files, outgoing, part, staged, failed
                    )
            failed |= await anyio.to_thread.run_sync(self._install, folder_fd, outgoing, staged)
        except OSError as exc:  # not durable: none of them may be marked
            self._error("the outbound folder", exc)
            return everything
        finally:
            with anyio.CancelScope(shield=True):  # a stop must not leak the descriptor
                await anyio.to_thread.run_sync(self._close, folder_fd, staged)
        return failed

    def _stage_files(
        self,
        outgoing: Sequence[OutboundFile],
        part: range,
        staged: dict[int, str],
        failed: set[int],
    ) -> None:
        for index in part:
            file = outgoing[index]
            try:
                staged[index] = files.stage_file(self.folder, file.name, file.data)
            except OSError as exc:
                failed.add(index)
                self._error(file.name, exc)

    def _install(
        self, folder_fd: int, outgoing: Sequence[OutboundFile], staged: dict[int, str]
    ) -> set[int]:
        """Make the staged files durable, rename each into place, fsync the folder."""
        files.make_durable(folder_fd)
        failed = set()
        for index in sorted(staged):
            name = outgoing[index].name
            try:
                files.replace_with(staged.pop(index), os.path.join(self.folder, name))
            except OSError as exc:
                failed.add(index)
                self._error(name, exc)
        os.fsync(folder_fd)
        return failed

    @staticmethod
    def _close(folder_fd: int, staged: dict[int, str]) -> None:
        """Close the folder; remove what is still staged (a batch that failed as a whole)."""
        os.close(folder_fd)
        for temp in staged.values():
            files.remove_temp(temp)

    def _error(self, what: str, exc: OSError, doing: str = "write") -> None:
        reason = f"cannot {doing} {what}: {exc.strerror or exc}"
        self._trouble(what, reason)
        after = "not marked synced, tried again" if doing == "write" else "left as it is"
        log.error("%s; %s", reason, after)
