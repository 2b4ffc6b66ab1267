"""Shared fixtures: settings on temporary folders, the stores, and waiting with a deadline."""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, cast

import anyio
import pytest
import stamina
from pymongo import MongoClient

from tests.mongo_facade import FacadeCollection
from tests.mongo_server import MongoServer
from watcher.core.settings import Settings
from watcher.store import StoredDocument, WorkOrderStore
from watcher.store.mongo import MongoStore
from watcher.store.sqlite import SqliteStore

DEADLINE = 20.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # PyMongo's async API is asyncio-only


@pytest.fixture(autouse=True)
def _quick_retries() -> Iterator[None]:
    """Retries without waiting, unless a test turns real back-off on itself."""
    stamina.set_testing(True, attempts=3)
    yield
    stamina.set_testing(False)


@pytest.fixture
def real_backoff() -> None:
    """Retries as in production (unlimited, with back-off), capped short by the settings."""
    stamina.set_testing(False)  # the autouse fixture turns testing mode back off afterwards


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


def make_settings(root: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "inbound_dir": root / "inbound",
        "outbound_dir": root / "outbound",
        "archive_dir": root / "archive",
        "failed_dir": root / "failed",
        "state_dir": root / "state",
        "settle_seconds": 0.5,
        "rescan_seconds": 1.0,
        "retry_max_seconds": 0.2,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="session")
def mongo_uri() -> Iterator[str]:
    """A real MongoDB-wire server for the whole session: ``WATCHER_TEST_MONGO_URI``'s, or a
    SecantusDB replica set ``rs0`` started here on a free loopback port (stopped by PID)."""
    given = os.environ.get("WATCHER_TEST_MONGO_URI")
    if given:
        yield given
        return
    server = MongoServer().start()
    try:
        yield server.uri
    finally:
        server.stop()


def unique_collection(prefix: str = "test") -> str:
    """A collection name no other test (or earlier run on the same server) uses."""
    return f"{prefix}_{os.getpid()}_{time.monotonic_ns()}"


@pytest.fixture
def mongo_settings(tmp_path: Path, mongo_uri: str) -> Iterator[Settings]:
    """Settings on temporary folders and a fresh collection of the real MongoDB server."""
    chosen = make_settings(
        tmp_path,
        mongo_uri=mongo_uri,
        mongo_database="watcher_tests",
        mongo_collection=unique_collection(),
    )
    yield chosen
    client: MongoClient[dict[str, Any]]
    with MongoClient(mongo_uri) as client:
        client[chosen.mongo_database].drop_collection(chosen.mongo_collection)


# The real server is a process of its own (seconds to start and stop): the slow tier.
REAL_SERVER = pytest.param("mongodb", marks=pytest.mark.system)


@pytest.fixture(params=["sqlite", REAL_SERVER])
def any_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """The settings of a worker on either production store (the guarantee suites run on both)."""
    if request.param == "mongodb":
        return cast(Settings, request.getfixturevalue("mongo_settings"))
    return settings


@pytest.fixture(params=["sqlite", "mongomock", REAL_SERVER])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[WorkOrderStore]:
    """Every store adapter, for the one contract suite (``mongodb``: the real server)."""
    chosen: WorkOrderStore
    real: MongoStore | None = None
    if request.param == "sqlite":
        chosen = SqliteStore(tmp_path / "state" / "tracos.sqlite3")
    elif request.param == "mongomock":
        chosen = MongoStore(FacadeCollection())
    else:
        uri = request.getfixturevalue("mongo_uri")
        chosen = real = MongoStore.connect(uri, "watcher_tests", unique_collection())
    await chosen.open()
    yield chosen
    if real is not None:
        await real.collection.drop()
    await chosen.close()


async def all_unsynced(store: WorkOrderStore, batch_size: int = 1000) -> list[StoredDocument]:
    """One whole sweep of ``store``'s unsynced documents, as one list (tests only)."""
    return [doc async for batch in store.iter_unsynced(batch_size) for doc in batch]


async def wait_for(condition: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    """Wait until ``condition()`` holds, or fail after ``deadline`` seconds saying ``what``."""
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {deadline:.0f} s waiting for {what}")
        await anyio.sleep(0.02)


def wait_until(condition: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    """Blocking ``wait_for`` for tests that drive subprocesses."""
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {deadline:.0f} s waiting for {what}")
        time.sleep(0.02)


def reset_connections(port: int, count: int) -> None:
    """``count`` clients that send half a request to ``port`` and reset the connection (RST)."""
    for _ in range(count):
        conn = socket.create_connection(("127.0.0.1", port))
        conn.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
