"""The folder exchange: ERP files come in through one folder and go out through another.

``FolderSource`` claims each file by atomic rename into this worker's locked claim folder,
leaves a file that is still being written until it has been quiet for the settle time,
archives used files, quarantines unusable ones with a ``.error.json`` report, and puts
back what a stopped worker left claimed. ``FolderSink`` writes each file to a temporary
name, fsyncs it, renames it into place and fsyncs the folder before it returns. Blocking
work runs in worker threads, one hop per batch.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Final

import anyio
from watchfiles import Change, awatch

from watcher.erp import claims, files
from watcher.erp.port import FileVerdict, Judge, OutboundFile, Taken
from watcher.errors import MalformedFile, RejectedInput
from watcher.settings import Settings
from watcher.stats import Trouble

log = logging.getLogger(__name__)
# watchfiles: report a change after at most DEBOUNCE_MS, checking every STEP_MS (the
# check costs a wake-up of its thread: STEP_MS trades idle CPU against latency)
DEBOUNCE_MS: Final = 30
STEP_MS: Final = 20


class FolderSource:
    """``InboundSource`` on the inbound, archive and failed folders."""

    def __init__(self, settings: Settings, trouble: Trouble) -> None:
        self.settings = settings
        self._trouble = trouble
        self._claims: claims.ClaimDir | None = None
        self.deferred: dict[str, float] = {}  # name → look again at (epoch s)

    async def open(self) -> int:
        return await anyio.to_thread.run_sync(self._open)

    def _open(self) -> int:
        s = self.settings
        inbound = ("DATA_INBOUND_DIR", s.inbound_dir)
        others = (("DATA_ARCHIVE_DIR", s.archive_dir), ("DATA_FAILED_DIR", s.failed_dir))
        files.prepare((inbound, *others))
        files.same_file_system(inbound, others)
        self._claims = claims.ClaimDir.create(s.inbound_dir)
        files.remove_stale_temps(s.failed_dir)  # reports cut short by a crash
        resumed = 0
        for orphan in claims.orphaned_claims(s.inbound_dir):
            resumed += len(claims.resume(orphan, s.inbound_dir, [s.archive_dir, s.failed_dir]))
        return resumed

    async def close(self) -> None:
        """Release the claim folder (a later start resumes anything left in it)."""
        if self._claims is not None:
            self._claims.release()
            self._claims = None

    @property
    def _claim_dir(self) -> claims.ClaimDir:
        if self._claims is None:
            raise RuntimeError("the folder source is not open")
        return self._claims

    async def watch(self, wake: Callable[[], None], stop: anyio.Event) -> None:
        """Turn file events into wake-ups; survive the folder vanishing for a while."""
        while not stop.is_set():
            try:
                async for _ in awatch(
                    self.settings.inbound_dir,
                    watch_filter=_wanted,
                    debounce=DEBOUNCE_MS,
                    step=STEP_MS,
                    stop_event=stop,
                    recursive=False,
                    force_polling=self.settings.force_polling or None,
                    ignore_permission_denied=True,
                ):
                    wake()
            except Exception as exc:
                log.error("cannot watch %s: %s", self.settings.inbound_dir, exc)
            with anyio.move_on_after(self.settings.rescan_seconds):
                await stop.wait()

    def next_look(self) -> float | None:
        return min(self.deferred.values(), default=None)

    async def waiting(self) -> list[str]:
        """Names to take now: the listing less files still settling."""
        try:
            names = await anyio.to_thread.run_sync(files.scan, self.settings.inbound_dir)
        except OSError as exc:
            self._folder_trouble(exc)
            return []
        now = time.time()
        present = set(names)
        self.deferred = {n: at for n, at in self.deferred.items() if n in present}
        return [n for n in names if self.deferred.get(n, 0.0) <= now]

    def _folder_trouble(self, exc: OSError) -> None:
        inbound = self.settings.inbound_dir
        message = f"inbound folder {inbound}: {exc.filename or inbound}: {exc.strerror or exc}"
        log.error("%s; the file waits and is tried again", message)
        self._trouble(str(inbound), message)

    async def take(self, names: Sequence[str], judge: Judge) -> list[Taken]:
        return await anyio.to_thread.run_sync(self._take, names, judge)

    def _take(self, names: Sequence[str], judge: Judge) -> list[Taken]:
        """Read, judge and claim each file (blocking: runs in a worker thread)."""
        now = time.time()
        taken = []
        for name in names:
            item = self._take_one(name, now, judge)
            if item is not None:
                taken.append(item)
        return taken

    def _take_one(self, name: str, now: float, judge: Judge) -> Taken | None:
        source = os.path.join(self.settings.inbound_dir, name)
        try:
            data, info = files.read_regular(source, self.settings.max_file_bytes)
        except FileNotFoundError:
            return None  # gone: another worker claimed it, or the ERP took it back
        except OSError as exc:
            return self._claimed(source, now, judge, error=RejectedInput(_os_reason(exc)))
        try:
            verdict = judge(data)
        except MalformedFile as exc:
            if now - info.st_mtime < self.settings.settle_seconds:
                self.deferred[name] = info.st_mtime + self.settings.settle_seconds
                return None  # maybe still being written: judge it once it has been quiet
            return self._claimed(source, info.st_ctime, judge, error=exc)
        except RejectedInput as exc:
            return self._claimed(source, info.st_ctime, judge, error=exc)
        return self._claimed(source, info.st_ctime, judge, verdict=verdict, inode=info.st_ino)

    def _claimed(
        self,
        source: str,
        landed: float,
        judge: Judge,
        *,
        verdict: FileVerdict | None = None,
        error: RejectedInput | None = None,
        inode: int | None = None,
    ) -> Taken | None:
        name = os.path.basename(source)
        self.deferred.pop(name, None)
        try:
            path = self._claim_dir.claim(source)
        except OSError as exc:  # e.g. the folder made read-only: the file waits where it is
            self._folder_trouble(exc)
            return None
        if path is None:
            return None
        if inode is not None and os.lstat(path).st_ino != inode:
            # replaced between our read and the claim: judge what we actually hold
            return self._retake(path, name, landed, judge)
        return Taken(name, path, landed, verdict, error)

    def _retake(self, path: str, name: str, landed: float, judge: Judge) -> Taken:
        try:
            data = files.read_regular(path, self.settings.max_file_bytes)[0]
            return Taken(name, path, landed, verdict=judge(data))
        except RejectedInput as exc:
            return Taken(name, path, landed, error=exc)
        except OSError as exc:
            return Taken(name, path, landed, error=RejectedInput(_os_reason(exc)))

    async def file_away(self, taken: Sequence[Taken], now: datetime) -> list[str | None]:
        return await anyio.to_thread.run_sync(self._file_away, taken, now)

    def _file_away(self, taken: Sequence[Taken], now: datetime) -> list[str | None]:
        """Archive used files, quarantine unusable ones (blocking: runs in a worker thread)."""
        self._recreate_folders()
        return [self._file_one(item, now) for item in taken]

    def _recreate_folders(self) -> None:
        """Someone may have removed them while we run: put them back (one call each)."""
        for folder in (self.settings.archive_dir, self.settings.failed_dir):
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                self._folder_trouble(exc)

    def _file_one(self, item: Taken, now: datetime) -> str | None:
        try:
            if item.verdict is None:
                return self._quarantine(item, now)
            failed = self._quarantine_elements(item, now) if item.verdict.rejected else None
            archived = files.move_without_clobber(item.ref, self.settings.archive_dir, item.name)
            return failed or files.display_name(os.path.basename(archived))
        except OSError as exc:  # stays claimed: resumed at the next start, never lost
            self._folder_trouble(exc)
            return None

    def _quarantine(self, item: Taken, now: datetime) -> str:
        assert item.error is not None
        failed = self.settings.failed_dir
        target = files.move_without_clobber(item.ref, failed, item.name)
        report = files.ErrorReport(item.shown, item.error.reason, item.error.path, now.isoformat())
        files.write_report(failed, target, report)
        return files.display_name(os.path.basename(target))

    def _quarantine_elements(self, item: Taken, now: datetime) -> str:
        """A batch's bad elements go to the failed folder as a file of their own (once)."""
        verdict = item.verdict
        assert verdict is not None
        failed = self.settings.failed_dir
        data = b"".join(verdict.rejected_chunks())
        stem = item.name.rpartition(".")[0] + ".rejected"
        # after a crash between this step and the archive, the file is already there
        target = files.find_identical(failed, stem, data)
        target = target or files.write_new(failed, stem + ".json", data)
        if not files.report_path(target).exists():
            elements = [files.RejectedElement(r.index, r.path, r.reason) for r in verdict.rejected]
            reason = verdict.rejected_reason()
            if verdict.unlisted:
                reason += f" (the first {len(elements)} are listed)"
            at = now.isoformat()
            report = files.ErrorReport(item.shown, reason, "$", at, elements, verdict.unlisted)
            files.write_report(failed, target, report)
        return files.display_name(target.name)


class FolderSink:
    """``OutboundSink`` on the outbound folder: ``{name}`` per file, durable on return."""

    def __init__(self, settings: Settings, trouble: Trouble) -> None:
        self.folder = settings.outbound_dir
        self.concurrency = settings.outbound_concurrency
        self._trouble = trouble

    async def recover(self) -> None:
        await anyio.to_thread.run_sync(files.remove_stale_temps, self.folder)

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
        token = uuid.uuid4().hex[:8]
        for index in part:
            file = outgoing[index]
            try:
                files.write_durably(self.folder, file.name, file.data, token)
            except OSError as exc:
                failed.append(index)
                self._error(file.name, exc)
        return failed

    def _error(self, what: str, exc: OSError) -> None:
        reason = f"cannot write {what}: {exc.strerror or exc}"
        self._trouble(what, reason)
        log.error("%s; not marked synced, tried again", reason)


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, files.RefusedFile):
        return str(exc)
    return f"cannot read the file: {exc.strerror or exc}"


def _wanted(change: Change, path: str) -> bool:
    """Called for every file event on the event loop: keep it cheap (no Path objects)."""
    return change != Change.deleted and files.is_candidate(os.path.basename(path))
