"""Shared fixtures: settings on temporary folders, the stores, and waiting with a deadline."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import stamina
from pymongo import AsyncMongoClient

from tests.mongo_facade import FacadeCollection
from watcher.settings import Settings
from watcher.store import WorkOrderStore
from watcher.store.mongo import MongoStore
from watcher.store.sqlite import SqliteStore

REAL_MONGO = os.environ.get("WATCHER_TEST_MONGO_URI", "")
NO_MONGO = "WATCHER_TEST_MONGO_URI is not set: no real MongoDB to test against"
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


@pytest.fixture(params=["sqlite", "mongomock", "mongodb"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[WorkOrderStore]:
    """Every store adapter, for the one contract suite."""
    chosen: WorkOrderStore
    collection: Any = None
    if request.param == "sqlite":
        chosen = SqliteStore(tmp_path / "state" / "tracos.sqlite3")
    elif request.param == "mongomock":
        chosen = MongoStore(FacadeCollection())
    else:
        if not REAL_MONGO:
            pytest.skip(NO_MONGO)
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(REAL_MONGO, tz_aware=True)
        collection = client["watcher_tests"][f"test_{os.getpid()}_{time.monotonic_ns()}"]
        chosen = MongoStore(collection, client)
    await chosen.open()
    yield chosen
    if collection is not None:
        await collection.drop()
    await chosen.close()


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
