"""The data the scenarios feed the worker (made as ``watcher seed`` makes it, with fixed
seeds) and what they read back from its embedded store."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import anyio
import msgspec

from watcher.cli.samples import erp_orders, tracos_documents
from watcher.store import Document
from watcher.store.sqlite import SqliteStore

from .worker import BenchError


def erp_payloads(count: int) -> list[bytes]:
    """``count`` one-order ERP files like ``watcher seed`` writes (numbers 1..count)."""
    orders = erp_orders(count, datetime.now(UTC), random.Random(7))
    return [msgspec.json.encode(order) for order in orders]


def batch_payload(count: int) -> bytes:
    """One ERP file holding ``count`` orders."""
    return msgspec.json.encode(erp_orders(count, datetime.now(UTC), random.Random(7)))


def tracos_docs(count: int, first: int) -> list[Document]:
    """Unsynced TracOS documents numbered from ``first`` (no isSynced, like TracOS writes)."""
    docs = tracos_documents(count, datetime.now(UTC), random.Random(first))
    for offset, doc in enumerate(docs):
        doc["number"] = first + offset
    return docs


async def seed_unsynced(path: Path, count: int) -> None:
    """``count`` unsynced TracOS documents, put in chunks as TracOS would write them."""
    chunk = 20_000
    store = SqliteStore(path)
    await store.open()
    try:
        for first in range(1, count + 1, chunk):
            await store.put_documents(tracos_docs(min(chunk, count + 1 - first), first))
    finally:
        await store.close()


async def store_counts(path: Path) -> tuple[int, int]:
    """Orders stored, and how many of them are unsynced."""
    store = SqliteStore(path)
    await store.open()
    try:
        return await store.counts()
    finally:
        await store.close()


def check_stored(path: Path, expected: int) -> None:
    stored = anyio.run(store_counts, path)[0]
    if stored < expected:
        raise BenchError(f"only {stored} of {expected} orders are stored")
