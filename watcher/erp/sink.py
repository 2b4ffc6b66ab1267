"""The outbound folder: exported ERP files, each durable before ``write`` returns.

Each file is written to a temporary name, fsynced and renamed into place; the folder is
fsynced once per batch. ``claim`` holds the files' names exclusively (``locks.Claims``)
while an export checks the documents are still current, writes and marks them, so two
workers (or ``once`` beside ``run``) never let an older version overwrite a newer file.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import anyio

from watcher.erp import files, locks
from watcher.erp.port import OutboundFile
from watcher.settings import Settings
from watcher.stats import Trouble

log = logging.getLogger(__name__)


class FolderSink:
    """``OutboundSink`` on the outbound folder: ``{name}`` per file, durable on return."""

    def __init__(self, settings: Settings, trouble: Trouble) -> None:
        self.folder = settings.outbound_dir
        self.concurrency = settings.outbound_concurrency
        self._trouble = trouble

    async def recover(self) -> None:
        await anyio.to_thread.run_sync(files.remove_stale_temps, self.folder)

    @asynccontextmanager
    async def claim(self, outgoing: Sequence[OutboundFile]) -> AsyncIterator[set[int]]:
        """Per-name locks in the folder's lock file (``locks.Claims``), for the block."""
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
        self.folder.mkdir(parents=True, exist_ok=True)
        claims = locks.Claims(self.folder)
        return claims, claims.take(names)

    async def write(self, outgoing: Sequence[OutboundFile]) -> set[int]:
        """Write in ``concurrency`` threads, fsync the folder; the indexes not written."""
        everything = set(range(len(outgoing)))
        try:
            await anyio.to_thread.run_sync(lambda: self.folder.mkdir(parents=True, exist_ok=True))
        except OSError as exc:
            self._error("the outbound folder", exc)
            return everything
        workers = max(1, min(self.concurrency, len(outgoing)))
        failed: set[int] = set()
        async with anyio.create_task_group() as tg:
            for first in range(workers):
                part = range(first, len(outgoing), workers)
                tg.start_soon(self._write_slice, outgoing, part, failed)
        try:
            await anyio.to_thread.run_sync(files.sync_folder, self.folder)
        except OSError as exc:  # not durable yet: none of them may be marked
            self._error("the outbound folder", exc)
            return everything
        return failed

    async def _write_slice(
        self, outgoing: Sequence[OutboundFile], part: range, failed: set[int]
    ) -> None:
        failed.update(await anyio.to_thread.run_sync(self._write_files, outgoing, part))

    def _write_files(self, outgoing: Sequence[OutboundFile], part: range) -> list[int]:
        failed = []
        for index in part:
            file = outgoing[index]
            try:
                files.write_durably(self.folder, file.name, file.data)
            except OSError as exc:
                failed.append(index)
                self._error(file.name, exc)
        return failed

    def _error(self, what: str, exc: OSError) -> None:
        reason = f"cannot write {what}: {exc.strerror or exc}"
        self._trouble(what, reason)
        log.error("%s; not marked synced, tried again", reason)
