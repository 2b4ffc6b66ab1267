"""ERP → TracOS: notice files, judge them, upsert their orders, archive or quarantine them.

One batch at a time: read and claim up to ``batch_size`` files in one thread hop, one bulk
upsert (retried through outages while the files stay claimed), then archive/quarantine in
one more hop. Events from ``awatch`` only wake the loop; the folder listing is the truth.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

import anyio
from anyio.streams.memory import MemoryObjectSendStream
from watchfiles import Change, awatch

from watcher import folders
from watcher.errors import MalformedFile, RejectedInput
from watcher.mapping import FileVerdict, element_bytes, judge_erp_file
from watcher.model import OrderUpsert
from watcher.retrying import StoreRetry
from watcher.settings import Settings
from watcher.stats import RECENT, Stats
from watcher.store import Outcome, WorkOrderStore

log = logging.getLogger(__name__)
# watchfiles: report a change after at most DEBOUNCE_MS, checking every STEP_MS (the
# check costs a wake-up of its thread: STEP_MS trades idle CPU against latency)
DEBOUNCE_MS: Final = 30
STEP_MS: Final = 20


@dataclass(frozen=True, slots=True)
class Taken:
    """A claimed file and what it amounts to: a verdict, or a reason to quarantine it whole."""

    name: str
    path: str
    landed: float
    verdict: FileVerdict | None = None
    error: RejectedInput | None = None


@dataclass
class Inbound:
    settings: Settings
    store: WorkOrderStore
    stats: Stats
    claims: folders.ClaimDir
    retry: StoreRetry
    deferred: dict[str, float] = field(default_factory=dict)  # name → look again at (epoch s)
    _wake: anyio.Event = field(init=False)

    async def run(self, stop: anyio.Event) -> None:
        """Scan, then process whatever arrives until ``stop``; finish the batch in flight."""
        self._wake = anyio.Event()
        watching = anyio.Event()  # awatch's own stop: cancelling it instead would block ~5 s
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch, watching)
            tg.start_soon(self._wake_on, stop)
            try:
                while not stop.is_set():
                    await self.drain(stop)
                    with anyio.move_on_after(self._next_look()):
                        await self._wake.wait()
                    self._wake = anyio.Event()
            finally:
                watching.set()

    async def _wake_on(self, stop: anyio.Event) -> None:
        await stop.wait()
        self._wake.set()

    def _next_look(self) -> float:
        soonest = min(self.deferred.values(), default=time.time() + self.settings.rescan_seconds)
        return max(0.0, min(soonest - time.time(), self.settings.rescan_seconds))

    async def _watch(self, stop: anyio.Event) -> None:
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
                    self._wake.set()
            except Exception as exc:
                log.error("cannot watch %s: %s", self.settings.inbound_dir, exc)
            with anyio.move_on_after(self.settings.rescan_seconds):
                await stop.wait()

    async def drain(self, stop: anyio.Event | None = None) -> None:
        """Process every file waiting, reading the next batch while the last is stored.

        The reading stage lists the folder again whenever it runs out of names, so a burst
        flows through without a pause; it ends when a listing shows nothing new. The stream
        between the stages holds one batch: at most three batches are claimed at a time.
        """
        send, receive = anyio.create_memory_object_stream[list[Taken]](1)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._take_all, send, stop)
            async with receive:
                async for taken in receive:
                    await self._store_and_file(taken)

    async def _take_all(
        self, send: MemoryObjectSendStream[list[Taken]], stop: anyio.Event | None
    ) -> None:
        """First stage: read, judge and claim a batch at a time (one thread hop each)."""
        tried: set[str] = set()  # each name once per drain: nothing can spin here
        async with send:
            while names := [n for n in await self._waiting() if n not in tried]:
                tried.update(names)
                for start in range(0, len(names), self.settings.batch_size):
                    if stop is not None and stop.is_set():
                        return
                    batch = names[start : start + self.settings.batch_size]
                    await send.send(await anyio.to_thread.run_sync(self._take, batch))
                    self.stats.waiting_files = max(0, len(names) - start - len(batch))

    async def _waiting(self) -> list[str]:
        """Names to take now: the listing less files still settling."""
        try:
            names = await anyio.to_thread.run_sync(folders.scan, self.settings.inbound_dir)
        except OSError as exc:
            self._folder_trouble(exc)
            return []
        now = time.time()
        present = set(names)
        self.deferred = {n: at for n, at in self.deferred.items() if n in present}
        names = [n for n in names if self.deferred.get(n, 0.0) <= now]
        self.stats.waiting_files = len(names)
        return names

    def _folder_trouble(self, exc: OSError) -> None:
        where = exc.filename or self.settings.inbound_dir
        message = f"inbound folder {self.settings.inbound_dir}: {where}: {exc.strerror or exc}"
        log.error("%s; the file waits and is tried again", message)
        self.stats.failure(datetime.now(UTC), "in", str(self.settings.inbound_dir), message)

    async def _store_and_file(self, taken: list[Taken]) -> None:
        """Second stage: one bulk upsert (waiting out outages), then archive/quarantine."""
        orders = [o for t in taken if t.verdict for o in t.verdict.orders]
        outcomes: list[Outcome] = []
        if orders:
            now = datetime.now(UTC)
            outcomes = await self.retry(lambda: self.store.upsert(orders, now))
        await anyio.to_thread.run_sync(self._file_away, taken, outcomes)

    def _take(self, names: Sequence[str]) -> list[Taken]:
        """Read, judge and claim each file (blocking: runs in a worker thread)."""
        now = time.time()
        taken = []
        for name in names:
            item = self._take_one(name, now)
            if item is not None:
                taken.append(item)
        return taken

    def _take_one(self, name: str, now: float) -> Taken | None:
        source = os.path.join(self.settings.inbound_dir, name)
        try:
            data, info = folders.read_regular(source, self.settings.max_file_bytes)
        except FileNotFoundError:
            return None  # gone: another worker claimed it, or the ERP took it back
        except OSError as exc:
            return self._claimed(source, now, error=RejectedInput(_os_reason(exc)))
        try:
            verdict = _judge(data, name)
        except MalformedFile as exc:
            if now - info.st_mtime < self.settings.settle_seconds:
                self.deferred[name] = info.st_mtime + self.settings.settle_seconds
                return None  # maybe still being written: judge it once it has been quiet
            return self._claimed(source, info.st_ctime, error=exc)
        except RejectedInput as exc:
            return self._claimed(source, info.st_ctime, error=exc)
        return self._claimed(source, info.st_ctime, verdict=verdict, inode=info.st_ino)

    def _claimed(
        self,
        source: str,
        landed: float,
        verdict: FileVerdict | None = None,
        error: RejectedInput | None = None,
        inode: int | None = None,
    ) -> Taken | None:
        name = os.path.basename(source)
        self.deferred.pop(name, None)
        try:
            path = self.claims.claim(source)
        except OSError as exc:  # e.g. the folder made read-only: the file waits where it is
            self._folder_trouble(exc)
            return None
        if path is None:
            return None
        if inode is not None and os.lstat(path).st_ino != inode:
            # replaced between our read and the claim: judge what we actually hold
            return self._retake(path, name, landed)
        return Taken(name, path, landed, verdict, error)

    def _retake(self, path: str, name: str, landed: float) -> Taken:
        try:
            return Taken(
                name,
                path,
                landed,
                verdict=_judge(folders.read_regular(path, self.settings.max_file_bytes)[0], name),
            )
        except RejectedInput as exc:
            return Taken(name, path, landed, error=exc)
        except OSError as exc:
            return Taken(name, path, landed, error=RejectedInput(_os_reason(exc)))

    def _file_away(self, taken: list[Taken], outcomes: list[Outcome]) -> None:
        """Archive used files, quarantine unusable ones (blocking: runs in a worker thread)."""
        now = datetime.now(UTC)
        self._recreate_folders()
        position = 0
        recent: deque[tuple[OrderUpsert, Outcome]] = deque(maxlen=RECENT)
        for item in taken:
            mine = outcomes[position : position + len(item.verdict.orders)] if item.verdict else []
            position += len(mine)
            try:
                self._file_one(item, mine, now)
            except OSError as exc:  # stays claimed: resumed at the next start, never lost
                self._folder_trouble(exc)
                continue
            if item.verdict:
                recent.extend(zip(item.verdict.orders[-RECENT:], mine[-RECENT:], strict=True))
        self._record_batch(len(taken), outcomes, recent, now)

    def _recreate_folders(self) -> None:
        """Someone may have removed them while we run: put them back (one call each)."""
        for folder in (self.settings.archive_dir, self.settings.failed_dir):
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                self._folder_trouble(exc)

    def _file_one(self, item: Taken, outcomes: list[Outcome], now: datetime) -> None:
        if item.verdict is None:
            self._quarantine(item, now)
        else:
            self._archive(item, outcomes)

    def _record_batch(
        self,
        files: int,
        outcomes: list[Outcome],
        recent: deque[tuple[OrderUpsert, Outcome]],
        now: datetime,
    ) -> None:
        """Counters and the console's recent events once per batch, and one log line."""
        for order, outcome in recent:
            self.stats.event(now, "in", str(order.number), str(outcome))
        self.stats.count("files_seen", files)
        tally = Counter(str(o) for o in outcomes)
        for name, count in tally.items():
            self.stats.count(f"orders_{name}", count)
        if tally:
            log.info("%d files: orders %s", files, ", ".join(f"{n} {o}" for o, n in tally.items()))

    def _archive(self, item: Taken, outcomes: list[Outcome]) -> None:
        assert item.verdict is not None
        if item.verdict.rejected:
            self._quarantine_elements(item, datetime.now(UTC))
        folders.move_without_clobber(item.path, self.settings.archive_dir, item.name)
        self.stats.latency_in.append(max(0.0, time.time() - item.landed))
        if log.isEnabledFor(logging.DEBUG):
            shown = ", ".join(f"{n} {o}" for o, n in Counter(outcomes).items()) or "no orders"
            log.debug("%s: %s", folders.display_name(item.name), shown)

    def _quarantine(self, item: Taken, now: datetime) -> None:
        assert item.error is not None
        target = folders.move_without_clobber(item.path, self.settings.failed_dir, item.name)
        report = _report(item.name, now, item.error.reason, item.error.path)
        folders.write_report(self.settings.failed_dir, target, report)
        self._failed(item.name, f"{item.error.reason} at {item.error.path}", target, now)

    def _quarantine_elements(self, item: Taken, now: datetime) -> None:
        """A batch's bad elements go to the failed folder as a file of their own (once)."""
        assert item.verdict is not None
        rejected = item.verdict.rejected
        data = element_bytes(rejected)
        stem = item.name.rpartition(".")[0] + ".rejected"
        # after a crash between this step and the archive, the file is already there
        target = folders.find_identical(self.settings.failed_dir, stem, data)
        target = target or folders.write_new(self.settings.failed_dir, stem + ".json", data)
        reason = f"{len(rejected)} of {len(rejected) + len(item.verdict.orders)} orders rejected"
        if not folders.report_path(target).exists():
            report = _report(item.name, now, reason, "$")
            report["rejected"] = [
                {"index": r.index, "path": r.path, "reason": r.reason} for r in rejected
            ]
            folders.write_report(self.settings.failed_dir, target, report)
        first = rejected[0]
        self._failed(item.name, f"{reason}; first: {first.reason} at {first.path}", target, now)

    def _failed(self, name: str, reason: str, target: folders.StrPath, now: datetime) -> None:
        name = folders.display_name(name)
        self.stats.count("files_failed")
        self.stats.failure(now, "in", name, reason)
        self.stats.event(now, "in", name, "failed")
        shown = folders.display_name(os.path.basename(target))
        log.warning("%s quarantined as %s: %s", name, shown, reason)


def _judge(data: bytes, name: str) -> FileVerdict:
    """``judge_erp_file``, where even a bug costs one file (quarantined), never the worker."""
    try:
        return judge_erp_file(data)
    except RejectedInput:
        raise
    except Exception as exc:
        log.exception("unexpected error judging %s", folders.display_name(name))
        raise RejectedInput(f"unexpected error while judging the file: {exc!r}") from exc


def _report(name: str, now: datetime, reason: str, path: str) -> dict[str, object]:
    file = folders.display_name(name)
    return {"file": file, "reason": reason, "path": path, "time": now.isoformat()}


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, folders.RefusedFile):
        return str(exc)
    return f"cannot read the file: {exc.strerror or exc}"


def _wanted(change: Change, path: str) -> bool:
    """Called for every file event on the event loop: keep it cheap (no Path objects)."""
    return change != Change.deleted and folders.is_candidate(os.path.basename(path))
