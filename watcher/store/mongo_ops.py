"""What the MongoDB adapter sends: the newer-wins upsert, the conditional mark's filter,
whole-document puts, and the queries for the unsynced. Pure: no client, no I/O."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from datetime import datetime
from typing import Any, Final, cast

from bson import ObjectId
from pymongo import InsertOne, ReplaceOne, UpdateMany, UpdateOne

from watcher.core.tracos import ERP_VERSION, OrderUpsert, Outcome
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
NUMBER_ID_PREFIX: Final = b"\0\0\0\0"  # no ObjectId a driver makes starts so (a 1970 time)
# Which call last marked a document synced (an export's marks, or an inbound write), and
# which inbound write inserted it: ids only that call wrote, made once per batch, so that
# a retry of the batch (after a lost reply) tells its own applied writes from others'.
MARK_FIELD: Final = "syncMark"
INSERT_MARK_FIELD: Final = "insertMark"
_ABSENT: Final = "\0absent"
# The stored version is the ERP's own (``tracos.erps_own``; ``isSynced`` is asked apart):
# no export can have crossed it. (A one-clause ``$and``: there mongomock, the tests'
# facade, takes an absent field for false, as MongoDB does; a bare ``$eq`` raises.)
ERPS_OWN: Final[Document] = {"$expr": {"$and": [{"$eq": [f"${ERP_VERSION}", "$updatedAt"]}]}}


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


def upsert_op(
    order: OrderUpsert,
    now: datetime,
    token: ObjectId,
    stored: Document | None = None,
    unindexed: bool = False,
) -> UpdateOne:
    """Insert, or update a synced document whose ``updatedAt`` is an older date; anything
    else is refused (11000) and decided from the document read (``stored``): then the
    update applies only while the document is still exactly as read. ``token``: the
    batch's own, left in the document written (and in an inserted one's insert mark).

    ``unindexed``: the unique index on ``number`` is gone and cannot be made; the order
    was decided from the document read, and the ``_id`` index alone keeps a number to one
    document: an update of ``stored`` by its ``_id``, or an insert under the ``_id`` the
    number gives (a second insert of it is refused, 11000).

    Only a stored version that is the ERP's own is updated at once: no export crossed
    it. Any other (TracOS's, exported) is read first: the ERP may have made its version
    before that export (``tracos.crossed``). ``syncedAt`` cannot tell it in the query: an
    inbound write sets it too, to its own time, after the ERP made the version it stores,
    so a newer ERP version over its own would always be read first.

    The bytes are an order's (a bulk of 1,000 is about half a megabyte): ``number`` is set
    from every query's equality, ``isSynced`` from the first one's."""
    fields = upsert_fields(order, now)
    del fields["number"]
    if stored is None and unindexed:
        query: Document = {"_id": number_id(order.number), "number": order.number}
    elif stored is None:
        query = {"number": order.number, "updatedAt": {"$lt": order.updatedAt}}
        query["isSynced"] = True
        query.update(ERPS_OWN)
        del fields["isSynced"]
    else:
        exactly = {f: _exactly(stored, f) for f in ("updatedAt", "isSynced")}
        query = {"_id": stored["_id"], "number": order.number, **exactly}
    update: Document = {
        "$set": {**fields, MARK_FIELD: token},
        "$setOnInsert": {**insert_fields(order), INSERT_MARK_FIELD: token},
    }
    if order.deletedAt is None:
        update["$unset"] = {"deletedAt": ""}
    # the hint makes the server refuse the write when the index is gone (dropped, a wiped
    # server): without it, an older version's upsert would insert a second document
    return UpdateOne(query, update, upsert=True, hint=None if unindexed else NUMBER_INDEX)


def number_id(number: int) -> ObjectId:
    """The ``_id`` an order inserted while the unique index on ``number`` is gone gets: the
    same for a number in every worker, so the ``_id`` index refuses a second one."""
    return ObjectId(NUMBER_ID_PREFIX + number.to_bytes(8, "big", signed=True))


def written_by(doc: Document, token: ObjectId) -> Outcome | None:
    """What the write carrying ``token`` did to ``doc`` (inserted or updated it), if the
    document is still as that write left it marked; None when another write was last."""
    if doc.get(MARK_FIELD) != token:
        return None
    return Outcome.INSERTED if doc.get(INSERT_MARK_FIELD) == token else Outcome.UPDATED


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
