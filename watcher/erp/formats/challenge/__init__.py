"""The challenge's ERP format (docs/spec.md §2.1, §2.3): five status flags, one JSON file per order.

``FORMAT`` is what the registry hands out under the name ``challenge``.
"""

from __future__ import annotations

from typing import Any, Final

from watcher.core.tracos import TracosWorkOrder
from watcher.erp.formats.challenge.mapping import erp_to_tracos, tracos_to_erp
from watcher.erp.formats.challenge.schema import ErpFileOrder, ErpWorkOrder
from watcher.erp.formats.json.strict import JsonOrders, encode_file, file_schema
from watcher.erp.port import Direction, FileVerdict, OutboundFile

_orders: Final = JsonOrders(ErpWorkOrder, erp_to_tracos)


class ChallengeFormat:
    """``ErpFormat`` for the challenge's files."""

    name: Final = "challenge"

    def judge(self, data: bytes) -> FileVerdict:
        return _orders.judge(data)

    def render(self, order: TracosWorkOrder) -> OutboundFile:
        erp = tracos_to_erp(order)
        return OutboundFile(f"{erp.order_no}.json", encode_file(erp))

    def schema(self, direction: Direction) -> dict[str, Any]:
        if direction == "outbound":
            return file_schema(ErpFileOrder, self.name)
        return _orders.schema(self.name)


FORMAT: Final = ChallengeFormat()
