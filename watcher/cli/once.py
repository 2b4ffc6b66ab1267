"""``watcher once``: the worker's one pass in both directions (``watcher.cli.worker``), or,
when a look that changes nothing finds nothing waiting on the embedded store, the same
steps done right where they are called.

A cron job or a timer runs ``once`` every minute, and most runs find nothing: their cost is
the start-up. So before the worker is built (its pipelines, stats and retries, the event
loop and a store thread: three quarters of the time), a look at the folders says whether
anything waits; if nothing does, the steps of ``Worker.open``, ``Worker.once`` and
``Worker.close`` that still mean something run here in order, through the same functions
(``watcher.opening``'s among them: the folders prepared and checked, stopped workers'
status files pruned, crash leftovers removed, the store opened and brought up to date,
the journal's retention), and the same summary line ends it. Anything found on the way (a
file, a claim folder, an unsynced document, a store that does not open at once) hands the
run to the worker, which does it all again as always: nothing here is done that the full
pass would not do.
"""

from __future__ import annotations

import argparse
import os
import sys

from watcher.core.settings import Settings
from watcher.core.tracos import Outcome


def cmd_once(settings: Settings, args: argparse.Namespace) -> int:
    if not _quiet_once(settings):
        from watcher.cli.worker import cmd_once as full_pass

        return full_pass(settings, args)
    import logging

    counts = nothing_counts()
    logging.getLogger("watcher").info("%s", once_summary(counts), extra={"counts": counts})
    return 0


def nothing_counts() -> dict[str, int]:
    """``watcher.cli.worker.once_counts`` of a pass that did nothing."""
    orders = {f"orders_{o}": 0 for o in Outcome}
    return {"files_archived": 0, "files_failed": 0, **orders, "exported": 0, "unexportable": 0}


def once_summary(counts: dict[str, int]) -> str:
    orders = ", ".join(f"{counts[f'orders_{o}']} {o}" for o in Outcome)
    files = f"files {counts['files_archived']} archived, {counts['files_failed']} failed"
    exports = f"{counts['exported']} exported, {counts['unexportable']} unexportable"
    done = "nothing to do; " if not any(counts.values()) else ""
    return f"once: {done}{files}; orders {orders}; {exports}"


def nothing_waiting(settings: Settings) -> bool:
    """Whether a pass would find nothing to take, by a look that changes nothing: the
    embedded store already made, no tracing asked for, a built-in ERP format, no inbound
    file, and an empty claim folder (no worker's claims to resume or to work beside)."""
    from watcher.erp import BUILT_IN, nothing_waiting
    from watcher.observe import tracing_wanted

    if settings.mongo_uri or tracing_wanted(os.environ) or settings.erp_format not in BUILT_IN:
        return False
    return settings.sqlite_path.is_file() and nothing_waiting(settings.inbound_dir)


def _quiet_once(settings: Settings) -> bool:
    """The pass, when nothing waits: True once done (the summary still to be said), False
    for the worker to do it (nothing done here then matters: it does it all again, and
    says in its own words what stopped this one)."""
    if not nothing_waiting(settings):
        return False
    from watcher.erp import inbound_folders, remove_stale_temps
    from watcher.observe import setup_logging
    from watcher.opening import prepare_worker, recorder
    from watcher.store import WorkOrderStore, with_store

    setup_logging(settings, sys.stderr)
    s = settings
    paused = prepare_worker(s)  # Worker.open's first step
    # then its source's (FolderSource._open), but no claim folder: nothing is claimed
    inbound = ("DATA_INBOUND_DIR", s.inbound_dir)
    inbound_folders(
        inbound, (("DATA_ARCHIVE_DIR", s.archive_dir), ("DATA_FAILED_DIR", s.failed_dir))
    )
    try:
        remove_stale_temps(s.failed_dir)
    except OSError:
        return False

    async def once(store: WorkOrderStore) -> bool:
        if (await store.counts())[1] and "outbound" not in paused:
            return False  # documents to export: the worker's pass
        # the journal as Worker.open opens it; then Worker.once's crash leftovers (its
        # sink's recover) and the journal's retention, and Worker.close's
        journal = recorder(s, store)
        await journal.open()
        remove_stale_temps(s.outbound_dir)
        await journal.forget()
        await journal.close()
        return True

    try:  # on the embedded store, right where it is called: no event loop, no thread
        return with_store(s, once)
    except Exception:
        return False
