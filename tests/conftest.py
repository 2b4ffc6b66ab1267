"""Shared fixtures: settings on temporary folders and the stores (helpers live in tests/helpers)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import stamina
from pymongo import MongoClient

from tests.helpers.mongo_facade import FacadeCollection
from tests.helpers.mongo_server import MongoServer
from tests.helpers.stores import make_settings, unique_collection
from watcher.core.settings import Settings
from watcher.store import WorkOrderStore
from watcher.store.mongo import MongoStore
from watcher.store.sqlite import SqliteStore


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


@pytest.fixture(scope="session")
def fault_uri() -> Iterator[str]:
    """A SecantusDB replica set of the session's own with test commands on (failpoints),
    whatever ``WATCHER_TEST_MONGO_URI`` names: a shared server must never be armed."""
    server = MongoServer(test_commands=True).start()
    try:
        yield server.uri
    finally:
        server.stop()


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
