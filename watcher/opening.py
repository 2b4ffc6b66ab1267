"""The steps that open a worker, shared by ``Worker.open`` (``watcher.app``) and by
``watcher once`` when it finds nothing waiting (``watcher.cli.once``), which takes them
without building a worker: kept here, apart from the composition root, so that the quiet
pass neither loads the worker nor takes steps of its own that could drift from these.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from watcher.core.settings import Settings
from watcher.erp import prepare
from watcher.observe import prune_stopped, worker_id
from watcher.store import CarriesJournal, PendingEntries, WorkOrderStore, build_journal
from watcher.sync import Recorder, read_paused

if TYPE_CHECKING:
    from watcher.sync.journaling import Outages
    from watcher.sync.pausing import Direction


def prepare_worker(settings: Settings) -> frozenset[Direction]:
    """The worker's own folders (outbound and state: a bad one raises ``ConfigError``),
    stopped workers' status files pruned; the directions an operator paused, to hold
    before any work."""
    prepare((("DATA_OUTBOUND_DIR", settings.outbound_dir), ("DATA_STATE_DIR", settings.state_dir)))
    prune_stopped(settings, datetime.now(UTC))
    return read_paused(settings.state_dir)


def recorder(settings: Settings, store: WorkOrderStore, outages: Outages | None = None) -> Recorder:
    """The journal's writer; its waiting entries go with the store's writes where the
    store can take them along (both adapters: ``PendingEntries``), and an outage its
    writes meet shows as the store's (``outages``: the store retry's state)."""
    journal = build_journal(settings, store)
    days, keep = settings.history_days, settings.history_max_entries
    pending = PendingEntries()
    if journal is not None and isinstance(store, CarriesJournal):
        store.carry(pending)
    return Recorder(journal, worker_id(settings), days, keep, pending=pending, outages=outages)
