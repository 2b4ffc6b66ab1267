"""A third-party ERP format, defined only in the tests: the proof that a format is added
without editing the package (it is found through the ``tracos_sync.erp_formats`` entry
point written by ``install``).

Its ERP writes ``{"id": 5, "title": "...", "changed": "...", "done": false}``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Final

from watcher.core.tracos import OrderNo, OrderUpsert, TracosWorkOrder
from watcher.erp.formats.json.strict import (
    JsonOrders,
    WireStruct,
    encode_file,
    file_schema,
    format_date,
    utc,
)
from watcher.erp.port import Direction, FileVerdict, OutboundFile


class TinyOrder(WireStruct, frozen=True, kw_only=True):
    id: OrderNo
    title: str
    changed: datetime
    done: bool


class TinyFile(WireStruct, frozen=True, kw_only=True):
    id: int
    title: str
    changed: str
    done: bool


def tiny_to_tracos(order: TinyOrder) -> OrderUpsert:
    changed = utc(order.changed, "changed")
    return OrderUpsert(
        number=order.id,
        status="completed" if order.done else "pending",
        title=order.title,
        description=order.title,
        createdAt=changed,
        updatedAt=changed,
        deleted=False,
        deletedAt=None,
    )


_orders: Final = JsonOrders(TinyOrder, tiny_to_tracos)


class TinyFormat:
    name: Final = "tiny"

    def judge(self, data: bytes) -> FileVerdict:
        return _orders.judge(data)

    def render(self, order: TracosWorkOrder) -> OutboundFile:
        file = TinyFile(
            id=order.number,
            title=order.title,
            changed=format_date(order.updatedAt),
            done=order.status == "completed",
        )
        return OutboundFile(f"wo-{order.number}.json", encode_file(file))

    def schema(self, direction: Direction) -> dict[str, Any]:
        return (
            file_schema(TinyFile, self.name)
            if direction == "outbound"
            else _orders.schema(self.name)
        )


FORMAT: Final = TinyFormat()


def install(site: Path) -> Path:
    """Write the distribution metadata a ``pip install`` of this format would leave."""
    info = site / "tiny_erp_format-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tiny-erp-format\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[tracos_sync.erp_formats]\ntiny = tests.helpers.tiny_format:FORMAT\n"
    )
    return site
