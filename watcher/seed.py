"""The challenge's sample data (SPEC §2.4): TracOS documents and ERP files for 1..N."""

from __future__ import annotations

import os
import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import get_args

import msgspec

from watcher.core.tracos import TracosStatus, TracosWorkOrder
from watcher.erp.formats.challenge.mapping import tracos_to_erp
from watcher.store import Document

STATUSES: tuple[str, ...] = get_args(TracosStatus)


def tracos_documents(count: int, now: datetime, rng: random.Random) -> list[Document]:
    """Documents like the challenge's generator writes: no isSynced, syncedAt or deletedAt."""
    docs = []
    for i in range(1, count + 1):
        created = now - timedelta(days=30) + timedelta(days=i)
        docs.append(
            {
                "number": i,
                "status": rng.choice(STATUSES),
                "title": f"Example workorder #{i}",
                "description": f"Example workorder #{i} description",
                "createdAt": created,
                "updatedAt": created + timedelta(hours=1),
                "deleted": False,
            }
        )
    return docs


def erp_orders(count: int, now: datetime, rng: random.Random) -> list[dict[str, object]]:
    """ERP orders with the ten keys in order, a few milliseconds newer than the TracOS ones.

    The flags come from the challenge format's own table; the dates keep their
    microseconds, as the challenge's generator wrote them.
    """
    orders = []
    for i in range(1, count + 1):
        created = now - timedelta(days=30) + timedelta(days=i)
        updated = created + timedelta(hours=1, milliseconds=5)
        status = rng.choice(STATUSES)
        deleted = rng.random() < 0.1
        stored = TracosWorkOrder(
            number=i,
            status=status,
            title=f"Example workorder #{i}",
            createdAt=created,
            updatedAt=updated,
            deleted=deleted,
        )
        order = msgspec.structs.replace(
            tracos_to_erp(stored),
            creation_date=created.isoformat(),
            last_update_date=updated.isoformat(),
            deleted_date=updated.isoformat() if deleted else None,
        )
        orders.append(msgspec.to_builtins(order))
    return orders


def write_erp_files(folder: Path, orders: list[dict[str, object]]) -> None:
    """``{orderNo}.json`` each, written to a temp name first so no reader sees half a file."""
    folder.mkdir(parents=True, exist_ok=True)
    for order in orders:
        temp = folder / f".{order['orderNo']}.json.tmp"
        temp.write_bytes(msgspec.json.encode(order))
        os.replace(temp, folder / f"{order['orderNo']}.json")
