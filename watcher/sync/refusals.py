"""Orders the store refuses for good (a validator, a size limit, a shard key) are rejected
like a bad element of a batch: the file reaches the failed folder with a report naming the
order and the server's reason, and the other orders are stored. Never an outage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import msgspec

from watcher.core.errors import InvalidOrder, OrdersRefused
from watcher.core.tracos import Clash, OrderUpsert, Outcome
from watcher.erp import LISTED, FileVerdict, Rejection, Taken
from watcher.store import WorkOrderStore


async def upsert_refusing(
    store: WorkOrderStore,
    taken: Sequence[Taken],
    orders: Sequence[OrderUpsert],
    now: datetime,
    clashes: list[Clash],
) -> tuple[list[Taken], list[Outcome]]:
    """Upsert ``orders`` (those of ``taken``, in order); what was taken, with the orders the
    store refused turned into rejections, and the outcomes of the others. ``clashes`` gets
    the conflicts of this call (cleared first: a retried call reports afresh)."""
    clashes.clear()
    try:
        return list(taken), await store.upsert(orders, now, clashes)
    except OrdersRefused as exc:
        return refuse(taken, exc.refused), [o for o in exc.outcomes if o is not None]


def refuse(taken: Sequence[Taken], refused: Mapping[int, str]) -> list[Taken]:
    """``taken`` with the refused orders (by their index among all the orders) taken out of
    each verdict: a single-order file is quarantined, a batch has them as rejected elements."""
    position, result = 0, []
    for item in taken:
        count = len(item.verdict.orders) if item.verdict else 0
        mine = {i - position: why for i, why in refused.items() if position <= i < position + count}
        position += count
        result.append(_refused_in(item, mine) if mine else item)
    return result


def _refused_in(item: Taken, refused: Mapping[int, str]) -> Taken:
    verdict = item.verdict
    assert verdict is not None
    if not verdict.is_batch:
        order = verdict.orders[0]
        error = InvalidOrder(_said(order, refused[0]))
        return msgspec.structs.replace(item, verdict=None, error=error)
    kept = [o for i, o in enumerate(verdict.orders) if i not in refused]
    listed, unlisted = list(verdict.rejected), verdict.unlisted
    data = list(verdict.rejected_data)
    for index, reason in sorted(refused.items()):
        order = verdict.orders[index]
        if len(listed) < LISTED:
            listed.append(Rejection(None, "$", _said(order, reason)))
        else:
            unlisted += 1
        data.append(msgspec.json.encode(order))  # as the store was asked to write it
    return msgspec.structs.replace(item, verdict=_verdict(verdict, kept, listed, unlisted, data))


def _verdict(
    verdict: FileVerdict,
    orders: list[OrderUpsert],
    rejected: list[Rejection],
    unlisted: int,
    data: list[bytes],
) -> FileVerdict:
    return msgspec.structs.replace(
        verdict, orders=orders, rejected=rejected, unlisted=unlisted, rejected_data=data
    )


def _said(order: OrderUpsert, reason: str) -> str:
    return f"order {order.number}: {reason}"
