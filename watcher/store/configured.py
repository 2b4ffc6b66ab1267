"""The store the settings name: which adapter, and one command's use of it.

The adapter is imported only once it is picked, so a command on the embedded store never
loads the MongoDB driver; and a command that only reads or writes the store (``show``,
``status``, ``seed``, ``put``) imports this module, not the worker.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio

from watcher.settings import Settings
from watcher.store import WorkOrderStore

T = TypeVar("T")


def build_store(settings: Settings) -> WorkOrderStore:
    if settings.mongo_uri:
        from watcher.store.mongo import MongoStore

        return MongoStore.connect(
            settings.mongo_uri, settings.mongo_database, settings.mongo_collection
        )
    from watcher.store.sqlite import SqliteStore

    return SqliteStore(settings.sqlite_path)


def with_store(
    settings: Settings, work: Callable[[WorkOrderStore], Awaitable[T]], create: bool = False
) -> T:
    """Open the configured store, run ``work``, close it: one attempt, one line if it fails
    (a command an operator typed answers at once; the worker is the one that waits).

    Only commands that write (``seed``, ``put``) ``create`` a store; one that only looks,
    run from the wrong directory, says there is none instead of making an empty one.
    """

    async def main() -> T:
        store = build_store(settings)
        try:
            await store.open(create)
            return await work(store)
        finally:
            await store.close()

    result: Any = anyio.run(main, backend="asyncio")
    return result  # type: ignore[no-any-return]
