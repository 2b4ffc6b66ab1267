"""The two pipelines between the ERP and the store, and what serves them: stats, retries,
the journal writer and the books of a finished batch.

The face other rooms import from is the worker's stats: what the pipelines have done, as
the console, the metrics and the status file read it. The pipelines themselves are put
together by the composition root (``watcher.app``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from watcher.core.faces import lazy

if TYPE_CHECKING:
    from watcher.sync.drift_ledger import LEDGER_FILE, DriftLedger
    from watcher.sync.journaling import Recorder
    from watcher.sync.pausing import pause, read_paused, resume
    from watcher.sync.receipts import receipt_schema
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
    )
    from watcher.sync.tracing import current_tracer, use_tracer

__all__ = [
    "BUCKETS",
    "LEDGER_FILE",
    "ORDERS",
    "Count",
    "DriftLedger",
    "Failure",
    "Histogram",
    "RecentRates",
    "Recorder",
    "Snapshot",
    "Stats",
    "StoreState",
    "current_tracer",
    "pause",
    "read_paused",
    "receipt_schema",
    "resume",
    "use_tracer",
]
_STATS: tuple[str, ...] = ("BUCKETS", "ORDERS", "Count", "Failure", "Histogram", "RecentRates")
_STATS += ("Snapshot", "Stats", "StoreState")
# Loaded on first use: ``once`` with nothing to do reads the pause markers and writes the
# journal (``pausing``, ``journaling``) without the worker's stats (their dataclasses).
__getattr__ = lazy(
    __name__,
    {
        **dict.fromkeys(("pause", "read_paused", "resume"), "pausing"),
        "receipt_schema": "receipts",
        **dict.fromkeys(("DriftLedger", "LEDGER_FILE"), "drift_ledger"),
        "Recorder": "journaling",
        **dict.fromkeys(_STATS, "stats"),
        **dict.fromkeys(("current_tracer", "use_tracer"), "tracing"),
    },
)
