"""The folder exchange: ERP files come in through one folder and go out through another.

``FolderSource`` claims each file by atomic rename into this worker's locked claim folder,
leaves a file that is still being written until it has been quiet for the settle time,
archives used files, quarantines unusable ones with a ``.error.json`` report, and puts
back what a stopped worker left claimed (the outbound side is ``sink.FolderSink``).
Blocking work runs in worker threads, one hop per batch.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Final, NamedTuple

import anyio
import msgspec

from watcher import fs as files
from watcher.core.errors import MalformedFile, RejectedInput
from watcher.core.settings import Settings
from watcher.erp.folders import claims, filing, layout
from watcher.erp.port import Backlog, Judge, NotFiled, Taken, Trouble

log = logging.getLogger(__name__)
# watchfiles: report a change after at most DEBOUNCE_MS, checking every STEP_MS. Each check
# wakes its thread (most of an idle worker's CPU); a step beyond the debounce delays every
# file by it (bench: a step of 20 or 30 ms, p50 37 ms and 1.0 or 0.9 % idle; 50 ms, p50
# 57 ms and 0.7 %)
DEBOUNCE_MS: Final = 30
STEP_MS: Final = 30


class FolderSource:
    """``InboundSource`` on the inbound, archive and failed folders."""

    def __init__(self, settings: Settings, trouble: Trouble) -> None:
        self.settings = settings
        self._trouble = trouble
        self._claims: claims.ClaimDir | None = None
        self.deferred: dict[str, _Settling] = {}  # files that do not decode yet
        # claimed and not yet filed away: when each landed (epoch seconds), by claimed path;
        # they still count in the lag (a batch held by an outage or a full disk waits on)
        self._landed: dict[str, float] = {}
        # the folders as plain strings for the per-file paths (a Path costs a conversion each)
        self._inbound, self._archive, self._failed = (
            os.fspath(d) for d in (settings.inbound_dir, settings.archive_dir, settings.failed_dir)
        )

    async def open(self) -> int:
        return await anyio.to_thread.run_sync(self._open)

    def _open(self) -> int:
        s = self.settings
        inbound = ("DATA_INBOUND_DIR", s.inbound_dir)
        others = (("DATA_ARCHIVE_DIR", s.archive_dir), ("DATA_FAILED_DIR", s.failed_dir))
        layout.inbound_folders(inbound, others)
        self._claims = claims.ClaimDir.create(s.inbound_dir)
        try:
            layout.remove_stale_temps(s.failed_dir)  # reports cut short by an older version
        except OSError as exc:
            log.warning("cannot clear temporary files in %s: %s", s.failed_dir, exc)
        resumed = 0
        with claims.orphaned_claims(s.inbound_dir) as orphans:
            for orphan in orphans:
                try:
                    resumed += len(
                        claims.resume(orphan, s.inbound_dir, s.archive_dir, s.failed_dir)
                    )
                except OSError as exc:  # what is left there waits for the next start
                    log.warning("cannot resume the claims in %s: %s", orphan.path, exc)
        return resumed

    async def close(self) -> int:
        """Release the claim folder (a later start resumes anything left in it)."""
        if self._claims is None:
            return 0
        held = self._claims.held()
        self._claims.release()
        self._claims = None
        return held

    @property
    def _claim_dir(self) -> claims.ClaimDir:
        if self._claims is None:
            raise RuntimeError("the folder source is not open")
        return self._claims

    async def watch(self, wake: Callable[[], None], stop: anyio.Event) -> None:
        """Turn file events into wake-ups; survive the folder vanishing for a while."""
        from watchfiles import Change, awatch  # only a running worker watches, not ``once``

        def wanted(changes: set[tuple[Change, str]]) -> bool:
            """Whether a set of file events holds one worth a look: filtered here rather
            than by watchfiles, which calls its filter on every event of a burst (20,000
            for 10,000 files claimed) where the first wanted one settles it."""
            return any(
                change != Change.deleted and layout.is_candidate(os.path.basename(path))
                for change, path in changes
            )

        while not stop.is_set():
            try:
                async for changes in awatch(
                    self.settings.inbound_dir,
                    watch_filter=None,
                    debounce=DEBOUNCE_MS,
                    step=STEP_MS,
                    stop_event=stop,
                    recursive=False,
                    force_polling=self.settings.force_polling or None,
                    ignore_permission_denied=True,
                ):
                    if wanted(changes):
                        wake()
            except Exception as exc:
                log.error("cannot watch %s: %s", self.settings.inbound_dir, exc)
            with anyio.move_on_after(self.settings.rescan_seconds):
                await stop.wait()

    def next_look(self) -> float | None:
        return min((s.due for s in self.deferred.values()), default=None)

    async def waiting(self) -> list[str]:
        """Names to take now: the listing less files still settling."""
        try:
            names = await anyio.to_thread.run_sync(layout.scan, self.settings.inbound_dir)
        except OSError as exc:
            self._folder_trouble(exc)
            return []
        now = time.monotonic()
        present = set(names)
        self.deferred = {n: s for n, s in self.deferred.items() if n in present}
        return [n for n in names if n not in self.deferred or self.deferred[n].due <= now]

    async def backlog(self) -> Backlog:
        return await anyio.to_thread.run_sync(self._backlog)

    def _backlog(self) -> Backlog:
        held = self._claims.names() if self._claims is not None else set()
        claimed = min(
            (t for path, t in self._landed.copy().items() if os.path.basename(path) in held),
            default=None,
        )  # a copy: the claiming thread may add to it meanwhile
        try:
            waiting = layout.oldest_landed(self.settings.inbound_dir)
        except OSError:  # the folder is gone: the inbound side reports that, with its fix
            waiting = None
        return Backlog(_earliest(waiting, claimed), len(held))

    def _folder_trouble(self, exc: OSError) -> None:
        inbound = self.settings.inbound_dir
        message = f"inbound folder {inbound}: {exc.filename or inbound}: {exc.strerror or exc}"
        log.error("%s; the file waits and is tried again", message)
        self._trouble(str(inbound), message)

    async def take(
        self, names: Sequence[str], judge: Judge, stopping: Callable[[], bool]
    ) -> list[Taken]:
        return await anyio.to_thread.run_sync(self._take, names, judge, stopping)

    def _take(
        self, names: Sequence[str], judge: Judge, stopping: Callable[[], bool]
    ) -> list[Taken]:
        """Read, judge and claim each file (blocking: runs in a worker thread)."""
        now = time.monotonic()
        taken = []
        for name in names:
            if stopping():
                break
            item = self._take_one(name, now, judge)
            if item is not None:
                taken.append(item)
        return taken

    def _take_one(self, name: str, now: float, judge: Judge) -> Taken | None:
        source = os.path.join(self._inbound, name)
        try:
            item, info = self._judged(source, name, judge, None)
        except FileNotFoundError:
            return None  # gone: another worker claimed it, or the ERP took it back
        if self._settling(item, info, now):
            return None  # maybe still being written: judged once it has been quiet
        return self._claimed(item, judge)

    def _judged(
        self, path: str, name: str, judge: Judge, landed: float | None
    ) -> tuple[Taken, os.stat_result | None]:
        """What the file at ``path`` amounts to (``FileNotFoundError``: it is gone)."""
        try:
            data, info = files.read_regular(path, self.settings.max_file_bytes)
        except FileNotFoundError:
            raise
        except OSError as exc:
            error = RejectedInput(_os_reason(exc))
            return Taken(name, path, landed or time.time(), error=error), None
        version, landed = filing.version(info), landed or info.st_ctime
        try:
            return Taken(name, path, landed, verdict=judge(data), version=version), info
        except RejectedInput as exc:
            return Taken(name, path, landed, error=exc, version=version), info

    def _settling(self, item: Taken, info: os.stat_result | None, now: float) -> bool:
        """Whether a file that does not decode may still be being written: not yet seen
        unchanged for the settle time. A file whose mtime is that long past is quiet (files
        waiting since before the start are judged at once); otherwise the wait is measured
        on the monotonic clock from when this worker first saw it as it is (``now``), so a
        step of the wall clock or an mtime ahead of it never holds up the judgement."""
        if info is None or not isinstance(item.error, MalformedFile):
            return False
        if info.st_mtime <= time.time() - self.settings.settle_seconds:
            return False
        seen = self.deferred.get(item.name)
        since = seen.since if seen is not None and seen.version == item.version else now
        if now - since >= self.settings.settle_seconds:
            return False
        self.deferred[item.name] = _Settling(
            since + self.settings.settle_seconds, item.version, since
        )
        return True

    def _claimed(self, item: Taken, judge: Judge) -> Taken | None:
        """``item``, read in the inbound folder, claimed (and judged again if it changed)."""
        self.deferred.pop(item.name, None)
        claims = self._claim_dir
        try:
            path = claims.claim(item.ref)
        except OSError as exc:  # e.g. the folder made read-only: the file waits where it is
            self._folder_trouble(exc)
            return None
        if path is None:
            return None
        try:
            info = os.lstat(os.path.basename(path), dir_fd=claims.fd)
            if item.version in (None, filing.version(info)):
                held = msgspec.structs.replace(item, ref=path)
            else:
                held = self._judged(path, item.name, judge, item.landed)[0]  # what we hold now
        except FileNotFoundError:
            return None  # removed from our claim folder behind our back: nothing to file
        self._landed[held.ref] = held.landed
        return held

    async def file_away(self, taken: Sequence[Taken], now: datetime) -> list[str | NotFiled]:
        return await anyio.to_thread.run_sync(self._file_away, taken, now)

    def _file_away(self, taken: Sequence[Taken], now: datetime) -> list[str | NotFiled]:
        """Archive used files, quarantine unusable ones (blocking: runs in a worker thread)."""
        for folder in (self.settings.archive_dir, self.settings.failed_dir):
            try:  # someone may have removed it while we run: put it back (one call each)
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                self._folder_trouble(exc)
        filed = [self._file_one(item, now) for item in taken]
        for item, where in zip(taken, filed, strict=True):
            if where is not NotFiled.LATER:  # filed away, or back among the waiting
                self._landed.pop(item.ref, None)
        return filed

    def _file_one(self, item: Taken, now: datetime) -> str | NotFiled:
        claim_fd = self._claim_dir.fd
        try:
            if filing.changed(item, self._inbound, claim_fd):
                return NotFiled.RETAKE
            return filing.file_away(item, self._archive, self._failed, now, claim_fd)
        except OSError as exc:  # stays claimed: tried again, or resumed at the next start
            reason = f"cannot file {item.shown} away: {exc.strerror or exc}"
            log.error("%s; it stays claimed and is tried again", reason)
            self._trouble(item.shown, reason)
            return NotFiled.LATER


class _Settling(NamedTuple):
    """A file that does not decode yet: when to look again, and since when it is unchanged
    (``time.monotonic()`` readings both)."""

    due: float
    version: object
    since: float


def _earliest(*moments: float | None) -> float | None:
    return min((m for m in moments if m is not None), default=None)


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, files.RefusedFile):
        return str(exc)
    return f"cannot read the file: {exc.strerror or exc}"
