"""The two pipelines between the ERP and the store, and what serves them: stats, retries,
the journal writer and the books of a finished batch.

The face other rooms import from is the worker's stats: what the pipelines have done, as
the console, the metrics and the status file read it. The pipelines themselves are put
together by the composition root (``watcher.app``).
"""

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

__all__ = [
    "BUCKETS",
    "ORDERS",
    "Count",
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
    "resume",
    "use_tracer",
]
