"""The two pipelines between the ERP and the store, and what serves them: stats, retries,
the journal writer and the books of a finished batch.

The face other rooms import from is the worker's stats: what the pipelines have done, as
the console, the metrics and the status file read it. The pipelines themselves are put
together by the composition root (``watcher.app``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from watcher.core.faces import lazy
from watcher.sync.pausing import pause, read_paused, resume
from watcher.sync.stats import (
    BUCKETS,
    ORDERS,
    Count,
    Failure,
    Histogram,
    RecentRates,
    Snapshot,
    Stats,
    StoreState,
    age,
)
from watcher.sync.tracing import current_tracer, use_tracer

if TYPE_CHECKING:
    from watcher.sync.drift import LEDGER_FILE, DriftLedger
    from watcher.sync.receipts import receipt_schema

__all__ = [
    "BUCKETS",
    "LEDGER_FILE",
    "ORDERS",
    "Count",
    "DriftLedger",
    "Failure",
    "Histogram",
    "RecentRates",
    "Snapshot",
    "Stats",
    "StoreState",
    "age",
    "current_tracer",
    "pause",
    "read_paused",
    "receipt_schema",
    "resume",
    "use_tracer",
]
__getattr__ = lazy(
    __name__, {"receipt_schema": "receipts", "DriftLedger": "drift", "LEDGER_FILE": "drift"}
)
