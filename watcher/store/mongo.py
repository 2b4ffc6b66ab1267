"""The production store: TracOS work orders in MongoDB through PyMongo's async API.

Newer wins through a conditional upsert on a unique ``number`` index (11000 means the
stored document is as new or newer); the outbound trigger is a change stream, with a
sweep after every (re)open and polling where the server has no change streams.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import AsyncGenerator, Hashable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, cast

import anyio
from bson import ObjectId
from pymongo import AsyncMongoClient, UpdateOne
from pymongo.errors import BulkWriteError, ConfigurationError

from watcher.core.errors import (
    ConfigError,
    OrdersHeld,
    OrdersRefused,
    StoreMissing,
    StoreUnavailable,
)
from watcher.core.tracos import (
    Clash,
    OrderUpsert,
    Outcome,
    clash,
    decide,
    newest_per_number,
    stored_date,
)
from watcher.store.journal import PendingEntries
from watcher.store.mongo_carry import Carrier, checked
from watcher.store.mongo_client import durable, majority_reads, why_no_answer
from watcher.store.mongo_errors import (
    DUPLICATE_KEY,
    NOT_A_MEMBER,
    UniqueIndexMissing,
    is_refusal,
    refusal_reason,
    translated,
)
from watcher.store.mongo_indexes import create_indexes, ensure_indexes, restore_unique_index
from watcher.store.mongo_ops import (
    EXPORTED_FIELDS,
    MARK_FIELD,
    UNSYNCED,
    UNSYNCED_PARTS,
    mark_filter,
    number_id,
    put_op,
    unsync_op,
    upsert_op,
    version_of,
    written_by,
)
from watcher.store.mongo_stream import ChangeFollower
from watcher.store.port import (
    Document,
    Handler,
    PutResult,
    Replace,
    StoredDocument,
    SyncMark,
    TriggerProgress,
    mark_fields,
    replaces,
)

log = logging.getLogger(__name__)

RACE_ROUNDS: Final = 5  # an upsert refused by a concurrent insert is run again
CALL_TIMEOUT_SECONDS: Final = 30.0
CLOSE_SECONDS: Final = 2.0
UNANSWERED_KEPT: Final = 64  # writes kept for their retry (a retry comes next, or never)


@dataclass
class Unanswered:
    """A batch's write whose answer did not come (a lost reply, a write concern not met):
    the token its documents carry, made once for the batch, and the clashes it met (by
    order index), for the retry of the same batch."""

    token: ObjectId = field(default_factory=ObjectId)
    noted: dict[int, Clash] = field(default_factory=dict)


class UnansweredWrites:
    """Writes not answered, by their batch (its orders and time, or its marks): a retry of
    the batch takes its token back and so knows its own applied writes."""

    def __init__(self) -> None:
        self._by_batch: dict[Hashable, Unanswered] = {}

    def take(self, batch: Hashable) -> Unanswered:
        """The batch's unanswered write, or a new one (a first attempt: a new token)."""
        return self._by_batch.pop(batch, None) or Unanswered()

    def keep(self, batch: Hashable, write: Unanswered) -> None:
        if len(self._by_batch) >= UNANSWERED_KEPT:
            self._by_batch.clear()
        self._by_batch[batch] = write


class MongoStore:
    """``WorkOrderStore`` on a MongoDB collection (``AsyncCollection`` or a test facade)."""

    def __init__(self, collection: Any, client: Any = None) -> None:
        self._coll = collection
        self._client = client
        # what decides an export is read as the majority has it: never a write that a
        # failover could roll back (the change stream is majority-committed already)
        self._committed = majority_reads(collection)
        self._unanswered = UnansweredWrites()  # upserts and marks, for their retry
        self.trigger = TriggerProgress()
        self._follower = ChangeFollower(collection, self._sweep, self._stored, self.trigger)
        self._carrier: Carrier | None = None  # the journal's entries, along with the writes

    @classmethod
    def connect(
        cls,
        uri: str,
        database: str,
        collection: str,
        timeout: float = CALL_TIMEOUT_SECONDS,
        **options: Any,
    ) -> MongoStore:
        """``timeout``: the longest any call may take (seconds); ``options``: more for the
        client (``event_listeners`` for instrumentation)."""
        # A quick answer when the server is down (the retry policy does the waiting),
        # unless the connection string chooses its own timeouts.
        # Every read of a reply is bounded (socketTimeoutMS, not pymongo.timeout: under that
        # one, finding a server waits as long as the call may, and a stop cut into it left
        # the client unable to close).
        timeouts: dict[str, Any] = {
            "serverSelectionTimeoutMS": 2000,
            "connectTimeoutMS": 2000,
            "socketTimeoutMS": round(timeout * 1000),
        }
        chosen = {k: v for k, v in timeouts.items() if k.lower() not in uri.lower()}
        try:
            client: AsyncMongoClient[Document] = AsyncMongoClient(
                uri, tz_aware=True, **chosen, **options
            )
        except ConfigurationError as exc:  # its message may quote the URI: not repeated
            raise ConfigError(
                "MONGO_URI is not a valid MongoDB connection string"
                f" ({type(exc).__name__}; percent-encode special characters in the password)"
            ) from None
        except OSError as exc:  # a TLS file the URI names (tlsCAFile, tlsCertificateKeyFile, …)
            raise ConfigError(
                f"MONGO_URI: cannot read {exc.filename or 'a file it names'}: {exc.strerror or exc}"
            ) from None
        return cls(durable(client, database)[collection], client)

    @property
    def mode(self) -> str:
        return self._follower.mode

    @property
    def collection(self) -> Any:
        return self._coll

    def carry(self, pending: PendingEntries) -> None:
        """Upserts and marks from now on also write the journal entries waiting in
        ``pending``: in the same command where the server has the client-level bulkWrite
        (MongoDB 8.0), else in an insert right after (``mongo_carry``)."""
        if self._client is not None:
            self._carrier = Carrier(pending, self._coll, self._client)

    async def open(self, create: bool = True) -> None:
        await self.ping()
        if self._carrier is not None:
            self._carrier.learn_server()
        if create:
            await create_indexes(self._coll)
            return
        database = self._coll.database
        with translated():
            names = await database.list_collection_names(filter={"name": self._coll.name})
        if not names:
            raise StoreMissing(
                f"no collection {self._coll.name!r} in the MongoDB database {database.name!r}:"
                " set MONGO_DATABASE and MONGO_COLLECTION (or the database in MONGO_URI) to"
                " the worker's, or start the worker first"
            )

    async def close(self) -> None:
        """Close the client; never longer than a moment, whatever the server does (a stop
        is answered within its grace)."""
        if self._client is not None:
            with anyio.move_on_after(CLOSE_SECONDS):
                await self._client.close()

    async def ping(self) -> None:
        try:
            with translated():
                await self._coll.database.command("ping")
        except StoreUnavailable as exc:
            if NOT_A_MEMBER not in str(exc) or self._client is None:
                raise
            raise await why_no_answer(self._client) from exc

    async def upsert(
        self, orders: Sequence[OrderUpsert], now: datetime, clashes: list[Clash] | None = None
    ) -> list[Outcome]:
        """Newer wins per order; an order the server refuses for good (a validator, a size
        limit) raises ``OrdersRefused`` once the others are written. Never without the
        unique index: one found missing is made again first (or the write waits). A retry
        of the same batch (the same orders and time) after a write not answered (a lost
        reply, a write concern not met) keeps what that write did: its own earlier write is
        no "unchanged". ``clashes`` gets the conflicts the written orders met (also when
        others are refused). While duplicates stop the index, orders of a number stored
        twice raise ``OrdersHeld`` (nothing of the call is written)."""
        batch = (tuple(orders), now)
        earlier = self._unanswered.take(batch)
        outcomes: list[Outcome | None] = []
        noted: dict[int, Clash] = {}  # the last word per order: a later round may see anew
        try:
            try:
                refusals = await self._upsert(orders, now, earlier, outcomes, noted)
            except UniqueIndexMissing:
                noted.clear()
                refusals = await self._upsert_restoring(orders, now, earlier, outcomes, noted)
        except StoreUnavailable:
            self._unanswered.keep(batch, Unanswered(earlier.token, {**earlier.noted, **noted}))
            raise
        if clashes is not None:
            clashes.extend(noted[i] for i in sorted(noted) if i not in refusals)
        if refusals:
            raise OrdersRefused(refusals, outcomes)
        return [o for o in outcomes if o is not None]

    async def _upsert_restoring(
        self,
        orders: Sequence[OrderUpsert],
        now: datetime,
        earlier: Unanswered,
        outcomes: list[Outcome | None],
        noted: dict[int, Clash],
    ) -> dict[int, str]:
        """The unique index made again, then the write. While numbers stored twice stop it,
        those numbers are held (``OrdersHeld``), and a call without them is written
        through the ``_id`` index alone: never a second document for a number."""
        stopped = await restore_unique_index(self._coll)
        if stopped is None:
            return await self._upsert(orders, now, earlier, outcomes, noted)
        stored = await self._find({"number": {"$in": sorted({o.number for o in orders})}})
        twice = [n for n, count in Counter(d["number"] for d in stored).items() if count > 1]
        if twice:
            raise OrdersHeld(twice, stopped)
        read = {doc["number"]: doc for doc in stored}
        return await self._upsert(orders, now, earlier, outcomes, noted, unindexed=read)

    async def _upsert(
        self,
        orders: Sequence[OrderUpsert],
        now: datetime,
        earlier: Unanswered,
        outcomes: list[Outcome | None],
        noted: dict[int, Clash],
        *,
        unindexed: dict[int, Document] | None = None,
    ) -> dict[int, str]:
        """Fill ``outcomes`` (one per order, in place: kept if an attempt is cut short) and
        ``noted`` (the clashes, by order index); the server's refusals by order index.

        A synced document with an older date is updated at once; anything else is refused
        (11000) and decided from the document read: then the update applies only while
        the document is still exactly as read (or the order is decided again). Every
        write carries the batch's token (``earlier``'s): a document found with it was
        written by an earlier attempt of this batch, whose outcome and clash stand.
        ``unindexed``: the unique index is gone, and these are the orders' documents (one
        per number at most): each order is decided from them first."""
        winner, decided = newest_per_number(orders)
        outcomes[:] = decided
        pending = list(winner.values())
        refusals: dict[int, str] = {}
        read = unindexed or {}
        if unindexed is not None:
            pending = _decided(orders, pending, read, outcomes, noted, earlier=earlier)
        token, no_index = earlier.token, unindexed is not None
        for _ in range(RACE_ROUNDS):
            ops = [
                upsert_op(orders[i], now, token, read.get(orders[i].number), no_index)
                for i in pending
            ]
            refused = await self._bulk(ops, outcomes, pending, refusals)
            if unindexed is not None:
                refused += await self._taken_back(orders, pending, outcomes)
            if not refused:
                return refusals
            read = await self._stored_docs([orders[i].number for i in refused])
            pending = _decided(orders, refused, read, outcomes, noted, earlier=earlier)
        raise StoreUnavailable("MongoDB: upserts kept colliding with concurrent writers")

    async def _taken_back(
        self, orders: Sequence[OrderUpsert], indexes: list[int], outcomes: list[Outcome | None]
    ) -> list[int]:
        """Orders inserted without the unique index whose number another writer (TracOS)
        stored meanwhile: our document is deleted again, never left as a second one, and
        the order is decided anew (the indexes)."""
        inserted = {orders[i].number: i for i in indexes if outcomes[i] is Outcome.INSERTED}
        if not inserted:
            return []
        docs = await self._find({"number": {"$in": list(inserted)}}, {"number": 1})
        twice = [n for n, count in Counter(d["number"] for d in docs).items() if count > 1]
        for number in twice:
            ours = {"_id": number_id(number), "updatedAt": orders[inserted[number]].updatedAt}
            with translated():
                await self._coll.delete_one(ours)
        return [inserted[number] for number in twice]

    async def _stored_docs(self, numbers: list[int]) -> dict[int, Document]:
        docs = await self._find({"number": {"$in": numbers}}, expected=len(numbers))
        return {doc["number"]: doc for doc in docs}

    async def _bulk(
        self,
        ops: list[UpdateOne],
        outcomes: list[Outcome | None],
        indexes: list[int],
        refusals: dict[int, str],
    ) -> list[int]:
        """Run the upserts; fill inserted/updated outcomes and the server's refusals; return
        the indexes the unique index refused (as new or newer: stale, or a race)."""
        if not ops:
            return []
        details = await self._carrying(ops)
        return bulk_outcomes(details, outcomes, indexes, refusals)

    async def _bulk_write(self, ops: Sequence[Any]) -> Document:
        """One unordered bulk; its result, where a duplicate key (11000) is an answer (the
        stored document is as new or newer, or already there) and a refused document is
        the caller's to report. Not durable (a write-concern error), or refused for the
        server's state (an interruption, a step-down): an outage, nothing taken as done."""
        try:
            with translated():
                result = await self._coll.bulk_write(ops, ordered=False)
            return dict(result.bulk_api_result)
        except BulkWriteError as exc:
            return checked(dict(exc.details))

    async def _carrying(self, ops: Sequence[Any]) -> Document:
        """``_bulk_write``, with the journal's waiting entries along (upserts and marks)."""
        if self._carrier is None:
            return await self._bulk_write(ops)
        return await self._carrier.write(ops, self._bulk_write)

    async def _updated_at(self, numbers: list[int]) -> dict[int, Any]:
        query = {"number": {"$in": numbers}}
        docs = await self._find(query, {"number": 1, "updatedAt": 1}, expected=len(numbers))
        return {d["number"]: d.get("updatedAt") for d in docs}

    async def _find(
        self,
        query: Document,
        projection: Document | None = None,
        expected: int = 0,
        committed: bool = False,
    ) -> list[Document]:
        """A bounded read, as one list; ``expected`` (documents at most, e.g. an ``$in`` of so
        many ids) asks for them all in the first reply: one round trip, not find + getMore
        (one more than expected, so that a full reply still closes the cursor).
        ``committed``: as the majority has it (a read that decides an export)."""
        coll = self._committed if committed else self._coll
        cursor = coll.find(query, projection, batch_size=expected + 1 if expected else 0)
        with translated():
            return list(await cursor.sort("number", 1).to_list(None))

    async def _batches(
        self, query: Document, batch_size: int, order: str | None = None, committed: bool = False
    ) -> AsyncGenerator[list[Document], None]:
        """The documents ``query`` matches, from one server cursor, one reply of at most
        ``batch_size`` at a time (the find, then a getMore per batch): never all at once."""
        coll = self._committed if committed else self._coll
        cursor = coll.find(query, batch_size=batch_size)
        if order is not None:
            cursor = cursor.sort(order, 1)  # an index order: the server streams, no sort
        try:
            while True:
                with translated():
                    batch = await cursor.to_list(batch_size)
                if not batch:
                    return
                yield batch
        finally:
            with translated():
                await cursor.close()

    async def put_documents(
        self, docs: Sequence[Document], replace: Replace = Replace.ALWAYS
    ) -> PutResult:
        if not docs:
            return PutResult()
        pending = [{k: v for k, v in doc.items() if k != "_id"} for doc in docs]
        inserted = replaced = 0
        for _ in range(RACE_ROUNDS):
            result, refused = await self._put(pending, replace)
            inserted, replaced = inserted + result.inserted, replaced + result.replaced
            pending = await self._still_newer(refused) if replace is Replace.IF_NEWER else []
            if not pending:
                break
        else:
            raise StoreUnavailable("MongoDB: puts kept colliding with concurrent writers")
        return PutResult(inserted, replaced, len(docs) - inserted - replaced)

    async def _still_newer(self, refused: list[Document]) -> list[Document]:
        """Refused by the unique index: as new or newer, unless another writer inserted an
        older one meanwhile (then it is tried again)."""
        if not refused:
            return []
        stored = await self._updated_at([doc["number"] for doc in refused])
        return [
            doc
            for doc in refused
            if replaces(
                Replace.IF_NEWER, stored_date(stored.get(doc["number"])), doc.get("updatedAt")
            )
        ]

    async def _put(
        self, docs: list[Document], replace: Replace
    ) -> tuple[PutResult, list[Document]]:
        """One unordered bulk of puts; what it did, and the documents the unique index refused."""
        details = await self._bulk_write([put_op(d, replace) for d in docs])
        errors = details.get("writeErrors", [])
        if refusal := next((e for e in errors if is_refusal(e)), None):
            raise StoreUnavailable(f"MongoDB refused a write: {refusal['errmsg']}")
        refused = [docs[e["index"]] for e in errors]
        inserted = len(details.get("upserted", [])) + int(details.get("nInserted", 0))
        done = PutResult(inserted, int(details.get("nMatched", 0)))
        return done, refused

    async def find(self, numbers: Sequence[int] = ()) -> list[Document]:
        query: Document = {"number": {"$in": list(numbers)}} if numbers else {}
        return [_as_port(doc) for doc in await self._find(query)]

    async def iter_documents(self, batch_size: int) -> AsyncGenerator[list[Document], None]:
        async with aclosing(self._batches({}, batch_size, order="number")) as batches:
            async for batch in batches:
                yield [_as_port(doc) for doc in batch]

    async def iter_unsynced(self, batch_size: int) -> AsyncGenerator[list[StoredDocument], None]:
        """In the ``isSynced`` index's order (no sort: a blocking sort of a million documents
        is what a server refuses); a mark moves a document out of the scanned range."""
        async with aclosing(self._batches(UNSYNCED, batch_size, committed=True)) as batches:
            async for batch in batches:
                yield [self._stored(doc) for doc in batch]

    async def _sweep(self, handle: Handler, batch_size: int) -> None:
        """Hand every unsynced document to ``handle``, batch by batch (an empty sweep hands
        over one empty batch: the caller sees that it ran). The indexes are checked first."""
        await ensure_indexes(self._coll)
        swept, found, began = False, 0, time.monotonic()
        async with aclosing(self.iter_unsynced(batch_size)) as batches:
            async for batch in batches:
                swept, found = True, found + len(batch)
                await handle(batch)
        if not swept:
            await handle([])
        self.trigger.swept(time.monotonic() - began, found)
        self.trigger.progressed(time.time())

    @staticmethod
    def _stored(doc: Document, changed_at: datetime | None = None) -> StoredDocument:
        """The port's view (``_id`` a string); the version keeps the raw id for the mark."""
        return StoredDocument(str(doc["_id"]), _as_port(doc), version_of(doc), changed_at)

    async def unsynced_at(self, marks: Sequence[SyncMark]) -> set[str]:
        if not marks:
            return set()
        wanted = {mark.key: mark.version for mark in marks}
        ids = [cast(tuple[tuple[str, Any], ...], mark.version)[0][1] for mark in marks]
        fields = dict.fromkeys(EXPORTED_FIELDS, 1)  # what a version is made of, and no more
        query = {"_id": {"$in": ids}, **UNSYNCED}
        docs = await self._find(query, fields, expected=len(ids), committed=True)
        return {str(d["_id"]) for d in docs if wanted.get(str(d["_id"])) == version_of(d)}

    async def mark_synced(
        self, marks: Sequence[SyncMark], now: datetime, refused: dict[str, str] | None = None
    ) -> set[str]:
        if not marks:
            return set()
        # made once for these marks: another call's never carry it, and a retry of the same
        # marks (after a write concern not met, a lost reply) finds its own applied marks
        batch = ("marks", tuple(marks))
        token = self._unanswered.take(batch).token
        update = {"$set": {**mark_fields(now), MARK_FIELD: token}}
        try:
            details = await self._carrying(
                [UpdateOne(mark_filter(m.version), update) for m in marks]
            )
        except StoreUnavailable:
            self._unanswered.keep(batch, Unanswered(token))
            raise
        if refused is not None:
            refused.update(refused_marks(marks, details))
        if details.get("nModified") == len(marks):
            return {mark.key for mark in marks}
        ids = [cast(tuple[tuple[str, Any], ...], mark.version)[0][1] for mark in marks]
        query = {"_id": {"$in": ids}, MARK_FIELD: token}
        marked = await self._find(query, {"_id": 1}, expected=len(ids))
        return {str(doc["_id"]) for doc in marked}

    async def unsync(self, numbers: Sequence[int]) -> int:
        """Mark the synced ones of ``numbers`` unsynced (``watcher resend``): durable, as
        every write (a write-concern error is an outage); how many were."""
        if not numbers:
            return 0
        details = await self._bulk_write([unsync_op(numbers)])
        if refusal := next((e for e in details.get("writeErrors", []) if is_refusal(e)), None):
            raise StoreUnavailable(f"MongoDB refused a write: {refusal_reason(refusal)}")
        return int(details.get("nModified", 0))

    async def counts(self) -> tuple[int, int]:
        with translated():
            return (  # asked every 2 s: an estimate, and a count over the isSynced index
                await self._coll.estimated_document_count(),
                await self._coll.count_documents(UNSYNCED),
            )

    async def oldest_unsynced(self) -> datetime | None:
        oldest = []
        for part in UNSYNCED_PARTS:
            query = {**part, "updatedAt": {"$type": "date"}}
            with translated():
                cursor = self._coll.find(query, {"_id": 0, "updatedAt": 1})
                oldest += await cursor.sort("updatedAt", 1).limit(1).to_list(1)
        return min((doc["updatedAt"] for doc in oldest), default=None)

    async def follow_unsynced(self, handle: Handler, poll_seconds: float, batch_size: int) -> None:
        """Stream (or poll, where the server has no streams) until cancelled.

        An outage raises ``StoreUnavailable``: the caller waits with its retry policy and
        calls again, and every call starts with a sweep, so nothing is missed.
        """
        await self._follower.follow(handle, poll_seconds, batch_size)


def _decided(
    orders: Sequence[OrderUpsert],
    indexes: list[int],
    read: dict[int, Document],
    outcomes: list[Outcome | None],
    noted: dict[int, Clash],
    *,
    earlier: Unanswered,
) -> list[int]:
    """Decide these orders from the documents read (into ``outcomes``, and ``noted`` for
    their clashes); the ones to write, only while their document is still as read."""
    pending = []
    for i in indexes:
        doc = read.get(orders[i].number)
        outcomes[i], found, again = decide_refused(
            orders[i], doc, earlier.token, earlier.noted.get(i)
        )
        noted.pop(i, None)
        if found is not None:
            noted[i] = found
        if again:
            pending.append(i)
    return pending


def refused_marks(marks: Sequence[SyncMark], details: Document) -> dict[str, str]:
    """The marks of a bulk the server refused for one document (a validator), by key: the
    server's reason."""
    errors = [e for e in details.get("writeErrors", []) if is_refusal(e)]
    return {marks[e["index"]].key: refusal_reason(e) for e in errors}


def bulk_outcomes(
    details: Document,
    outcomes: list[Outcome | None],
    indexes: list[int],
    refusals: dict[int, str],
) -> list[int]:
    """What a bulk of upserts did, into ``outcomes`` and ``refusals``; the indexes the
    unique index refused."""
    upserted = {u["index"] for u in details.get("upserted", [])}
    errors = {e["index"]: e for e in details.get("writeErrors", [])}
    for position, index in enumerate(indexes):
        error = errors.get(position)
        if error is None:
            outcomes[index] = Outcome.INSERTED if position in upserted else Outcome.UPDATED
        elif is_refusal(error):
            refusals[index] = refusal_reason(error)
    return [indexes[p] for p, e in sorted(errors.items()) if e["code"] == DUPLICATE_KEY]


def decide_refused(
    order: OrderUpsert, doc: Document | None, token: ObjectId, earlier: Clash | None
) -> tuple[Outcome, Clash | None, bool]:
    """An order the unique index refused, decided from its document as read: its outcome,
    the clash it meets, and whether it is still to be written. A document that carries
    the batch's ``token`` was written by an earlier attempt of this batch whose answer was
    lost: that write's outcome and clash (``earlier``) stand."""
    if doc is not None and (mine := written_by(doc, token)) is not None:
        return mine, earlier, False
    when = None if doc is None else stored_date(doc.get("updatedAt"))
    outcome = decide(when, order.updatedAt)
    found = None if doc is None else clash(doc, order, outcome)
    return outcome, found, outcome in (Outcome.INSERTED, Outcome.UPDATED)


def _as_port(doc: Document) -> Document:
    """Across the port ids are strings, as in the embedded store (dates are already aware)."""
    return {**doc, "_id": str(doc["_id"])} if "_id" in doc else doc
