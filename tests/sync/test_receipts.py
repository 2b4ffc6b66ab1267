"""Receipts for the ERP (RECEIPTS_DIR): one per inbound file, with each order's outcome."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.helpers.builders import NOW, T0, erp, order, tracos_doc
from tests.helpers.stores import make_settings
from tests.helpers.workers import cli, drop, opened_store
from watcher.app import build_worker
from watcher.core.settings import Settings
from watcher.core.tracos import Clash, Outcome
from watcher.erp.port import FileVerdict, NotFiled, Taken
from watcher.sync.batches import FiledFile, InboundDone
from watcher.sync.receipts import Receipts

pytestmark = pytest.mark.anyio


async def once(settings: Settings) -> None:
    worker = build_worker(settings)
    await worker.open()
    try:
        await worker.once()
    finally:
        await worker.close()


def receipts(folder: Path) -> dict[str, dict[str, Any]]:
    return {json.loads(p.read_text())["file"]: json.loads(p.read_text()) for p in folder.iterdir()}


async def test_each_file_gets_a_receipt_with_each_orders_outcome(tmp_path: Path) -> None:
    """Inserted, conflict, rejected with its path, a file rejected whole; the checksum is
    the archived file's."""
    settings = make_settings(tmp_path, receipts_dir=tmp_path / "receipts")
    async with opened_store(settings) as store:
        await store.put_documents(
            [tracos_doc(2, title="TracOS's", updatedAt=T0 - timedelta(hours=1))]
        )
    one = json.dumps(erp(orderNo=1)).encode()
    batch = json.dumps(
        [erp(orderNo=2, summary="ERP's"), erp(orderNo=3, isDone=True, isPending=True)]
    )
    drop(settings.inbound_dir, "one.json", one)
    drop(settings.inbound_dir, "batch.json", batch.encode())
    drop(settings.inbound_dir, "broken.json", b"{not json")
    await once(settings)
    found = receipts(settings.receipts_dir)  # type: ignore[arg-type]
    assert found["one.json"]["orders"] == [{"outcome": "inserted", "orderNo": 1}]
    assert found["one.json"]["sha256"] == hashlib.sha256(one).hexdigest()
    assert found["one.json"]["filed"] == "archived"
    [conflict, rejected] = found["batch.json"]["orders"]
    assert conflict == {"outcome": "conflict", "orderNo": 2}
    assert (rejected["outcome"], rejected["index"], rejected["path"]) == ("rejected", 1, "$[1]")
    assert found["broken.json"]["filed"] == "quarantined"
    assert found["broken.json"]["orders"][0]["outcome"] == "rejected"
    names = sorted(p.name for p in settings.receipts_dir.iterdir())  # type: ignore[union-attr]
    assert names == [
        "batch.json.receipt.json",  # after the inbound file, not its `.rejected` part
        "broken.json.receipt.json",
        "one.json.receipt.json",
    ]


async def test_a_file_filed_away_later_gets_its_receipt_then(tmp_path: Path) -> None:
    """A file that could not be filed away with its batch (a full disk) stays claimed,
    its orders stored; when a later pass files it away, its receipt comes, with the
    outcomes and the conflict of its batch (a kept file no longer holds its orders)."""
    made = Receipts(tmp_path / "receipts", tmp_path / "archive", tmp_path / "failed")
    orders = [order(4), order(5)]
    item = Taken("4.json", "claims/4.json", NOW.timestamp(), FileVerdict(orders, [], True))
    outcomes = [Outcome.INSERTED, Outcome.UPDATED]
    clash = Clash("conflict", 5, Outcome.UPDATED, T0, T0, "", ())
    held = FiledFile(item, NotFiled.LATER, outcomes)
    await made.inbound(InboundDone([held], NOW, NOW, clashes=[clash]))
    assert not (tmp_path / "receipts").exists()
    (tmp_path / "archive").mkdir()
    (tmp_path / "archive" / "4.json").write_bytes(b"[]")
    kept = msgspec.structs.replace(item, verdict=item.verdict and item.verdict.stored())
    later = NOW + timedelta(minutes=1)
    await made.inbound(InboundDone([FiledFile(kept, "4.json", outcomes)], later, later, True))
    receipt = json.loads((tmp_path / "receipts" / "4.json.receipt.json").read_text())
    assert receipt["orders"] == [
        {"outcome": "inserted", "orderNo": 4},
        {"outcome": "conflict", "orderNo": 5},
    ]
    assert (receipt["filed"], receipt["filed_as"]) == ("archived", "4.json")
    assert receipt["sha256"] == hashlib.sha256(b"[]").hexdigest()


async def test_no_receipts_unless_asked(settings: Settings) -> None:
    """Off by default: nothing is written anywhere but the usual folders."""
    drop(settings.inbound_dir, "one.json", json.dumps(erp(orderNo=1)).encode())
    await once(settings)
    made = {p.name for p in settings.inbound_dir.parent.iterdir()}
    assert made <= {"archive", "failed", "inbound", "outbound", "state"}


def test_schema_of_the_receipts(settings: Settings) -> None:
    """`watcher schema --receipts`: a JSON Schema naming the receipt's fields."""
    schema = json.loads(cli(settings, "schema", "--receipts").stdout)
    assert set(schema["$defs"]["Receipt"]["properties"]) >= {"file", "sha256", "orders"}
