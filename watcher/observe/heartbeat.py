"""Each worker's status file: a heartbeat other processes read (``status``, ``health``).

Every worker writes its own file, ``worker-<id>.json`` in the state folder (the id is
``WATCHER_ID``, or the host name and pid), so two workers on one folder never speak for
each other. The file is an interface with operators and the container health check, so
its shape is a Struct, written and read with module-level codecs. It stays small
whatever happens: counts, plus the most recent few unexportable orders.
"""

from __future__ import annotations

import contextlib
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Final

import msgspec

from watcher import __version__
from watcher.core.settings import Settings
from watcher.fs import read_regular, replace_with, write_temp

if TYPE_CHECKING:  # health reads status files alone: it never loads the worker's stats
    from watcher.sync import Snapshot

STATUS_MAX_BYTES: Final = 1 << 20  # a worker's status file is a few kB
PREFIX: Final = "worker-"
NEVER: Final = datetime.min.replace(tzinfo=UTC)
# A snapshot or heartbeat older than this means the worker is stuck (health, /readyz).
FRESH_SECONDS: Final = 10.0
PRUNE_SECONDS: Final = 86400.0  # a status file without a heartbeat for a day is removed
Pid = Annotated[int, msgspec.Meta(gt=0, le=2**31 - 1)]  # 0 or -1 would name a group


class DriftEntry(msgspec.Struct, frozen=True):
    """An ERP key the format does not know, as a worker saw it (``sync.stats.KeySeen``,
    repeated here: ``health`` never loads the worker's stats)."""

    files: int
    first: datetime
    last: datetime
    example_order: int | None = None
    example_file: str | None = None


class UnexportableEntry(msgspec.Struct, frozen=True):
    """A stored order that cannot be exported until it changes."""

    document: str
    order: str
    reason: str
    time: datetime | None = None  # when a worker reported it (None: found by ``status``)


class RefusedMarkEntry(msgspec.Struct, frozen=True):
    """An order written out whose mark the store refused: it stays unsynced until marked."""

    order: str
    reason: str
    time: datetime


class WorkerStatus(msgspec.Struct, frozen=True, kw_only=True):
    """What one running worker says about itself, rewritten every two seconds."""

    id: str = ""
    host: str = ""
    pid: Pid
    version: str
    started: datetime
    heartbeat: datetime
    store: str
    mode: str
    store_connected: bool
    store_error: str
    counters: dict[str, int]  # by ``Count`` value; unknown names kept (another version)
    files_waiting: int
    stored: int | None = None  # the store's counts as last answered, and when
    unsynced: int | None = None
    counts_at: datetime | None = None
    unexportable_total: int = 0
    unexportable: list[UnexportableEntry] = []  # the most recent few
    problems: list[str] = []  # side effects that keep failing
    oldest_unsynced_seconds: float | None = None  # as last measured, with the counts
    drift: dict[str, DriftEntry] = {}  # ERP keys the format does not know (sync.drift)
    marks_refused_total: int = 0  # orders the store refused to mark synced (unsynced still)
    marks_refused: list[RefusedMarkEntry] = []  # the newest few, with the store's reason


class Found(msgspec.Struct, frozen=True):  # a Struct: ``health`` creates no dataclass
    """A status file as read: the status, or why it could not be read."""

    path: Path
    status: WorkerStatus | None
    error: str = ""


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(WorkerStatus).decode


def this_host() -> str:
    return os.uname().nodename or "localhost"


def worker_id(settings: Settings, pid: int | None = None) -> str:
    """``WATCHER_ID``, or ``<host>-<pid>``: unique per container (its own host name) too."""
    return settings.worker_id or f"{this_host()}-{os.getpid() if pid is None else pid}"


def status_path(settings: Settings, pid: int | None = None) -> Path:
    return settings.state_dir / f"{PREFIX}{worker_id(settings, pid)}.json"


def write_worker_status(settings: Settings, snapshot: Snapshot, mode: str) -> None:
    """Replace this worker's status file atomically (no fsync: it is rewritten every 2 s)."""
    status = WorkerStatus(
        id=worker_id(settings),
        host=this_host(),
        pid=os.getpid(),
        version=__version__,
        started=snapshot.started,
        heartbeat=snapshot.now,
        store=settings.store_label,
        mode=mode,
        store_connected=snapshot.store.connected,
        store_error=snapshot.store.error,
        counters={str(name): value for name, value in snapshot.counters.items()},
        files_waiting=snapshot.waiting_files,
        stored=snapshot.stored,
        unsynced=snapshot.unsynced if snapshot.counts_at else None,
        counts_at=snapshot.counts_at,
        unexportable_total=snapshot.unexportable_total,
        unexportable=[
            UnexportableEntry("", f.subject, f.reason, f.time) for f in snapshot.unexportable
        ],
        problems=list(snapshot.problems),
        oldest_unsynced_seconds=snapshot.unsynced_age,
        drift={
            key: DriftEntry(
                seen.files, seen.first, seen.last, seen.example_order, seen.example_file
            )
            for key, seen in snapshot.drift.items()
        },
        marks_refused_total=snapshot.marks_refused_total,
        marks_refused=[
            RefusedMarkEntry(f.subject, f.reason, f.time) for f in snapshot.marks_refused
        ],
    )
    target = status_path(settings)
    replace_with(write_temp(target.parent, target.name, _encode(status)), target)


def read_status_files(settings: Settings) -> list[Found]:
    """Every worker's status file in the state folder, newest heartbeat first."""
    try:
        paths = sorted(settings.state_dir.glob(f"{PREFIX}*.json"))
    except OSError:
        return []
    found = [_read(path) for path in paths]
    return sorted(found, key=_heartbeat, reverse=True)


def _heartbeat(found: Found) -> datetime:
    return found.status.heartbeat.astimezone(UTC) if found.status else NEVER


def _read(path: Path) -> Found:
    """A status file, never through a link, a FIFO or anything large planted in its place."""
    try:
        data = read_regular(path, STATUS_MAX_BYTES)[0]
    except OSError as exc:  # not a regular file, a directory, no permission, too large, …
        return Found(path, None, f"status file {path} cannot be read: {exc.strerror or exc}")
    try:
        return Found(path, _decode(data))
    except msgspec.DecodeError:  # also a ValidationError: another version's or a torn file
        return Found(path, None, f"status file {path} is damaged (not a worker status)")


def prune_stopped(settings: Settings, now: datetime) -> None:
    """Remove the status files of this host's stopped workers, and any a day old."""
    for found in read_status_files(settings):
        status = found.status
        if status is None:
            continue
        stopped = status.host == this_host() and not alive(status.pid)
        if stopped or (now - status.heartbeat).total_seconds() > PRUNE_SECONDS:
            with contextlib.suppress(OSError):  # another worker may have removed it first
                found.path.unlink()


def read_worker_status(settings: Settings, pid: int | None = None) -> WorkerStatus | None:
    """The status of the worker with ``pid`` (or the newest of those ``health`` checks)."""
    if pid is not None:
        found = (f.status for f in read_status_files(settings) if f.status and f.status.pid == pid)
        return next(found, None)
    mine = own_files(settings)
    return mine[0].status if mine else None


def own_files(settings: Settings) -> list[Found]:
    """The files ``health`` answers for: ``WATCHER_ID``'s, else this host's workers'."""
    every = read_status_files(settings)
    if settings.worker_id:
        wanted = status_path(settings)
        return [f for f in every if f.path == wanted]
    return [f for f in every if f.status is None or f.status.host in ("", this_host())]


def health_problem(settings: Settings, now: datetime) -> str | None:
    """Why this host's worker is not healthy (every running one is checked), or None."""
    mine = own_files(settings)
    if not mine:
        return "no worker has run here (no status file)"
    live = [f for f in mine if f.status is not None and alive(f.status.pid)]
    checked = live or mine[:1]
    problems = [p for f in checked if (p := file_problem(f, now)) is not None]
    return "; ".join(problems) or None


def file_problem(found: Found, now: datetime) -> str | None:
    """Why the worker of this status file is not healthy (or the file unreadable), or None."""
    if found.status is None:
        return found.error
    problem = worker_problem(found.status, now)
    if problem and problem.startswith("the worker's heartbeat"):
        problem += _why_not_written(found.path)
    return problem


def worker_problem(status: WorkerStatus | None, now: datetime) -> str | None:
    """Why the worker is not healthy, or None when it is running, fresh and connected."""
    if status is None:
        return "no worker has run here (no status file)"
    problem = running_problem(status, now)
    if problem is None and not status.store_connected:
        if not status.store_error:
            return "the worker has not reached its store yet (connecting)"
        return f"the worker cannot reach its store: {status.store_error}"
    if problem is None and status.problems:
        return f"the worker reports: {'; '.join(status.problems)}"
    return problem


def running_problem(status: WorkerStatus, now: datetime) -> str | None:
    """Why the worker is not running (gone, or its heartbeat stale), or None when it runs."""
    if not alive(status.pid):
        return f"the worker (pid {status.pid}) is not running"
    age = (now - status.heartbeat.astimezone(UTC)).total_seconds()
    if age > FRESH_SECONDS:
        return f"the worker's heartbeat is {age:.0f} s old"
    return None


def _why_not_written(path: Path) -> str:
    """What stops a status file from being rewritten, when the folder can tell."""
    folder = path.parent
    try:
        if not os.access(folder, os.W_OK):
            return f" ({folder} is not writable)"
        if os.statvfs(folder).f_bavail == 0:
            return f" (no space left on the file system of {folder})"
    except OSError:
        return ""
    return ""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
