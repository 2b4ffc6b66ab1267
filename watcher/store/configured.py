"""The store the settings name: which adapter, and one command's use of it.

The adapter is imported only once it is picked, so a command on the embedded store never
loads the MongoDB driver; and a command that only reads or writes the store (``show``,
``status``, ``seed``, ``put``) imports this module, not the worker.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from watcher.core.errors import CommandFailed
from watcher.core.settings import Settings
from watcher.store.port import WorkOrderStore

if TYPE_CHECKING:  # only ``history`` and the worker use the journal
    from watcher.store.journal import Entry, HistoryQuery, Journal

T = TypeVar("T")


def build_store(
    settings: Settings, threads: bool = True, busy_seconds: float | None = None
) -> WorkOrderStore:
    """``threads=False``: an embedded store that does its work right where it is called
    (a one-shot command); ``busy_seconds``: its patience with another process's lock."""
    if settings.mongo_uri:
        from watcher.store.mongo import MongoStore

        return MongoStore.connect(
            settings.mongo_uri,
            settings.mongo_database,
            settings.mongo_collection,
            timeout=settings.mongo_timeout_seconds,
        )
    from watcher.store.sqlite import SqliteStore

    if busy_seconds is None:
        return SqliteStore(settings.sqlite_path, threads)
    return SqliteStore(settings.sqlite_path, threads, busy_seconds)


def with_store(
    settings: Settings,
    work: Callable[[WorkOrderStore], Awaitable[T]],
    create: bool = False,
    busy_seconds: float | None = None,
) -> T:
    """Open the configured store, run ``work``, close it: one attempt, one line if it fails
    (a command an operator typed answers at once; the worker is the one that waits).

    Only commands that write (``seed``, ``put``) ``create`` a store; one that only looks,
    run from the wrong directory, says there is none instead of making an empty one.
    """

    store = build_store(settings, threads=False, busy_seconds=busy_seconds)

    async def main() -> T:
        try:
            await store.open(create)
            return await work(store)
        finally:
            await store.close()

    if store.mode == "embedded":  # nothing it does waits: no event loop to start (~35 ms)
        return _to_the_end(main())
    result: Any = anyio.run(main, backend="asyncio")
    return result  # type: ignore[no-any-return]


def _to_the_end(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never waits on anything (one that does is a bug, said so)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    coroutine.close()
    raise RuntimeError("a one-shot command on the embedded store waited for something")


def build_journal(settings: Settings, store: WorkOrderStore) -> Journal | None:
    """The sync journal beside ``store``; None when ``HISTORY_DAYS`` is 0."""
    if settings.history_days == 0:
        return None
    from watcher.store.sqlite import SqliteStore

    if isinstance(store, SqliteStore):
        from watcher.store.sqlite_journal import SqliteJournal

        return SqliteJournal(store)
    name = getattr(getattr(store, "collection", None), "name", None)
    if settings.mongo_uri and isinstance(name, str):  # a MongoStore (not a test's facade)
        from watcher.store.mongo_journal import MongoJournal, journal_name

        collection = store.collection.database[journal_name(name)]  # type: ignore[attr-defined]
        return MongoJournal(collection, round(settings.history_days * 86400))
    return None


def read_history(settings: Settings, query: HistoryQuery) -> list[Entry]:
    """What the sync journal holds for ``query`` (one attempt, as ``with_store``)."""

    async def read(store: WorkOrderStore) -> list[Entry]:
        journal = build_journal(settings, store)
        if journal is None:
            raise CommandFailed("the sync journal is off (HISTORY_DAYS=0): nothing is recorded")
        await journal.open(create=False)
        try:
            return await journal.history(query)
        finally:
            await journal.close()

    return with_store(settings, read)
