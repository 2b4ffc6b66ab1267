"""The challenge's sample data (SPEC §2.4): TracOS documents and ERP files for 1..N."""

from __future__ import annotations

import os
import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import get_args

import msgspec

from watcher.model import Status
from watcher.store import Document

STATUSES: tuple[str, ...] = get_args(Status)
ERP_FLAGS = {
    "cancelled": "isCanceled",
    "completed": "isDone",
    "on_hold": "isOnHold",
    "pending": "isPending",
}


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
    """ERP orders with the ten keys in order, a few milliseconds newer than the TracOS ones."""
    orders = []
    for i in range(1, count + 1):
        created = now - timedelta(days=30) + timedelta(days=i)
        updated = created + timedelta(hours=1, milliseconds=5)
        flag = ERP_FLAGS.get(rng.choice(STATUSES))
        deleted = rng.random() < 0.1
        orders.append(
            {
                "orderNo": i,
                "isCanceled": flag == "isCanceled",
                "isDeleted": deleted,
                "isDone": flag == "isDone",
                "isOnHold": flag == "isOnHold",
                "isPending": flag == "isPending",
                "summary": f"Example workorder #{i}",
                "creationDate": created.isoformat(),
                "lastUpdateDate": updated.isoformat(),
                "deletedDate": updated.isoformat() if deleted else None,
            }
        )
    return orders


def write_erp_files(folder: Path, orders: list[dict[str, object]]) -> None:
    """``{orderNo}.json`` each, written to a temp name first so no reader sees half a file."""
    folder.mkdir(parents=True, exist_ok=True)
    for order in orders:
        temp = folder / f".{order['orderNo']}.json.tmp"
        temp.write_bytes(msgspec.json.encode(order))
        os.replace(temp, folder / f"{order['orderNo']}.json")
