"""The worker's status file: a heartbeat other processes read (``status``, ``health``).

The file is an interface with operators and the container health check, so its shape is
a Struct, written and read with module-level codecs.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import msgspec

from watcher import __version__
from watcher.erp.files import replace_with, write_temp
from watcher.settings import Settings
from watcher.stats import FRESH_SECONDS, Snapshot

STATUS_FILE: Final = "worker.json"


class UnexportableEntry(msgspec.Struct, frozen=True):
    """A stored order that cannot be exported until it changes."""

    document: str
    order: str
    reason: str
    time: datetime


class WorkerStatus(msgspec.Struct, frozen=True):
    """What the running worker says about itself, rewritten every two seconds."""

    pid: int
    version: str
    started: datetime
    heartbeat: datetime
    store: str
    mode: str
    store_connected: bool
    store_error: str
    counters: dict[str, int]  # by ``Count`` value; unknown names kept (another version)
    files_waiting: int
    unexportable: list[UnexportableEntry]


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(WorkerStatus).decode


def status_path(settings: Settings) -> Path:
    return settings.state_dir / STATUS_FILE


def write_worker_status(settings: Settings, snapshot: Snapshot, mode: str) -> None:
    """Replace the status file atomically (no fsync: it is rewritten every two seconds)."""
    status = WorkerStatus(
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
        unexportable=[
            UnexportableEntry(key, f.subject, f.reason, f.time)
            for key, f in snapshot.unexportable.items()
        ],
    )
    target = status_path(settings)
    replace_with(write_temp(target.parent, target.name, _encode(status)), target)


def read_worker_status(settings: Settings) -> WorkerStatus | None:
    """The status file, or None when there is none or it is not one (e.g. cut short)."""
    try:
        data = status_path(settings).read_bytes()
    except FileNotFoundError:
        return None
    try:
        return _decode(data)
    except msgspec.DecodeError:  # also a ValidationError: another version's or a torn file
        return None


def worker_problem(status: WorkerStatus | None, now: datetime) -> str | None:
    """Why the worker is not healthy, or None when it is running, fresh and connected."""
    if status is None:
        return "no worker has run here (no status file)"
    if not _alive(status.pid):
        return f"the worker (pid {status.pid}) is not running"
    age = (now - status.heartbeat.astimezone(UTC)).total_seconds()
    if age > FRESH_SECONDS:
        return f"the worker's heartbeat is {age:.0f} s old"
    if not status.store_connected:
        return f"the worker cannot reach its store: {status.store_error}"
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
