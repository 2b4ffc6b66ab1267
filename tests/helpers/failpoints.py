"""Server-side faults, injected the way mongod's own test suite does it: ``configureFailPoint``
with ``failCommand`` on a test server started with test commands, scoped by ``appName`` so
that only the worker's client is hit (the test's own client goes on working)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

from pymongo import AsyncMongoClient

APP: Final = "watcher-under-test"
WRITE_CONCERN_ERROR: Final = {
    "code": 64,
    "codeName": "WriteConcernFailed",
    "errmsg": "waiting for replication timed out",
}


def app_uri(uri: str, app: str = APP) -> str:
    """``uri`` for a client that names itself ``app`` (the failpoints' scope)."""
    return f"{uri}&appName={app}"


@asynccontextmanager
async def failing(
    uri: str, mode: Any = "alwaysOn", app: str = APP, **data: Any
) -> AsyncIterator[None]:
    """``failCommand`` with ``data`` (``failCommands``, ``errorCode``, ``writeConcernError``,
    ``blockConnection``…) for ``app``'s commands while the block runs; off afterwards."""
    client: AsyncMongoClient[Any] = AsyncMongoClient(uri)
    try:
        await client.admin.command(
            "configureFailPoint", "failCommand", mode=mode, data={**data, "appName": app}
        )
        yield
    finally:
        await client.admin.command("configureFailPoint", "failCommand", mode="off")
        await client.close()
