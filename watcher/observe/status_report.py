"""What ``watcher status`` tells: the store's answer (one attempt), every worker's status
file and the folders — as much of it as can be known right now.

When the store does not answer, the workers' last known counts are shown with their age,
and the store is marked unreachable: an operator looks exactly when something is wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import aclosing
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import msgspec

from watcher.core.errors import Unexportable
from watcher.core.printable import printable, shown_time
from watcher.core.settings import Settings
from watcher.core.tracos import age, read_tracos
from watcher.erp import folder_counts, oldest_claimed, oldest_landed
from watcher.observe.heartbeat import (
    Found,
    RefusedMarkEntry,
    UnexportableEntry,
    file_problem,
    health_problem,
    read_status_files,
    running_problem,
)
from watcher.store import WorkOrderStore
from watcher.sync import LEDGER_FILE, DriftLedger, read_paused

if TYPE_CHECKING:
    from watcher.erp import ErpFormat

CHECK_LIMIT: Final = 200_000  # unsynced documents beyond this are not all read to list
LISTED: Final = 20  # unexportable orders printed; the rest are counted
# each lag figure, and the count that says whether anything is behind at all
LAG_OF: Final = {
    "oldest_unsynced_seconds": "unsynced",
    "oldest_file_waiting_seconds": "files_waiting",
}
CHECK_BATCH: Final = 1000  # unsynced documents read (and tried) at a time


class StoreAnswer(msgspec.Struct, frozen=True):
    """The store's counts, and the unsynced orders that cannot be exported as they are."""

    stored: int
    unsynced: int
    unexportable_total: int | None  # None: too many unsynced documents to check them all
    unexportable: list[UnexportableEntry] = []
    oldest_unsynced: datetime | None = None  # the oldest unsynced ``updatedAt``


async def ask_store(store: WorkOrderStore, erp_format: Callable[[], ErpFormat]) -> StoreAnswer:
    """Counts, and each unsynced document tried through the format (as an export would),
    batch by batch: the first few that cannot be exported are kept, the rest counted. The
    format is asked for once there is a document to try: with none, it is never loaded."""
    stored, unsynced = await store.counts()
    oldest = await store.oldest_unsynced()
    if unsynced > CHECK_LIMIT:
        return StoreAnswer(stored, unsynced, None, oldest_unsynced=oldest)
    stuck: list[UnexportableEntry] = []
    total = 0
    async with aclosing(store.iter_unsynced(CHECK_BATCH)) as batches:
        async for batch in batches:
            for doc in batch:
                try:
                    erp_format().render(read_tracos(doc.doc))
                except Unexportable as exc:
                    total += 1
                    if len(stuck) < LISTED:
                        order = f"order {doc.doc.get('number', '?')}"
                        stuck.append(UnexportableEntry(doc.key, order, str(exc), None))
    return StoreAnswer(stored, unsynced, total, stuck, oldest)


def gather_status(
    settings: Settings, answer: StoreAnswer | None, store_error: str | None, now: datetime
) -> dict[str, Any]:
    """Everything ``status`` prints, as plain values (``--json`` prints it as it is)."""
    files = read_status_files(settings)
    workers = [_worker(found, now) for found in files]
    running = [w for w in workers if w["running"]]
    report: dict[str, Any] = {
        "store": settings.store_label,
        "store_reachable": store_error is None,
        "store_error": store_error,
        "mode": running[0]["mode"] if running else "unknown (no worker running)",
        "paused": sorted(read_paused(settings.state_dir)),  # `watcher pause`, until resumed
        **_counts(answer, files, now),
        **folder_counts(settings),
        "oldest_file_waiting_seconds": _oldest_waiting(settings, now),
        "worker_running": bool(running),
        "worker_problem": health_problem(settings, now),
        **_agreement(files, now),
        "field_drift": _drift(files, settings),
        **marks_refused(files, now),
        "workers": workers,
    }
    return report


def _drift(files: list[Found], settings: Settings) -> dict[str, dict[str, Any]]:
    """Unknown ERP keys: the ledger of the product's life (first and last seen, files, an
    example order and file; ``sync.drift``), with what running workers saw since."""
    merged: dict[str, dict[str, Any]] = {}
    for found in files:
        for key, seen in (found.status.drift if found.status else {}).items():
            was = merged.setdefault(key, {"files": 0, "first": seen.first, "last": seen.last})
            was["files"] += seen.files
            was["first"], was["last"] = min(was["first"], seen.first), max(was["last"], seen.last)
            was.setdefault("example_order", seen.example_order)
            was.setdefault("example_file", seen.example_file)
    for key, kept in DriftLedger(settings.state_dir / LEDGER_FILE).read().items():
        was = merged.setdefault(key, {"files": 0, "first": kept.first, "last": kept.last})
        was["files"] = max(was["files"], kept.files)
        was["first"], was["last"] = min(was["first"], kept.first), max(was["last"], kept.last)
        was["example_order"] = kept.example_order
        was["example_file"] = kept.example_file or was.get("example_file")
    return merged


def marks_refused(files: list[Found], now: datetime) -> dict[str, Any]:
    """Orders the running workers wrote out but whose mark the store refused (they stay
    unsynced), each once with the store's reason, newest first: at most ``LISTED``, and
    how many in all."""
    newest: dict[str, RefusedMarkEntry] = {}
    total = 0
    for found in files:
        status = found.status
        if status is None or running_problem(status, now) is not None:
            continue
        total += status.marks_refused_total
        for entry in status.marks_refused:
            if entry.order in newest:
                total -= 1  # another worker lists it too
            if entry.order not in newest or newest[entry.order].time < entry.time:
                newest[entry.order] = entry
    listed = sorted(newest.values(), key=lambda e: e.time, reverse=True)[:LISTED]
    return {
        "marks_refused_total": total,
        "marks_refused": [{"order": e.order, "reason": e.reason} for e in listed],
    }


def _agreement(files: list[Found], now: datetime) -> dict[str, int]:
    """What the running workers met since they started: conflicts (``watcher conflicts``
    lists them), stored versions that named no date, outbound files repaired."""
    counters = [
        f.status.counters for f in files if f.status and running_problem(f.status, now) is None
    ]
    return {
        f"{name}_since_start": sum(c.get(name, 0) for c in counters)
        for name in ("conflicts", "versions_not_dates", "repaired")
    }


def _counts(answer: StoreAnswer | None, files: list[Found], now: datetime) -> dict[str, Any]:
    """From the store when it answered, else the freshest counts a worker last had."""
    if answer is not None:
        return {
            "stored": answer.stored,
            "unsynced": answer.unsynced,
            "oldest_unsynced_seconds": _seconds(age(answer.oldest_unsynced, now)),
            "counts_from": "store",
            "counts_age_seconds": 0.0,
            "unexportable_total": answer.unexportable_total,
            "unexportable": [_entry(e) for e in answer.unexportable],
        }
    known = [f.status for f in files if f.status is not None and f.status.counts_at is not None]
    if not known:
        return {
            "stored": None,
            "unsynced": None,
            "oldest_unsynced_seconds": None,
            "counts_from": None,
            "counts_age_seconds": None,
            "unexportable_total": None,
            "unexportable": [],
        }
    last = max(known, key=lambda s: s.counts_at or now)
    assert last.counts_at is not None
    return {
        "stored": last.stored,
        "unsynced": last.unsynced,
        "oldest_unsynced_seconds": _seconds(last.oldest_unsynced_seconds),
        "counts_from": f"worker {last.id}",
        "counts_age_seconds": round((now - last.counts_at.astimezone(UTC)).total_seconds(), 1),
        "unexportable_total": last.unexportable_total,
        "unexportable": [_entry(e) for e in last.unexportable],
    }


def _oldest_waiting(settings: Settings, now: datetime) -> float | None:
    """Waiting in the inbound folder or claimed and not filed away (held by an outage)."""
    try:
        landed = oldest_landed(settings.inbound_dir)
    except OSError:  # no inbound folder here: nothing waits in it
        landed = None
    moments = [m for m in (landed, oldest_claimed(settings.inbound_dir)) if m is not None]
    if not moments:
        return None
    return _seconds(age(datetime.fromtimestamp(min(moments), UTC), now))


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _entry(entry: UnexportableEntry) -> dict[str, str]:
    return {"order": entry.order, "reason": entry.reason}


def _worker(found: Found, now: datetime) -> dict[str, Any]:
    status = found.status
    if status is None:
        return {"file": str(found.path), "running": False, "problem": found.error}
    age = (now - status.heartbeat.astimezone(UTC)).total_seconds()
    return {
        "id": status.id,
        "host": status.host,
        "pid": status.pid,
        "mode": status.mode,
        "running": running_problem(status, now) is None,
        "heartbeat_age_seconds": round(age, 1),
        "store_connected": status.store_connected,
        "problem": file_problem(found, now),
    }


def status_lines(report: dict[str, Any]) -> list[str]:
    """The report for a terminal: one ``name: value`` line each, then the lists (text
    from outside — reasons, errors — shown escaped)."""
    lines = []
    for key, value in report.items():
        if key in ("workers", "unexportable", "field_drift", "marks_refused"):
            continue
        shown = _shown(key, value, report)
        lines.append(f"{key.replace('_', ' '):>27}: {printable(str(shown))}")
    for worker in report["workers"]:
        state = "running" if worker["running"] else "not running"
        name = worker.get("id") or worker.get("file")
        lines.append(printable(f"  worker {name}: {state}" + _problem_note(worker)))
    for entry in report.get("unexportable", []):
        lines.append(f"  unexportable {entry['order']}: {printable(entry['reason'])}")
    for key, seen in report.get("field_drift", {}).items():
        lines.append(
            printable(
                f"  ERP key {key!r} not in the format: {seen['files']} files checked carried"
                f" it, first {shown_time(seen['first'])}, last {shown_time(seen['last'])},"
                f" e.g. order {seen['example_order']}"
                + (f" in {seen['example_file']}" if seen.get("example_file") else "")
            )
        )
    more = (report.get("unexportable_total") or 0) - len(report.get("unexportable", []))
    if more > 0:
        lines.append(f"  … and {more} more unexportable orders")
    for entry in report.get("marks_refused", []):
        lines.append(f"  mark refused {entry['order']}: {printable(entry['reason'])}")
    more = (report.get("marks_refused_total") or 0) - len(report.get("marks_refused", []))
    if more > 0:
        lines.append(f"  … and {more} more orders whose mark was refused")
    return lines


def _shown(key: str, value: object, report: dict[str, Any]) -> object:
    """A value for a terminal; an age is "none" when nothing is behind, and so is the store
    error when the store answered."""
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "none"
    if value is not None:
        return value
    answered = key == "store_error" and report["store_reachable"]
    return "none" if answered or (key in LAG_OF and report.get(LAG_OF[key]) == 0) else "unknown"


def _problem_note(worker: dict[str, Any]) -> str:
    problem = worker.get("problem")
    if problem is None:
        return f" (pid {worker['pid']}, heartbeat {worker['heartbeat_age_seconds']:.0f} s ago)"
    return f"; {problem}"
