"""ERP → TracOS: notice files, judge them, upsert their orders, archive or quarantine them.

One batch at a time: read and claim up to ``batch_size`` files in one thread hop, one bulk
upsert (retried through outages while the files stay claimed), then archive/quarantine in
one more hop. Events from ``awatch`` only wake the loop; the folder listing is the truth.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import anyio
from watchfiles import Change, awatch

from watcher import folders
from watcher.errors import MalformedFile, RejectedInput
from watcher.mapping import FileVerdict, element_bytes, judge_erp_file
from watcher.retrying import StoreRetry
from watcher.settings import Settings
from watcher.stats import RECENT, Stats
from watcher.store import Outcome, WorkOrderStore

log = logging.getLogger(__name__)
# watchfiles: report a change after at most DEBOUNCE_MS, checking every STEP_MS (the
# check costs a wake-up of its thread: STEP_MS trades idle CPU against latency)
DEBOUNCE_MS: Final = 30
STEP_MS: Final = 15


@dataclass(frozen=True, slots=True)
class Taken:
    """A claimed file and what it amounts to: a verdict, or a reason to quarantine it whole."""

    name: str
    path: Path
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
        """Process every file waiting now, one batch at a time."""
        try:
            names = await anyio.to_thread.run_sync(folders.scan, self.settings.inbound_dir)
        except OSError as exc:
            self._folder_trouble(exc)
            return
        now = time.time()
        present = set(names)
        self.deferred = {n: at for n, at in self.deferred.items() if n in present}
        names = [n for n in names if self.deferred.get(n, 0.0) <= now]
        self.stats.waiting_files = len(names)
        size = self.settings.batch_size
        for start in range(0, len(names), size):
            if stop is not None and stop.is_set():
                return
            await self.process(names[start : start + size])
            self.stats.waiting_files = max(0, len(names) - start - size)

    def _folder_trouble(self, exc: OSError) -> None:
        message = f"inbound folder {self.settings.inbound_dir}: {exc.strerror or exc}"
        log.error("%s; retrying at the next rescan", message)
        self.stats.failure(datetime.now(UTC), "in", str(self.settings.inbound_dir), message)

    async def process(self, names: Sequence[str]) -> None:
        """Claim and judge ``names``, upsert their orders in one bulk write, then file them."""
        taken = await anyio.to_thread.run_sync(self._take, names)
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
        source = self.settings.inbound_dir / name
        try:
            data, info = folders.read_regular(source)
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
        source: Path,
        landed: float,
        verdict: FileVerdict | None = None,
        error: RejectedInput | None = None,
        inode: int | None = None,
    ) -> Taken | None:
        self.deferred.pop(source.name, None)
        path = self.claims.claim(source)
        if path is None:
            return None
        if inode is not None and path.lstat().st_ino != inode:
            # replaced between our read and the claim: judge what we actually hold
            return self._retake(path, source.name, landed)
        return Taken(source.name, path, landed, verdict, error)

    def _retake(self, path: Path, name: str, landed: float) -> Taken:
        try:
            return Taken(name, path, landed, verdict=judge_erp_file(folders.read_regular(path)[0]))
        except RejectedInput as exc:
            return Taken(name, path, landed, error=exc)

    def _file_away(self, taken: list[Taken], outcomes: list[Outcome]) -> None:
        """Archive used files, quarantine unusable ones (blocking: runs in a worker thread)."""
        now = datetime.now(UTC)
        position = 0
        for item in taken:
            if item.verdict is None:
                self._quarantine(item, now)
                continue
            mine = outcomes[position : position + len(item.verdict.orders)]
            position += len(item.verdict.orders)
            self._archive(item, mine, now)
        self.stats.count("files_seen", len(taken))
        if outcomes:
            tally = Counter(str(o) for o in outcomes)
            for outcome, count in tally.items():
                self.stats.count(f"orders_{outcome}", count)
            summary = ", ".join(f"{count} {outcome}" for outcome, count in tally.items())
            log.info("%d files: orders %s", len(taken), summary)

    def _archive(self, item: Taken, outcomes: list[Outcome], now: datetime) -> None:
        assert item.verdict is not None
        if item.verdict.rejected:
            self._quarantine_elements(item, now)
        folders.move_without_clobber(item.path, self.settings.archive_dir, item.name)
        self.stats.latency_in.append(max(0.0, time.time() - item.landed))
        recent = list(zip(item.verdict.orders, outcomes, strict=True))[-RECENT:]
        for order, outcome in recent:
            self.stats.event(now, "in", str(order.number), str(outcome))
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
        """A batch's bad elements go to the failed folder as a file of their own."""
        assert item.verdict is not None
        rejected = item.verdict.rejected
        name = item.name.rpartition(".")[0] + ".rejected.json"
        target = folders.write_new(self.settings.failed_dir, name, element_bytes(rejected))
        reason = f"{len(rejected)} of {len(rejected) + len(item.verdict.orders)} orders rejected"
        report = _report(item.name, now, reason, "$")
        report["rejected"] = [
            {"index": r.index, "path": r.path, "reason": r.reason} for r in rejected
        ]
        folders.write_report(self.settings.failed_dir, target, report)
        first = rejected[0]
        self._failed(item.name, f"{reason}; first: {first.reason} at {first.path}", target, now)

    def _failed(self, name: str, reason: str, target: Path, now: datetime) -> None:
        name = folders.display_name(name)
        self.stats.count("files_failed")
        self.stats.failure(now, "in", name, reason)
        self.stats.event(now, "in", name, "failed")
        shown = folders.display_name(target.name)
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
    if isinstance(exc, folders.NotRegularFile):
        return str(exc)
    return f"cannot read the file: {exc.strerror or exc}"


def _wanted(change: Change, path: str) -> bool:
    return change != Change.deleted and folders.is_candidate(Path(path).name)
