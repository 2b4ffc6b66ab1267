"""The indexes the MongoDB adapter relies on: made at start, checked at every sweep, made
again when gone; numbers stored twice (which stop the unique index) are named."""

from __future__ import annotations

import logging
from typing import Any

from pymongo.errors import OperationFailure

from watcher.core.errors import ConfigError, StoreUnavailable
from watcher.store.mongo_errors import (
    DUPLICATE_KEY,
    DUPLICATES_LISTED,
    duplicate_numbers,
    first_line,
    translated,
)
from watcher.store.mongo_ops import unique_on_number
from watcher.store.port import Document

log = logging.getLogger(__name__)


async def create_indexes(coll: Any) -> None:
    """Newer wins only with the unique index; made again if the collection was dropped.
    Numbers stored twice stop it: ``ConfigError`` naming a few of them."""
    try:
        with translated(passing=OperationFailure):
            await coll.create_index("number", unique=True)
    except OperationFailure as exc:
        if exc.code != DUPLICATE_KEY:
            raise StoreUnavailable(f"MongoDB error: {first_line(exc)}") from exc
        raise duplicate_numbers(await _duplicates(coll)) from None
    with translated():  # the sweep, the unsynced count and the oldest unsynced
        await coll.create_index([("isSynced", 1), ("updatedAt", 1)])


async def ensure_indexes(coll: Any) -> None:
    """Make the indexes again if they are gone (a DBA, a restored or wiped server):
    checked at every sweep, so after every reconnect too. Duplicates stopping the
    unique index are said here; inbound waits on them (``upsert``)."""
    with translated():
        indexes = await coll.index_information()
    if any(unique_on_number(index) for index in indexes.values()):
        return
    log.warning("the unique index on number is missing (dropped?): making it again")
    try:
        await create_indexes(coll)
    except ConfigError as exc:
        log.warning("%s", exc)


async def restore_unique_index(coll: Any) -> str | None:
    """Make the unique index again; None once made, else what stops it: numbers stored
    twice, named (the caller never writes a second document for a number meanwhile)."""
    log.warning("the unique index on number is missing (dropped?): making it again")
    try:
        await create_indexes(coll)
    except ConfigError as exc:
        return str(exc)
    return None


async def _duplicates(coll: Any) -> list[Document]:
    """A few numbers stored more than once, with their counts (a scan: only on failure)."""
    pipeline: list[Document] = [
        {"$group": {"_id": "$number", "count": {"$sum": 1}}},
        {"$match": {"count": {"$gt": 1}}},
        {"$sort": {"_id": 1}},
        {"$limit": DUPLICATES_LISTED},
    ]
    with translated():
        cursor = await coll.aggregate(pipeline)
        return list(await cursor.to_list(None))
