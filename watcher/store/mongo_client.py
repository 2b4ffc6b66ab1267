"""How the MongoDB adapter's client is set up (durable writes, majority reads), and why a
server it could not reach did not answer."""

from __future__ import annotations

from typing import Any, Final

import anyio
from pymongo import AsyncMongoClient
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from watcher.core.errors import StoreUnavailable
from watcher.store.mongo_errors import unreachable
from watcher.store.port import Document

PROBE_SECONDS: Final = 1.0  # a look at the address that did not answer


async def why_no_answer(client: AsyncMongoClient[Document]) -> StoreUnavailable:
    """Why the seed named in the URI did not answer as a replica-set member: refused,
    unreachable, or it answers (then TLS or the set's name is wrong)."""
    host, port = next(iter(client.topology_description.server_descriptions()))
    where = f"{host}:{port}"
    try:
        with anyio.fail_after(PROBE_SECONDS):
            connection = await anyio.connect_tcp(host, port or 27017)
        await connection.aclose()
    except TimeoutError:
        return unreachable(f"{where} did not answer in time")
    except OSError as exc:  # anyio's, with each address's own error as its cause
        cause = exc.__cause__ or exc
        causes: list[OSError] = list(getattr(cause, "exceptions", [cause]))
        if any(isinstance(cause, ConnectionRefusedError) for cause in causes):
            return unreachable(f"connection refused at {where}")
        return unreachable(f"{where}: {causes[0].strerror or causes[0]}")
    return unreachable(
        f"{where} accepts connections but not as a member of the replica set MONGO_URI"
        " names: check replicaSet= and the TLS options (tls=, tlsCAFile=)"
    )


def durable(client: AsyncMongoClient[Document], database: str) -> Any:
    """The database with majority write concern, unless the URI chose its own ``w``:
    acknowledged then means durable, never a write a failover rolls back (w:1's risk)."""
    chosen = client.write_concern.document
    if "w" in chosen:
        return client[database]
    wtimeout, journal = chosen.get("wtimeout"), chosen.get("j")
    concern = WriteConcern("majority", wtimeout=wtimeout, j=journal)
    return client.get_database(database, write_concern=concern)


def majority_reads(collection: Any) -> Any:
    """``collection`` reading with ``readConcern: majority`` (a test facade as it is)."""
    with_options = getattr(collection, "with_options", None)
    return (
        collection if with_options is None else with_options(read_concern=ReadConcern("majority"))
    )
