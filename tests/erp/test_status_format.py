"""The ``status`` ERP dialect: one string instead of five flags, both directions."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from random import Random
from typing import Any, get_args

import msgspec
import pytest

from tests.helpers.builders import T0, status_erp, tracos, tracos_doc
from tests.helpers.conditions import wait_for
from tests.helpers.stores import make_settings
from tests.helpers.workers import drop, names, running
from watcher.cli.samples import erp_files
from watcher.core.errors import InvalidOrder, Unexportable
from watcher.core.tracos import OrderUpsert
from watcher.erp.formats.status import FORMAT
from watcher.erp.formats.status.mapping import STATUSES
from watcher.erp.formats.status.schema import ErpStatus
from watcher.sync.stats import Count


def judge_one(order: dict[str, Any]) -> OrderUpsert:
    verdict = FORMAT.judge(msgspec.json.encode(order))
    assert not verdict.rejected
    [upsert] = verdict.orders
    return upsert


def refused(order: object) -> InvalidOrder:
    with pytest.raises(InvalidOrder) as caught:
        FORMAT.judge(msgspec.json.encode(order))
    return caught.value


def test_the_table_covers_every_status_name() -> None:
    """Every status the schema accepts has its row in the one table."""
    assert set(STATUSES) == set(get_args(ErpStatus))


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("NEW", "created"),
        ("PENDING", "pending"),
        ("IN_PROGRESS", "in_progress"),
        ("ON_HOLD", "on_hold"),
        ("COMPLETED", "completed"),
        ("CANCELLED", "cancelled"),
    ],
)
def test_each_status_name_gives_its_status(name: str, status: str) -> None:
    """Each name maps to its TracOS status and is not a deletion."""
    order = judge_one(status_erp(status=name))
    assert (order.status, order.deleted, order.deletedAt) == (status, False, None)


def test_deleted_keeps_the_status_and_uses_the_deleted_date() -> None:
    """DELETED: deleted, deletedAt from deletedDate, status left to the store (None)."""
    order = judge_one(status_erp(status="DELETED", deletedDate="2025-10-02T10:00:00.123456Z"))
    assert (order.status, order.deleted) == (None, True)
    assert order.deletedAt == datetime(2025, 10, 2, 10, 0, 0, 123000, tzinfo=UTC)


def test_deleted_without_a_date_uses_the_last_update() -> None:
    """DELETED with deletedDate null → deletedAt = lastUpdateDate."""
    order = judge_one(status_erp(status="DELETED"))
    assert order.deletedAt == order.updatedAt == T0


@pytest.mark.parametrize("value", ["new", "Pending", "DONE", "", " NEW", 1, None, True])
def test_other_status_values_are_refused_at_their_path(value: object) -> None:
    """Names are matched exactly (upper case); anything else is refused at $.status."""
    error = refused(status_erp(status=value))
    assert error.path == "$.status"


def test_a_bad_status_in_a_batch_is_refused_with_its_index() -> None:
    """In a batch, only the element with the bad status is refused, at $[i].status."""
    batch = [status_erp(orderNo=1), status_erp(orderNo=2, status="done"), status_erp(orderNo=3)]
    verdict = FORMAT.judge(msgspec.json.encode(batch))
    assert [o.number for o in verdict.orders] == [1, 3]
    assert [(r.index, r.path) for r in verdict.rejected] == [(1, "$[1].status")]


def test_deleted_date_without_deleted_status_is_refused() -> None:
    """deletedDate set while the status is not DELETED is refused at its path."""
    error = refused(status_erp(deletedDate="2025-10-02T10:00:00Z"))
    assert (error.reason, error.path) == (
        "deletedDate is set but status is not DELETED",
        "$.deletedDate",
    )


def test_missing_status_is_named() -> None:
    """A missing status is reported with its name and path."""
    order = status_erp()
    del order["status"]
    error = refused(order)
    assert (error.reason, error.path) == ("missing required field `status`", "$.status")


def test_the_challenge_flags_are_not_a_status() -> None:
    """A challenge-format file is refused: it has no status."""
    error = refused({"orderNo": 1, "isDone": True, "summary": "x"})
    assert error.path == "$.status"


@pytest.mark.parametrize(
    ("status", "name"),
    [
        ("created", "NEW"),
        ("pending", "PENDING"),
        ("in_progress", "IN_PROGRESS"),
        ("on_hold", "ON_HOLD"),
        ("completed", "COMPLETED"),
        ("cancelled", "CANCELLED"),
    ],
)
def test_each_status_goes_out_as_its_name(status: str, name: str) -> None:
    """Outbound writes the same dialect; created → NEW."""
    data = msgspec.json.decode(FORMAT.render(tracos(status=status)).data)
    assert (data["status"], data["deletedDate"]) == (name, None)


@pytest.mark.parametrize("doc", [{"deleted": True, "status": "completed"}, {"status": "deleted"}])
def test_a_deleted_order_goes_out_as_deleted(doc: dict[str, Any]) -> None:
    """deleted: true (or the legacy status "deleted") → DELETED, with its date."""
    data = msgspec.json.decode(FORMAT.render(tracos(**doc)).data)
    assert (data["status"], data["deletedDate"]) == ("DELETED", data["lastUpdateDate"])


def test_the_outbound_file_has_the_six_keys_in_order() -> None:
    """The file: six keys in this order, dates as …+00:00, named {orderNo}.json."""
    file = FORMAT.render(tracos(deleted=True, deletedAt=T0))
    data = msgspec.json.decode(file.data)
    assert list(data) == [
        "orderNo", "status", "summary", "creationDate", "lastUpdateDate", "deletedDate",
    ]  # fmt: skip
    assert (file.name, data["deletedDate"]) == ("7.json", "2025-10-01T00:04:29.045000+00:00")


def test_an_unknown_status_is_unexportable() -> None:
    """A stored status outside the table cannot go out."""
    with pytest.raises(Unexportable, match="unknown status 'archived'"):
        FORMAT.render(tracos(status="archived"))


@pytest.mark.anyio
@pytest.mark.system
async def test_a_worker_speaks_the_status_dialect_both_ways(tmp_path: Path) -> None:
    """ERP_FORMAT=status: files in change the store (DELETED keeps the status), files out
    are in the dialect; the same pipelines, folders and store as the challenge format."""
    settings = make_settings(tmp_path, erp_format="status")
    async with running(settings) as worker:
        await worker.store.put_documents([tracos_doc(1, status="on_hold")])
        await wait_for(lambda: worker.stats.counters[Count.EXPORTED] == 1, "order 1 exported")
        sent = msgspec.json.decode((settings.outbound_dir / "1.json").read_bytes())
        assert (sent["orderNo"], sent["status"]) == (1, "ON_HOLD")
        later = "2025-10-02T00:00:00+00:00"
        drop(
            settings.inbound_dir,
            "a.json",
            msgspec.json.encode(status_erp(orderNo=1, status="DELETED", lastUpdateDate=later)),
        )
        drop(
            settings.inbound_dir,
            "b.json",
            msgspec.json.encode(status_erp(orderNo=2, status="DELETED")),
        )
        drop(
            settings.inbound_dir, "c.json", msgspec.json.encode(status_erp(orderNo=3, status="NEW"))
        )
        await wait_for(lambda: len(names(settings.archive_dir)) == 3, "three files archived")
        docs = {d["number"]: d for d in await worker.store.find()}
    assert [(docs[n]["status"], docs[n]["deleted"]) for n in (1, 2, 3)] == [
        ("on_hold", True),
        ("created", True),
        ("created", False),
    ]
    assert names(settings.failed_dir) == []


def test_sample_files_come_in_the_status_dialect() -> None:
    """`watcher seed` with ERP_FORMAT=status writes files this format takes whole."""
    files = erp_files(FORMAT, 30, T0, Random(3))
    assert [f.name for f in files] == [f"{i}.json" for i in range(1, 31)]
    verdicts = [FORMAT.judge(f.data) for f in files]
    assert [v.orders[0].number for v in verdicts if not v.rejected] == list(range(1, 31))
