"""The ``status`` ERP dialect: the challenge's fields, but one string ``status``
(``NEW PENDING IN_PROGRESS ON_HOLD COMPLETED CANCELLED DELETED``) instead of five flags.

``FORMAT`` is what the registry hands out under the name ``status``.
"""

from __future__ import annotations

from typing import Any, Final

from watcher.core.tracos import TracosWorkOrder
from watcher.erp.formats.json.strict import JsonOrders, encode_file, file_schema
from watcher.erp.formats.status.mapping import status_to_tracos, tracos_to_status
from watcher.erp.formats.status.schema import StatusFileOrder, StatusWorkOrder
from watcher.erp.port import Direction, FileVerdict, OutboundFile

_orders: Final = JsonOrders(StatusWorkOrder, status_to_tracos)


class StatusFormat:
    """``ErpFormat`` for the status dialect."""

    name: Final = "status"

    def judge(self, data: bytes) -> FileVerdict:
        return _orders.judge(data)

    def render(self, order: TracosWorkOrder) -> OutboundFile:
        erp = tracos_to_status(order)
        return OutboundFile(f"{erp.order_no}.json", encode_file(erp))

    def schema(self, direction: Direction) -> dict[str, Any]:
        if direction == "outbound":
            return file_schema(StatusFileOrder, self.name)
        return _orders.schema(self.name)


FORMAT: Final = StatusFormat()
