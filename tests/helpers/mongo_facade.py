"""An in-process async facade over mongomock with the slice of ``AsyncCollection`` we use.

mongomock has no change streams: the facade emits a change event for every document a
write changed, filtered by the pipeline's ``$match`` (evaluated by mongomock itself), so
the adapter's pipeline, sweep and conditional marks run as they would against a server.
"""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime
from typing import Any

import anyio
import mongomock
import mongomock.filtering
from mongomock.collection import BulkOperationBuilder
from pymongo.errors import AutoReconnect, OperationFailure

Document = dict[str, Any]
AWAIT_SECONDS = 0.2  # how long a "getMore" on the fake stream waits for a change

_add_update = BulkOperationBuilder.add_update
_add_replace = BulkOperationBuilder.add_replace


def _drop_sort(method: Any) -> Any:
    """PyMongo ≥ 4.11 passes ``sort=`` to bulk builders; mongomock 4.3 does not know it, nor
    ``hint`` (the adapter's upserts name the unique index, which the facade never drops)."""

    def call(self: Any, *args: Any, sort: Any = None, hint: Any = None, **kwargs: Any) -> Any:
        return method(self, *args, **kwargs)

    return call


BulkOperationBuilder.add_update = _drop_sort(_add_update)  # type: ignore[method-assign]
BulkOperationBuilder.add_replace = _drop_sort(_add_replace)  # type: ignore[method-assign]


class FakeChangeStream:
    def __init__(self, match: Document) -> None:
        self.match = match
        self.send, self.receive = anyio.create_memory_object_stream[Document | Exception](math.inf)
        self.alive = True

    def offer(self, event: Document) -> None:
        if mongomock.filtering.filter_applies(self.match, event):  # type: ignore[no-untyped-call]
            self.send.send_nowait(event)

    async def next(self) -> Document:
        item = await self.receive.receive()
        if isinstance(item, Exception):
            raise item
        return item

    async def try_next(self) -> Document | None:
        """Like the driver: one "getMore", waiting a while for a change, else None."""
        with anyio.move_on_after(AWAIT_SECONDS):
            item = await self.receive.receive()
            if isinstance(item, Exception):
                raise item
            return item
        return None

    async def close(self) -> None:
        self.alive = False
        self.send.close()
        self.receive.close()


class FakeDatabase:
    def __init__(self, facade: FacadeCollection) -> None:
        self._facade = facade

    async def command(self, name: str) -> Document:
        self._facade.check()
        return {"ok": 1.0}


class FakeCursor:
    def __init__(self, cursor: Any, facade: FacadeCollection) -> None:
        self._cursor = cursor
        self._facade = facade
        self.closed = False

    def sort(self, key: str, direction: int) -> FakeCursor:
        self._cursor = self._cursor.sort(key, direction)
        return self

    def limit(self, count: int) -> FakeCursor:
        self._cursor = self._cursor.limit(count)
        return self

    async def to_list(self, length: int | None) -> list[Document]:
        """The next ``length`` documents (all that are left: None), as a server cursor gives."""
        self._facade.check()
        return list(itertools.islice(self._cursor, length))

    async def close(self) -> None:
        self.closed = True


class FacadeCollection:
    """What ``MongoStore`` needs of an ``AsyncCollection``, over a mongomock collection."""

    def __init__(self, standalone: bool = False) -> None:
        self.raw: Any = mongomock.MongoClient(tz_aware=True).tractian.workorders
        self.database = FakeDatabase(self)
        self.standalone = standalone
        self.down = False
        self.streams: list[FakeChangeStream] = []
        self.watch_calls = 0

    def check(self) -> None:
        if self.down:
            raise AutoReconnect("connection refused (facade is down)")

    async def create_index(self, key: str | list[tuple[str, int]], unique: bool = False) -> str:
        self.check()
        return str(self.raw.create_index(key, unique=unique))

    async def index_information(self) -> dict[str, Any]:
        self.check()
        return dict(self.raw.index_information())

    async def bulk_write(self, ops: list[Any], ordered: bool = True) -> Any:
        self.check()
        before = {d["_id"]: d for d in self.raw.find()}
        try:
            return self.raw.bulk_write(ops, ordered=ordered)
        finally:
            self._emit_changes(before)

    def find(
        self, query: Document, projection: Document | None = None, batch_size: int = 0
    ) -> FakeCursor:
        return FakeCursor(self.raw.find(query, projection), self)

    async def estimated_document_count(self) -> int:
        self.check()
        return int(self.raw.estimated_document_count())

    async def count_documents(self, query: Document) -> int:
        self.check()
        return int(self.raw.count_documents(query))

    async def watch(self, pipeline: list[Document], full_document: str | None = None) -> Any:
        self.check()
        self.watch_calls += 1
        if self.standalone:
            raise OperationFailure(
                "The $changeStream stage is only supported on replica sets", 40573
            )
        stream = FakeChangeStream(pipeline[0]["$match"])
        self.streams.append(stream)
        return stream

    def break_streams(self, code: int) -> None:
        """Make every open stream fail as a lost resume token would."""
        for stream in self.streams:
            stream.send.send_nowait(OperationFailure("resume point lost", code))
        self.streams = []

    def _emit_changes(self, before: dict[Any, Document]) -> None:
        now = datetime.now(UTC)
        for doc in self.raw.find():
            old = before.get(doc["_id"])
            if old != doc:
                kind = "insert" if old is None else "update"
                event = {"operationType": kind, "fullDocument": doc, "wallTime": now}
                for stream in list(self.streams):
                    stream.offer(event)
