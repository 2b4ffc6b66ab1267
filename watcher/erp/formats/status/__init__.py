"""The ``status`` ERP dialect: the challenge's fields, but one string ``status``
(``NEW PENDING IN_PROGRESS ON_HOLD COMPLETED CANCELLED DELETED``) instead of five flags.

``FORMAT`` is what the registry hands out under the name ``status``.
"""

from __future__ import annotations

from typing import Final

from watcher.core.tracos import TracosWorkOrder
from watcher.erp.formats.status.mapping import status_to_tracos, tracos_to_status
from watcher.erp.formats.status.schema import StatusWorkOrder
from watcher.erp.port import FileVerdict, OutboundFile
from watcher.erp.strict_json import JsonOrders, encode_file

_orders: Final = JsonOrders(StatusWorkOrder, status_to_tracos)


class StatusFormat:
    """``ErpFormat`` for the status dialect."""

    name: Final = "status"

    def judge(self, data: bytes) -> FileVerdict:
        return _orders.judge(data)

    def render(self, order: TracosWorkOrder) -> OutboundFile:
        erp = tracos_to_status(order)
        return OutboundFile(f"{erp.order_no}.json", encode_file(erp))


FORMAT: Final = StatusFormat()
