"""The MongoDB adapter's writes with the journal's waiting entries taken along.

Where the server has the client-level ``bulkWrite`` command (MongoDB 8.0, wire version
25), a batch's writes and the journal entries waiting (``PendingEntries``) go in one
command: one round trip per inbound batch. Elsewhere the writes go as before, and the
entries in one ``insert`` of their own right after. Either way the writes' result is read
exactly as a collection's bulk (``Carrier.write`` returns its details): duplicate keys,
refusals, write-concern errors and the server's state mean what they meant. A journal
entry already there (11000 on its ``_id``) is written; one refused otherwise, or a
command that failed, puts the entries back to wait.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

from pymongo import InsertOne
from pymongo.errors import (
    BulkWriteError,
    ClientBulkWriteException,
    InvalidOperation,
    OperationFailure,
    PyMongoError,
)

from watcher.core.errors import StoreUnavailable
from watcher.store.journal import Entry, PendingEntries
from watcher.store.mongo_errors import (
    DUPLICATE_KEY,
    UniqueIndexMissing,
    is_missing_index,
    transient_write_error,
    translated,
    write_concern_failure,
)
from watcher.store.mongo_journal import as_document, journal_name, raise_unless_written
from watcher.store.port import Document

CLIENT_BULK_WIRE: Final = 25  # MongoDB 8.0: the client-level bulkWrite command
Write = Callable[[Sequence[Any]], Awaitable[Document]]


class Carrier:
    """Takes the waiting journal entries along with a MongoStore's writes."""

    def __init__(self, pending: PendingEntries, collection: Any, client: Any) -> None:
        self.pending = pending
        self._client = client
        self._orders = full_name(collection)
        self._journal = collection.database[journal_name(collection.name)]
        self._write_concern = collection.write_concern  # majority, unless the URI says
        self.one_command = False  # decided at open: ``learn_server``

    def learn_server(self) -> None:
        """One command where every server the client knows has the client-level bulkWrite."""
        known = [
            server.max_wire_version
            for server in self._client.topology_description.server_descriptions().values()
            if server.is_server_type_known
        ]
        self.one_command = bool(known) and min(known) >= CLIENT_BULK_WIRE

    async def write(self, ops: Sequence[Any], bulk_write: Write) -> Document:
        """``bulk_write(ops)`` (the store's own) with the waiting entries along: its details."""
        riding = self.pending.take()
        if not riding:
            return await bulk_write(ops)
        try:
            if self.one_command:
                details = await self._in_one_command(ops, riding)
                if details is not None:
                    return details
            details = await bulk_write(ops)
        except BaseException:
            self.pending.restore(riding)
            raise
        await self._alone(riding)
        return details

    async def _in_one_command(self, ops: Sequence[Any], riding: Sequence[Entry]) -> Document | None:
        """``ops`` and the entries' inserts in one client-level bulkWrite; the details of
        ``ops`` as a collection's bulk gives them. None when the driver will not send it
        (an older server behind the address, a write concern without acknowledgement):
        from then on the writes go as a collection's."""
        models = [*(namespaced(op, self._orders) for op in ops), *self._inserts(riding)]
        try:
            with translated(ClientBulkWriteException):
                try:
                    result = await self._client.bulk_write(
                        models,
                        ordered=False,
                        verbose_results=True,
                        write_concern=self._write_concern,
                    )
                except InvalidOperation:
                    self.one_command = False
                    return None
            full: Mapping[str, Any] = result.bulk_api_result
        except ClientBulkWriteException as exc:
            full = exc.details
            raise_top_level(full.get("error"))
        details = checked(collection_details(full, len(ops)))
        self.pending.restore([riding[i] for i in journal_refused(full, len(ops))])
        return details

    def _inserts(self, riding: Sequence[Entry]) -> list[InsertOne[Document]]:
        namespace = full_name(self._journal)
        return [InsertOne(as_document(entry), namespace=namespace) for entry in riding]

    async def _alone(self, riding: Sequence[Entry]) -> None:
        """The entries in an insert of their own (a server without the client-level
        bulkWrite); not written, they wait again and the outage is told (``put_back``: the
        store's caller, its write answered, never saw it). The store's write stands."""
        try:
            try:
                with translated():
                    await self._journal.insert_many([as_document(e) for e in riding], ordered=False)
            except BulkWriteError as exc:
                raise_unless_written(dict(exc.details))
        except StoreUnavailable as exc:
            self.pending.put_back(riding, exc)


def full_name(collection: Any) -> str:
    return f"{collection.database.name}.{collection.name}"


def namespaced(op: Any, namespace: str) -> Any:
    """A copy of a collection's write model naming its collection (the client-level
    bulkWrite's form of it); the model itself is left as it was, for a retry."""
    named = copy.copy(op)
    named._namespace = namespace
    return named


def collection_details(full: Mapping[str, Any], orders: int) -> Document:
    """A client-level bulkWrite's result for its first ``orders`` models, as a collection's
    bulk reports it (``upserted`` by index, ``writeErrors`` with ``index``, the counts)."""
    upserted: list[Document] = []
    matched = modified = 0
    for index, result in full.get("updateResults", {}).items():
        if index >= orders:
            continue
        if result.upserted_id is not None:
            upserted.append({"index": index, "_id": result.upserted_id})
        else:
            matched += result.matched_count
            modified += result.modified_count
    errors = [{**e, "index": e["idx"]} for e in full.get("writeErrors", []) if e["idx"] < orders]
    return {
        "writeErrors": errors,
        "writeConcernErrors": list(full.get("writeConcernErrors", [])),
        "nInserted": sum(1 for index in full.get("insertResults", {}) if index < orders),
        "nUpserted": len(upserted),
        "nMatched": matched,
        "nModified": modified,
        "nRemoved": 0,
        "upserted": sorted(upserted, key=lambda u: u["index"]),
    }


def journal_refused(full: Mapping[str, Any], orders: int) -> list[int]:
    """The journal entries (by position among them) whose insert was refused, other than
    as already there (11000: written)."""
    return [
        e["idx"] - orders
        for e in full.get("writeErrors", [])
        if e["idx"] >= orders and e.get("code") != DUPLICATE_KEY
    ]


def checked(details: Document) -> Document:
    """What a collection's bulk error means, for these details (``MongoStore._bulk_write``'s
    reading): the unique index gone; not durable, or the server's state, as an outage."""
    if any(is_missing_index(e) for e in details.get("writeErrors", [])):
        raise UniqueIndexMissing("the unique index on number is missing")
    failure = write_concern_failure(details) or transient_write_error(details)
    if failure is not None:
        raise failure
    return details


def raise_top_level(error: object) -> None:
    """A client-level bulkWrite that failed as a whole (the server's state, a network
    error, a refusal of the command): ours, as any other command's failure."""
    if error is None:
        return
    with translated():
        if isinstance(error, PyMongoError):
            raise error
        if isinstance(error, Mapping):
            raise OperationFailure(str(error.get("errmsg")), error.get("code"), dict(error))
        raise StoreUnavailable(f"MongoDB: the bulkWrite command failed: {error!r}")
