"""``watcher verify``: where the store and the ERP's folders disagree, found as a stream.

Each check walks one thing in bounded batches (the outbound folder, the unsynced orders,
every order by number, the archive), so a million orders never sit in memory. Beside a
running worker a difference may be a write in flight: each one found is looked at again
once before it is reported. Unsynced orders count only once they have waited longer
than ``grace`` (the worker exports them within milliseconds).
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, Iterator, Sequence
from contextlib import aclosing
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal

import msgspec

from watcher import fs as files
from watcher.core.errors import RejectedInput, Unexportable
from watcher.core.printable import shown_time
from watcher.core.tracos import OrderUpsert, erps_own, read_tracos, stored_date
from watcher.erp import ErpFormat, is_candidate
from watcher.store import Document, WorkOrderStore

BATCH: Final = 500
MAX_FILE: Final = 1 << 20  # an outbound file is one order
Kind = Literal[
    "file_differs",
    "file_superseded",
    "file_newer",
    "file_without_order",
    "file_unreadable",
    "unsynced",
    "stored_twice",
    "archive_newer",
]


class Finding(msgspec.Struct, frozen=True, omit_defaults=True):
    """One disagreement (or, for ``unsynced`` within the grace, a note)."""

    kind: Kind
    number: int | None = None
    file: str | None = None
    file_version: datetime | None = None
    stored_version: datetime | None = None
    waiting_seconds: float | None = None
    reason: str | None = None  # why a file could not be read as one order
    counts: bool = True  # a disagreement (exit 1), not only a note

    def line(self) -> str:
        """One line for an operator."""
        file, number = self.file or "?", self.number
        said = {
            "file_differs": f"outbound/{file} holds another version than stored order {number}",
            "file_superseded": (
                f"outbound/{file} holds another version than the ERP's own, stored as order"
                f" {number}: to be withdrawn"
            ),
            "file_newer": f"outbound/{file} is newer than stored order {number}",
            "file_without_order": f"outbound/{file}: no order {number} is stored",
            "file_unreadable": f"outbound/{file} is not one order: {self.reason}",
            "unsynced": f"order {number} is unsynced, waiting {_age(self.waiting_seconds)}",
            "stored_twice": f"order {number} is stored more than once",
            "archive_newer": f"archive/{file} holds a newer version of order {number}",
        }[self.kind]
        versions = [
            f"{what} {shown_time(when)}"
            for what, when in (("file", self.file_version), ("stored", self.stored_version))
            if when is not None
        ]
        return said + (f" ({', '.join(versions)})" if versions else "")


async def verify(
    store: WorkOrderStore,
    erp: ErpFormat,
    *,
    outbound: Path,
    archive: Path | None,
    now: datetime,
    grace: timedelta,
) -> AsyncGenerator[Finding, None]:
    """Every disagreement found, as found."""
    checks = [
        _outbound(store, erp, outbound),
        _unsynced(store, now, grace),
        _twice(store),
    ]
    if archive is not None:
        checks.append(_archive(store, erp, archive))
    for check in checks:
        async with aclosing(check) as found:
            async for finding in found:
                yield finding


async def _outbound(
    store: WorkOrderStore, erp: ErpFormat, folder: Path
) -> AsyncGenerator[Finding, None]:
    for names in _batches(folder):
        suspects = await _file_findings(store, erp, folder, names)
        if suspects:  # a write in flight? looked at once more
            again = [finding.file for finding in suspects if finding.file]
            for finding in await _file_findings(store, erp, folder, again):
                yield finding


async def _file_findings(
    store: WorkOrderStore, erp: ErpFormat, folder: Path, names: list[str]
) -> list[Finding]:
    held = {name: _order_in(erp, folder / name) for name in names}
    numbers = [order.number for order, _ in held.values() if isinstance(order, OrderUpsert)]
    stored = {doc["number"]: doc for doc in await store.find(numbers)} if numbers else {}
    found = []
    for name, (order, data) in held.items():
        if isinstance(order, str):
            found.append(Finding("file_unreadable", file=name, reason=order))
            continue
        if order is None:
            continue
        finding = _judge_file(erp, name, order, data, stored.get(order.number))
        if finding is not None:
            found.append(finding)
    return found


def _judge_file(
    erp: ErpFormat, name: str, order: OrderUpsert, data: bytes, doc: Document | None
) -> Finding | None:
    """A file that is not the stored, synced version of its order (unsynced: pending)."""
    if doc is None:
        return Finding("file_without_order", order.number, name, order.updatedAt)
    if doc.get("isSynced") is not True:
        return None  # the worker exports it: see the unsynced check
    stored = stored_date(doc.get("updatedAt"))
    if order.updatedAt > stored:
        return Finding("file_newer", order.number, name, order.updatedAt, stored)
    try:
        wanted = erp.render(read_tracos(doc)).data
    except Unexportable:
        return None  # reported by the worker as unexportable
    if wanted == data:
        return None
    kind: Kind = "file_superseded" if erps_own(doc) else "file_differs"
    return Finding(kind, order.number, name, order.updatedAt, stored)


async def _unsynced(
    store: WorkOrderStore, now: datetime, grace: timedelta
) -> AsyncGenerator[Finding, None]:
    async with aclosing(store.iter_unsynced(BATCH)) as batches:
        async for batch in batches:
            for stored in batch:
                since = stored.changed_at or stored_date(stored.doc.get("updatedAt"))
                waited = max(0.0, (now - since).total_seconds())
                number = stored.doc.get("number")
                yield Finding(
                    "unsynced",
                    number if isinstance(number, int) else None,
                    stored_version=stored_date(stored.doc.get("updatedAt")),
                    waiting_seconds=round(waited, 3),
                    counts=waited > grace.total_seconds(),
                )


async def _twice(store: WorkOrderStore) -> AsyncGenerator[Finding, None]:
    """Documents come ordered by number: a number stored twice comes twice in a row."""
    last: Any = None
    async with aclosing(store.iter_documents(BATCH)) as batches:
        async for batch in batches:
            for doc in batch:
                number = doc.get("number")
                if number == last:
                    yield Finding("stored_twice", number)
                last = number


async def _archive(
    store: WorkOrderStore, erp: ErpFormat, folder: Path
) -> AsyncGenerator[Finding, None]:
    for names in _batches(folder):
        orders = [(name, order) for name in names for order in _orders_in(erp, folder / name)]
        numbers = sorted({order.number for _, order in orders})
        docs = await store.find(numbers) if numbers else []
        stored = {doc["number"]: stored_date(doc.get("updatedAt")) for doc in docs}
        for name, order in orders:
            when = stored.get(order.number)
            if when is None or order.updatedAt > when:
                yield Finding("archive_newer", order.number, name, order.updatedAt, when)


def _batches(folder: Path) -> Iterator[list[str]]:
    """The folder's candidate file names, ``BATCH`` at a time (never all in memory)."""
    try:
        entries = os.scandir(folder)
    except FileNotFoundError:
        return
    with entries:
        batch: list[str] = []
        for entry in entries:
            if is_candidate(entry.name) and not entry.is_dir(follow_symlinks=False):
                batch.append(entry.name)
                if len(batch) == BATCH:
                    yield batch
                    batch = []
        if batch:
            yield batch


def _order_in(erp: ErpFormat, path: Path) -> tuple[OrderUpsert | str | None, bytes]:
    """The one order an outbound file holds; None when it is gone; else why it is not
    one order (damaged, not a regular file, a batch): the ERP could not use it either."""
    try:
        data = files.read_regular(path, MAX_FILE)[0]
    except FileNotFoundError:
        return None, b""  # gone meanwhile (the ERP took it)
    except OSError as exc:
        return str(exc.strerror or exc), b""
    try:
        orders = erp.judge(data).orders
    except RejectedInput as exc:
        return f"{exc.reason} at {exc.path}", data
    return (orders[0], data) if len(orders) == 1 else (f"{len(orders)} orders", data)


def _orders_in(erp: ErpFormat, path: Path) -> Sequence[OrderUpsert]:
    try:
        return erp.judge(files.read_regular(path, MAX_FILE * 512)[0]).orders
    except (OSError, RejectedInput):
        return []


def _age(seconds: float | None) -> str:
    left = int(seconds or 0)
    hours, rest = divmod(left, 3600)
    return f"{hours}h {rest // 60}m" if hours else f"{rest // 60}m {rest % 60}s"
