"""What the MongoDB adapter sends: the newer-wins upsert, the conditional mark's filter,
whole-document puts, and the queries for the unsynced. Pure: no client, no I/O."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from datetime import datetime
from typing import Any, Final, cast

from pymongo import InsertOne, ReplaceOne, UpdateMany, UpdateOne

from watcher.core.tracos import OrderUpsert
from watcher.store.port import Document, Replace, insert_fields, upsert_fields

# The fields an export reads: a conditional mark requires all of them unchanged.
EXPORTED_FIELDS: Final = (
    "number",
    "status",
    "title",
    "createdAt",
    "updatedAt",
    "deleted",
    "deletedAt",
)
NUMBER_INDEX: Final = [("number", 1)]  # unique: newer wins only with it
UNSYNCED: Final[Document] = {"isSynced": {"$ne": True}}
# The unsynced in two parts, so that the index {isSynced, updatedAt} hands out each in
# updatedAt order: the usual values (absent, null, false) as points of the index, then
# anything else TracOS may have stored there (rare) as ranges that are mostly empty.
UNSYNCED_PARTS: Final[tuple[Document, ...]] = (
    {"isSynced": {"$in": [None, False], "$ne": True}},
    {"isSynced": {"$nin": [True, False, None]}},
)
MARK_FIELD: Final = "syncMark"  # which call marked a document: only that call wrote this id
_ABSENT: Final = "\0absent"


def version_of(doc: Document) -> Hashable:
    """The raw ``_id`` and the exported fields' values, hashable; absent ones marked so."""
    values = tuple(
        (f, repr(doc[f]) if isinstance(doc.get(f), dict | list) else doc.get(f, _ABSENT))
        for f in EXPORTED_FIELDS
    )
    return (("_id", doc["_id"]), *values)


def mark_filter(version: Hashable) -> Document:
    """Match the document only while it holds exactly the values that were exported."""
    pairs = cast(tuple[tuple[str, Any], ...], version)
    query: Document = {"_id": pairs[0][1], **UNSYNCED}
    for field, value in pairs[1:]:
        query[field] = {"$exists": False} if value == _ABSENT else {"$eq": value}
    return query


def upsert_op(order: OrderUpsert, now: datetime, stored: Document | None = None) -> UpdateOne:
    """Insert, or update a synced document whose ``updatedAt`` is an older date and that was
    synced before the ERP made its version (``tracos.crossed``); anything else is refused
    (11000) and decided from the document read (``stored``): then the update applies only
    while the document is still exactly as read."""
    update: Document = {
        "$set": upsert_fields(order, now),
        "$setOnInsert": insert_fields(order),
    }
    if order.deletedAt is None:
        update["$unset"] = {"deletedAt": ""}
    if stored is None:
        query: Document = {"number": order.number, "updatedAt": {"$lt": order.updatedAt}}
        query["isSynced"] = True
        # synced after the ERP made its version: read first, it may have crossed an export
        query["syncedAt"] = {"$lte": order.updatedAt}
    else:
        exactly = {f: _exactly(stored, f) for f in ("updatedAt", "isSynced")}
        query = {"_id": stored["_id"], "number": order.number, **exactly}
    # the hint makes the server refuse the write when the index is gone (dropped, a wiped
    # server): without it, an older version's upsert would insert a second document
    return UpdateOne(query, update, upsert=True, hint=NUMBER_INDEX)


def _exactly(doc: Document, field: str) -> Document:
    return {"$eq": doc[field]} if field in doc else {"$exists": False}


def unsync_op(numbers: Sequence[int]) -> UpdateMany:
    """The synced ones of ``numbers`` made unsynced (``watcher resend``)."""
    query = {"number": {"$in": list(numbers)}, "isSynced": True}
    return UpdateMany(query, {"$set": {"isSynced": False}})


def put_op(doc: Document, replace: Replace) -> ReplaceOne[Document] | InsertOne[Document]:
    """A put of one whole document: replace, replace if newer, or insert only (a stored
    number refuses it through the unique index: counted as skipped)."""
    updated = doc.get("updatedAt")
    if replace is Replace.ALWAYS:
        return ReplaceOne({"number": doc["number"]}, doc, upsert=True)
    if replace is Replace.NEVER or not isinstance(updated, datetime):
        return InsertOne(dict(doc))  # a copy: the driver adds ``_id`` to what it is given
    newer = [{"updatedAt": {"$lt": updated}}, {"updatedAt": {"$not": {"$type": "date"}}}]
    return ReplaceOne({"number": doc["number"], "$or": newer}, doc, upsert=True)


def unique_on_number(index: Document) -> bool:
    """Whether an index (as ``index_information`` gives it) is the unique one on ``number``."""
    key = list(index.get("key", []))
    return bool(index.get("unique")) and len(key) == 1 and key[0][0] == "number"
