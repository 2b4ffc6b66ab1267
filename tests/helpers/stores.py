"""Settings on temporary folders, fresh collections, and whole sweeps of a store."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from watcher.core.settings import Settings
from watcher.store import StoredDocument, WorkOrderStore


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


def unique_collection(prefix: str = "test") -> str:
    """A collection name no other test (or earlier run on the same server) uses."""
    return f"{prefix}_{os.getpid()}_{time.monotonic_ns()}"


async def all_unsynced(store: WorkOrderStore, batch_size: int = 1000) -> list[StoredDocument]:
    """One whole sweep of ``store``'s unsynced documents, as one list (tests only)."""
    return [doc async for batch in store.iter_unsynced(batch_size) for doc in batch]
