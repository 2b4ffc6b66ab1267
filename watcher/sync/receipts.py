"""Receipts for the ERP (opt-in, ``RECEIPTS_DIR``): one JSON file per inbound file filed away.

Each says which file it was (its name and SHA-256, read back from where it was filed), when
it was taken, where it went, and per order what happened: inserted, updated, unchanged,
stale, conflict, or rejected with the reason and JSON path. A file rejected whole gets one
too. Written atomically (a temporary name, then a rename) after the file is filed away;
``watcher schema --receipts`` gives the JSON Schema. Off, nothing here runs.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import anyio
import msgspec

from watcher import fs as files
from watcher.core.tracos import Outcome
from watcher.erp import NotFiled, Taken
from watcher.sync.batches import InboundDone, OutboundDone

log = logging.getLogger(__name__)
SUFFIX: Final = ".receipt.json"


class OrderOutcome(msgspec.Struct, frozen=True, omit_defaults=True):
    """One order of the file: its outcome, or why it was rejected (``index`` in a batch)."""

    outcome: str  # inserted, updated, unchanged, stale, conflict, rejected
    orderNo: int | None = None
    index: int | None = None
    reason: str | None = None
    path: str | None = None


class Receipt(msgspec.Struct, frozen=True, omit_defaults=True):
    """What became of one inbound file."""

    file: str
    sha256: str | None  # None: the filed copy could not be read back
    taken_at: datetime
    filed: str  # archived, partly_rejected, quarantined
    filed_as: str  # its name in the archive (or failed) folder
    orders: list[OrderOutcome]


def receipt_schema() -> dict[str, Any]:
    return msgspec.json.schema(Receipt)


Made = tuple[Taken, str, list[OrderOutcome], datetime]  # a file, where it went, its receipt


class Receipts:
    def __init__(self, folder: Path, archive: Path, failed: Path) -> None:
        self.folder, self.archive, self.failed = folder, archive, failed
        # files whose filing away must wait (a full disk): their receipts, made with their
        # batch (the orders are dropped from a kept file), by claim, until they are filed
        self._later: dict[str, tuple[Taken, list[OrderOutcome], datetime]] = {}

    async def inbound(self, done: InboundDone) -> None:
        """One receipt per file filed away, with its batch or later (a file kept claimed
        gets its receipt when it is filed away)."""
        conflicts = {c.number for c in done.clashes if c.kind == "conflict"}
        made: list[Made] = []
        for item in done.files:
            if item.where is NotFiled.LATER and not done.refiled:
                orders = _orders(item.taken, item.outcomes, conflicts)
                self._later[item.taken.ref] = (item.taken, orders, done.filed_at)
            elif not isinstance(item.where, NotFiled):
                made.append(self._made(item.taken, item.where, item.outcomes, conflicts, done))
        if made:
            await anyio.to_thread.run_sync(self._write_all, made)

    def _made(
        self,
        taken: Taken,
        where: str,
        outcomes: Sequence[Outcome],
        conflicts: set[int],
        done: InboundDone,
    ) -> Made:
        kept = self._later.pop(taken.ref, None)
        if kept is not None:  # filed away now, its receipt made with its batch
            return kept[0], where, kept[1], kept[2]
        return taken, where, _orders(taken, outcomes, conflicts), done.filed_at

    async def outbound(self, done: OutboundDone) -> None:
        """Receipts are for inbound files only."""

    def _write_all(self, made: list[Made]) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            for item, where, orders, taken_at in made:
                self._write(item, where, orders, taken_at)
        except OSError as exc:  # a receipt never stops the worker
            log.error("cannot write receipts in %s: %s", self.folder, exc.strerror or exc)

    def _write(self, item: Taken, where: str, orders: list[OrderOutcome], at: datetime) -> None:
        """One receipt, named after the file as archived (or quarantined); a partly rejected
        batch's after the inbound file, never its ``.rejected`` part, and never replacing
        the receipt of an earlier file of that name."""
        filed = _filed(item)
        copy = {"archived": self.archive / where, "quarantined": self.failed / where}
        read_back = copy.get(filed, self.archive / item.name)  # partly: as it came
        receipt = Receipt(item.shown, _sha256(read_back), at, filed, where, orders)
        data = msgspec.json.format(msgspec.json.encode(receipt), indent=2) + b"\n"
        name = (item.shown if filed == "partly_rejected" else where) + SUFFIX
        temp = files.write_temp(self.folder, name, data, durable=True)
        if filed == "partly_rejected":
            files.move_without_clobber(temp, self.folder, name)
        else:
            files.replace_with(temp, self.folder / name)


def _orders(item: Taken, outcomes: Sequence[Outcome], conflicts: set[int]) -> list[OrderOutcome]:
    if item.verdict is None:
        error = item.error
        reason, path = (error.reason, error.path) if error else ("unusable", "$")
        return [OrderOutcome("rejected", reason=reason, path=path)]
    done = [
        OrderOutcome("conflict" if o.number in conflicts else str(outcome), o.number)
        for o, outcome in zip(item.verdict.orders, outcomes, strict=False)
    ]
    refused = [
        OrderOutcome("rejected", index=r.index, reason=r.reason, path=r.path)
        for r in item.verdict.rejected
    ]
    return done + refused


def _filed(item: Taken) -> str:
    if item.verdict is None:
        return "quarantined"
    return "partly_rejected" if item.verdict.rejected else "archived"


def _sha256(path: Path) -> str | None:
    try:
        with open(path, "rb", opener=_no_follow) as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:
        return None


def _no_follow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW)
