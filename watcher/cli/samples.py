"""The challenge's sample data (docs/spec.md §2.4): TracOS documents and ERP files for 1..N,
the ERP files in the configured format."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final, get_args

import msgspec

from watcher.core.tracos import TracosStatus, TracosWorkOrder
from watcher.erp import ChallengeFormat, ErpFormat, OutboundFile, tracos_to_erp
from watcher.fs import replace_with, write_temp
from watcher.store import Document, PutResult

STATUSES: tuple[str, ...] = get_args(TracosStatus)
CHALLENGE: Final = ChallengeFormat.name


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


def sample_orders(count: int, now: datetime, rng: random.Random) -> list[TracosWorkOrder]:
    """The ERP side's orders 1..N, a few milliseconds newer than the TracOS documents."""
    orders = []
    for i in range(1, count + 1):
        created = now - timedelta(days=30) + timedelta(days=i)
        updated = created + timedelta(hours=1, milliseconds=5)
        status = rng.choice(STATUSES)
        deleted = rng.random() < 0.1
        orders.append(
            TracosWorkOrder(
                number=i,
                status=status,
                title=f"Example workorder #{i}",
                createdAt=created,
                updatedAt=updated,
                deleted=deleted,
                deletedAt=updated if deleted else None,
            )
        )
    return orders


def erp_orders(count: int, now: datetime, rng: random.Random) -> list[dict[str, object]]:
    """Challenge-format orders with the ten keys in order, as the challenge's generator
    wrote them: flags from the format's own table, dates with their microseconds."""
    orders = []
    for stored in sample_orders(count, now, rng):
        deleted = stored.deletedAt.isoformat() if stored.deletedAt else None
        order = msgspec.structs.replace(
            tracos_to_erp(stored),
            creation_date=stored.createdAt.isoformat(),
            last_update_date=stored.updatedAt.isoformat(),
            deleted_date=deleted,
        )
        orders.append(msgspec.to_builtins(order))
    return orders


def erp_files(
    erp_format: ErpFormat, count: int, now: datetime, rng: random.Random
) -> list[OutboundFile]:
    """The sample ERP files in ``erp_format``: the challenge's spelled as its generator did
    (docs/spec.md §2.4), any other as that format writes the same orders."""
    if erp_format.name == CHALLENGE:
        orders = erp_orders(count, now, rng)
        return [OutboundFile(f"{o['orderNo']}.json", msgspec.json.encode(o)) for o in orders]
    return [erp_format.render(order) for order in sample_orders(count, now, rng)]


def write_erp_files(folder: Path, files: list[OutboundFile], replace: bool) -> PutResult:
    """Each file written to a temp name first, so no reader sees half a file; a file of
    that name already waiting is kept unless ``replace``."""
    folder.mkdir(parents=True, exist_ok=True)
    inserted = replaced = 0
    for file in files:
        target = folder / file.name
        exists = target.exists()
        if exists and not replace:
            continue
        # random temp names, O_EXCL|O_NOFOLLOW: a planted link is not followed
        replace_with(write_temp(folder, file.name, file.data), target)
        replaced, inserted = replaced + exists, inserted + (not exists)
    return PutResult(inserted, replaced, len(files) - inserted - replaced)
