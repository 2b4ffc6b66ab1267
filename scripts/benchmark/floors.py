"""The floors: the bare work of each scenario, as a plain script would do it.

Imported by the scenarios for the floors timed in the bench's own process, and run on its
own, by path (so that it imports nothing of the bench): ``floors.py inbound ROOT`` for the
floor of a whole ``watcher once`` process (it pays for its own interpreter start, as
``watcher once`` does), ``floors.py follow ROOT COUNT`` for the floor of a running worker
(already started, it takes the files as the benchmark renames them in, in the same
folder); ``batch ROOT`` and ``follow-batch ROOT COUNT`` the same for batch files (one
file of many orders: read, decode, one bulk upsert, claim and archive renames).
Imports only what the bare work needs (msgspec, sqlite3 and the ERP order's Struct).
"""

from __future__ import annotations

import ctypes
import os
import sqlite3
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Final

import msgspec

from watcher.erp.formats.challenge.schema import ErpWorkOrder

_decode_one = msgspec.json.Decoder(ErpWorkOrder).decode
_decode_many = msgspec.json.Decoder(list[ErpWorkOrder]).decode
_syncfs = getattr(ctypes.CDLL(None, use_errno=True), "syncfs", None)


class FloorDb:
    """A fresh SQLite file in WAL mode (synchronous=FULL, like the store) for the floors."""

    UPSERT: Final = (
        "INSERT INTO workorders VALUES (?, ?, 1, ?) ON CONFLICT(number) DO UPDATE SET"
        " updated_at = excluded.updated_at, doc = excluded.doc"
        " WHERE excluded.updated_at > updated_at"
    )

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS workorders (number INTEGER PRIMARY KEY,"
            " updated_at INTEGER, synced INTEGER NOT NULL, doc TEXT NOT NULL)"
        )

    def write(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        self.db.executemany(sql, rows)
        self.db.execute("COMMIT")

    def add_unsynced(self, numbers: Iterable[int]) -> None:
        """Rows for the outbound floors to mark."""
        self.write("INSERT INTO workorders VALUES (?, 0, 0, '{}')", [(n,) for n in numbers])

    def upsert(self, orders: Sequence[ErpWorkOrder]) -> None:
        encode = msgspec.json.encode
        rows = [(o.order_no, int(o.last_update_date.timestamp() * 1000), encode(o)) for o in orders]
        self.write(self.UPSERT, rows)


def inbound(root: Path, count: int = 0) -> None:
    """List ``root/inbound``, read and decode each file, claim it by rename, archive it by
    rename; one bulk upsert. With a ``count``: list again until that many were taken."""
    folder, claim, archive = root / "inbound", root / "claim", root / "archive"
    claim.mkdir(exist_ok=True)
    archive.mkdir(exist_ok=True)
    db = FloorDb(root / "floor.sqlite3")
    orders: list[ErpWorkOrder] = []
    while True:
        names = os.listdir(folder)
        for name in names:
            with open(folder / name, "rb") as handle:
                orders.append(_decode_one(handle.read()))
            os.rename(folder / name, claim / name)
            os.rename(claim / name, archive / name)
        if len(orders) >= count:
            break
        if not names:
            time.sleep(0.001)  # nothing landed yet: leave the core to the one renaming in
    db.upsert(orders)


def follow(root: Path, count: int) -> None:
    """Say it is ready (``root/ready``), then take ``count`` files as they land."""
    (root / "inbound").mkdir(parents=True, exist_ok=True)
    db = FloorDb(root / "floor.sqlite3")  # opened before, as a running worker's store is
    db.db.close()
    (root / "ready").touch()
    inbound(root, count)


def batch(path: Path, db: FloorDb) -> None:
    """Read and decode one batch file; one bulk upsert."""
    db.upsert(_decode_many(path.read_bytes()))


def batch_files(root: Path, count: int = 1) -> None:
    """Take ``count`` batch files from ``root/inbound`` as they land: claim each by rename,
    read, decode, one bulk upsert, archive by rename (a batch's work, as ``inbound`` is a
    burst's). With ``count`` 0: the files already there."""
    folder, claim, archive = root / "inbound", root / "claim", root / "archive"
    claim.mkdir(exist_ok=True)
    archive.mkdir(exist_ok=True)
    db, taken = FloorDb(root / "floor.sqlite3"), 0
    while True:
        names = os.listdir(folder)
        for name in names:
            os.rename(folder / name, claim / name)
            batch(claim / name, db)
            os.rename(claim / name, archive / name)
        taken += len(names)
        if taken >= count:
            return
        if not names:
            time.sleep(0.001)


def follow_batch(root: Path, count: int) -> None:
    """Say it is ready (``root/ready``), then take ``count`` batch files as they land."""
    (root / "inbound").mkdir(parents=True, exist_ok=True)
    FloorDb(root / "floor.sqlite3").db.close()
    (root / "ready").touch()
    batch_files(root, count)


def outbound(files: Sequence[tuple[str, bytes]], folder: Path, db: FloorDb) -> None:
    """Write each file to a temp name, make the data durable once for all (``syncfs``, or
    an fsync each where there is none), rename each, fsync the folder once; one bulk mark."""
    temps = []
    for name, data in files:
        temp = folder / f".{name}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
            if _syncfs is None:
                os.fsync(fd)
        finally:
            os.close(fd)
        temps.append((temp, folder / name))
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if _syncfs is not None and _syncfs(fd) != 0:
            raise OSError(ctypes.get_errno(), "syncfs failed")
        for temp, target in temps:
            os.rename(temp, target)
        os.fsync(fd)
    finally:
        os.close(fd)
    marks = [(int(name.removesuffix(".json")),) for name, _ in files]
    db.write("UPDATE workorders SET synced = 1 WHERE number = ? AND synced = 0", marks)


if __name__ == "__main__":
    match sys.argv[1:]:
        case ["inbound", root]:
            inbound(Path(root))
        case ["follow", root, count]:
            follow(Path(root), int(count))
        case ["batch", root]:
            batch_files(Path(root), 0)
        case ["follow-batch", root, count]:
            follow_batch(Path(root), int(count))
        case _:
            raise SystemExit(
                "usage: floors.py inbound ROOT | follow ROOT COUNT | batch ROOT"
                " | follow-batch ROOT COUNT"
            )
