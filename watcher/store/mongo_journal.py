"""The sync journal in MongoDB: a collection beside the work orders, never inside it.

``<collection>_journal`` holds one document per entry, indexed by number and by file;
a TTL index on ``at`` lets the server expire old entries, and ``forget`` deletes them
too (servers without a TTL monitor, and the count limit). An entry's ``_id`` is the id it
was made with (binary; ObjectIds for entries written before ids were made with them): an
entry written again is refused as a duplicate key, which is what a retry wants.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

import msgspec
from bson import ObjectId
from pymongo.errors import BulkWriteError, OperationFailure

from watcher.store import journal
from watcher.store.journal import OWN, Entry, HistoryQuery, JournalTrouble
from watcher.store.mongo_errors import (
    DUPLICATE_KEY,
    transient_write_error,
    translated,
    write_concern_failure,
)
from watcher.store.port import Document

INDEX_OPTIONS_CONFLICT: Final = frozenset({85, 86})  # the TTL changed since it was made
TTL_INDEX: Final = "at_ttl"


def journal_name(collection: str) -> str:
    return f"{collection}_journal"


class MongoJournal:
    """``Journal`` on a MongoDB collection; ``retention_seconds`` sets its TTL index."""

    def __init__(self, collection: Any, retention_seconds: int) -> None:
        self._coll = collection
        self._retention = retention_seconds

    async def open(self, create: bool = True) -> None:
        if create:
            with translated():
                await self._create_indexes()

    async def _create_indexes(self) -> None:
        await self._coll.create_index([("number", 1), ("at", 1)])
        await self._coll.create_index([("file", 1), ("at", 1)])
        try:
            await self._ttl_index()
        except OperationFailure as exc:
            if exc.code not in INDEX_OPTIONS_CONFLICT:
                raise
            await self._coll.drop_index(TTL_INDEX)
            await self._ttl_index()

    async def _ttl_index(self) -> None:
        await self._coll.create_index("at", name=TTL_INDEX, expireAfterSeconds=self._retention)

    async def close(self) -> None:
        """The store's client is closed by the store."""

    async def record(self, entries: Sequence[Entry]) -> None:
        if entries:
            await self.insert([as_document(e) for e in entries])

    async def insert(self, docs: list[Document]) -> None:
        """Insert entries as documents; one already there (its ``_id`` taken) is no error."""
        try:
            with translated():
                await self._coll.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            raise_unless_written(dict(exc.details))

    async def history(self, query: HistoryQuery) -> list[Entry]:
        match: Document = {"number": query.number} if query.file is None else {"file": query.file}
        if query.event is not None:
            match = {"event": query.event}
        if query.since is not None:
            match["at"] = {"$gte": query.since}
        with translated():
            cursor = self._coll.find(match).sort([("at", -1), ("_id", -1)])
            found = await cursor.limit(query.limit).to_list(None)
        return [journal.convert(_with_id(doc)) for doc in reversed(found)]

    async def forget(self, before: datetime, keep: int) -> int:
        with translated():
            deleted = (await self._coll.delete_many({"at": {"$lt": before}})).deleted_count
            excess = await self._coll.estimated_document_count() - keep
            if excess <= 0:
                return int(deleted)
            oldest_kept = (
                await self._coll.find({}, {"at": 1}).sort("at", 1).skip(excess).limit(1).to_list(1)
            )
            if oldest_kept:
                cut = {"at": {"$lt": oldest_kept[0]["at"]}}
                deleted += (await self._coll.delete_many(cut)).deleted_count
        return int(deleted)


def as_document(entry: Entry) -> Document:
    """An entry as the journal's collection keeps it: its id as ``_id``."""
    doc: Document = msgspec.to_builtins(entry, builtin_types=(datetime, bytes))
    doc["_id"] = doc.pop("id")
    return doc


def raise_unless_written(details: Document) -> None:
    """After a bulk of journal inserts: an entry already there (11000, a write repeated) is
    written; a write concern not met, or the server's state, is an outage; an entry
    refused otherwise is the journal's own trouble."""
    failure = write_concern_failure(details) or transient_write_error(details)
    if failure is not None:
        raise failure
    refused = [e for e in details.get("writeErrors", []) if e.get("code") != DUPLICATE_KEY]
    if refused:
        first = refused[0]
        raise JournalTrouble(
            f"MongoDB refused a journal entry: {first.get('errmsg')} (code {first.get('code')})"
        )


def _with_id(doc: Document) -> Document:
    """``_id`` as the entry's id (an ObjectId of an entry written before ids were made
    with the entries: its 12 bytes, and ``OWN``)."""
    made = doc.pop("_id", None)
    doc["id"] = made.binary + OWN if isinstance(made, ObjectId) else made
    return doc
