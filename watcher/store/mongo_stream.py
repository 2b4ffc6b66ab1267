"""The MongoDB adapter's outbound trigger: a change stream opened before a sweep, reopened
after any error, or polling where the server has no change streams at all."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Final

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from pymongo.errors import OperationFailure, PyMongoError

from watcher.core.errors import StoreUnavailable
from watcher.store.mongo_errors import first_line, known_error, translated
from watcher.store.port import Document, Handler, StoredDocument, TriggerProgress

log = logging.getLogger(__name__)

# The server has no change streams: a standalone (40573), no $changeStream stage (40324,
# older servers and emulations), the command not supported (115). Only these mean polling.
NO_CHANGE_STREAMS_STANDALONE: Final = 40573
NO_CHANGE_STREAMS: Final = frozenset({40573, 40324, 115})
# The stream's cursor was killed or interrupted (killOp, a time limit): the server is fine.
STREAM_KILLED: Final = frozenset({43, 50, 11601})
CHANGE_PIPELINE: Final = [
    {
        "$match": {
            "operationType": {"$in": ["insert", "update", "replace"]},
            "fullDocument.isSynced": {"$ne": True},
        }
    }
]
STREAMING: Final = "MongoDB change stream"
POLLING: Final = "MongoDB polling"
DRAIN_LIMIT: Final = 1000  # change events handed over in one batch at most
REOPEN_PAUSE_SECONDS: Final = 1.0  # a stream closed at once, again and again, must not spin
REOPEN_MAX_SECONDS: Final = 30.0  # the longest pause between two attempts to reopen

Sweep = Callable[[Handler, int], Awaitable[None]]
Stored = Callable[[Document, datetime | None], StoredDocument]


class StreamClosed(Exception):
    """The server ended the change stream (the collection or database dropped or renamed)."""


class ChangeFollower:
    """Hands unsynced documents over as they change: ``sweep`` first, then each change."""

    def __init__(
        self, collection: Any, sweep: Sweep, stored: Stored, trigger: TriggerProgress
    ) -> None:
        self._coll = collection
        self._trigger = trigger
        self._sweep = sweep
        self._stored = stored
        self.mode = "MongoDB"  # says "change stream" only once the server has opened one
        self._reopen_pause = REOPEN_PAUSE_SECONDS

    async def follow(self, handle: Handler, poll_seconds: float, batch_size: int) -> None:
        """Stream (or poll, where the server has no streams) until cancelled; an outage
        raises ``StoreUnavailable`` (the caller waits, and calls again: a sweep first)."""
        while self.mode != POLLING:
            try:
                await self._follow_stream(handle, batch_size)
            except StreamClosed as exc:
                log.warning("%s: sweeping and reopening", exc)
                await anyio.sleep(REOPEN_PAUSE_SECONDS)
            except PyMongoError as exc:
                await self._stream_failed(exc, poll_seconds)
        while True:
            await self._sweep(handle, batch_size)
            await anyio.sleep(poll_seconds)

    async def _stream_failed(self, exc: PyMongoError, poll_seconds: float) -> None:
        """An outage is raised; a server without change streams is polled; any other
        error (a lost resume point, an interruption, an event too large) reopens the
        stream after a pause that grows while it keeps failing (the reopen sweeps)."""
        code = getattr(exc, "code", None)
        if (known := known_error(exc)) is not None and code not in STREAM_KILLED:
            raise known from exc  # unreachable, shutting down, not primary, a setting to fix
        if code in NO_CHANGE_STREAMS:
            self.mode = POLLING
            log.warning("%s: polling every %.1f s instead", _no_stream_reason(exc), poll_seconds)
            return
        pause = self._reopen_pause
        self._reopen_pause = min(pause * 2, REOPEN_MAX_SECONDS)
        log.warning(
            "change stream failed (%s): sweeping and reopening in %.0f s", first_line(exc), pause
        )
        await anyio.sleep(pause)

    async def _follow_stream(self, handle: Handler, batch_size: int) -> None:
        """Open the stream first, then sweep: a change made during the sweep is still seen."""
        with translated(passing=OperationFailure):
            stream = await self._coll.watch(CHANGE_PIPELINE, full_document="updateLookup")
        try:
            self.mode = STREAMING
            await self._sweep(handle, batch_size)
            self._reopen_pause = REOPEN_PAUSE_SECONDS  # opened and swept: the next failure is news
            send, receive = anyio.create_memory_object_stream[Document | Exception](DRAIN_LIMIT)
            async with receive, anyio.create_task_group() as tg:
                tg.start_soon(_pump, stream, send, self._trigger)
                error = await self._consume(receive, handle)
                tg.cancel_scope.cancel()
            raise error
        finally:
            await stream.close()

    async def _consume(
        self, receive: MemoryObjectReceiveStream[Document | Exception], handle: Handler
    ) -> Exception:
        """Hand over every change already received as one batch; return the stream's error."""
        while True:
            batch = [await receive.receive()]
            while len(batch) < DRAIN_LIMIT and not isinstance(batch[-1], Exception):
                try:
                    batch.append(receive.receive_nowait())
                except anyio.WouldBlock:
                    break
            changes = [c for c in batch if not isinstance(c, Exception)]
            docs = [
                self._stored(c["fullDocument"], c.get("wallTime"))
                for c in changes
                if c.get("fullDocument")
            ]
            if docs:
                await handle(docs)
            if isinstance(batch[-1], Exception):
                return batch[-1]


async def _pump(
    stream: Any, send: MemoryObjectSendStream[Document | Exception], trigger: TriggerProgress
) -> None:
    """Read changes as they come (cached ones without a server round trip); pass errors on.

    Each answer of the server (a change, or an empty one after its await time, about a
    second) is progress: a stream that is open but no longer answers ("healthy but doing
    nothing") shows in the metrics as such. (Only some servers move the resume point on
    while nothing changes, so the answer itself is counted.)"""
    async with send:
        try:
            while stream.alive:  # what ``next`` does, seeing each empty answer too
                change = await stream.try_next()
                trigger.progressed(time.time())
                if change is not None:
                    await send.send(change)
            raise StopAsyncIteration
        except (PyMongoError, StoreUnavailable) as exc:
            await send.send(exc)
        except StopAsyncIteration:  # after an invalidate event the cursor is closed
            closed = "the server closed the change stream (collection dropped or renamed?)"
            await send.send(StreamClosed(closed))


def _no_stream_reason(exc: PyMongoError) -> str:
    if getattr(exc, "code", None) == NO_CHANGE_STREAMS_STANDALONE:
        return "this MongoDB server has no change streams (standalone, not a replica set)"
    return f"this MongoDB server has no change streams ({first_line(exc)})"
