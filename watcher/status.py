"""The worker's status file: a heartbeat other processes read (``status``, ``health``)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import msgspec

from watcher import __version__
from watcher.settings import Settings
from watcher.stats import Snapshot

STATUS_FILE: Final = "worker.json"
FRESH_SECONDS: Final = 10.0


def status_path(settings: Settings) -> Path:
    return settings.state_dir / STATUS_FILE


def write_worker_status(settings: Settings, snapshot: Snapshot, mode: str) -> None:
    """Replace the status file atomically (no fsync: it is rewritten every two seconds)."""
    status = {
        "pid": os.getpid(),
        "version": __version__,
        "started": snapshot.started,
        "heartbeat": snapshot.now,
        "store": settings.store_label,
        "mode": mode,
        "store_connected": snapshot.store.connected,
        "store_error": snapshot.store.error,
        "counters": snapshot.counters,
        "files_waiting": snapshot.waiting_files,
        "unexportable": [
            {"document": key, "order": f.subject, "reason": f.reason, "time": f.time}
            for key, f in snapshot.unexportable.items()
        ],
    }
    target = status_path(settings)
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    temp.write_bytes(msgspec.json.encode(status))
    os.replace(temp, target)


def read_worker_status(settings: Settings) -> dict[str, Any] | None:
    try:
        data = status_path(settings).read_bytes()
    except FileNotFoundError:
        return None
    try:
        status = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return None
    return status if isinstance(status, dict) else None


def worker_problem(status: dict[str, Any] | None, now: datetime) -> str | None:
    """Why the worker is not healthy, or None when it is running, fresh and connected."""
    if status is None:
        return "no worker has run here (no status file)"
    pid = status.get("pid")
    if not isinstance(pid, int) or not _alive(pid):
        return f"the worker (pid {pid}) is not running"
    beat = msgspec.convert(status.get("heartbeat"), datetime)
    age = (now - beat.astimezone(UTC)).total_seconds()
    if age > FRESH_SECONDS:
        return f"the worker's heartbeat is {age:.0f} s old"
    if not status.get("store_connected"):
        return f"the worker cannot reach its store: {status.get('store_error')}"
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
