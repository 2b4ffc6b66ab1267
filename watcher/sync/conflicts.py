"""Clashes an inbound write met, made heard: a journal event each, a counter, a log line
(the books of ``watcher.sync.bookkeeping`` call these).

A conflict is an ERP version meeting a TracOS change made since the last sync, not yet
synced or exported after the ERP made its version (``tracos.crossed``): the newer still
wins, and the other side's change is named here, with both versions' times and what differs.
An ``updatedAt`` that names no date loses to the ERP's version, and is said too.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from watcher.core.tracos import Clash, Outcome
from watcher.erp import Taken
from watcher.store import Entry, JournalEvent
from watcher.sync.stats import Count, Stats

log = logging.getLogger("watcher.inbound")


def count_clashes(clashes: Sequence[Clash], stats: Stats) -> None:
    if not clashes:
        return
    conflicts = sum(1 for c in clashes if c.kind == "conflict")
    stats.count(Count.CONFLICTS, conflicts)
    stats.count(Count.VERSIONS_NOT_DATES, len(clashes) - conflicts)


def log_clashes(clashes: Sequence[Clash]) -> None:
    for found in clashes:
        log.warning(
            "order %d: %s",
            found.number,
            said(found),
            extra={"order": found.number, "outcome": found.kind},
        )


def clash_entries(
    clashes: Sequence[Clash], taken: Sequence[Taken], worker: str, at: datetime
) -> list[Entry]:
    """Each clash's journal entry, naming the file its ERP version came in."""
    if not clashes:
        return []
    files = {o.number: item.shown for item in taken if item.verdict for o in item.verdict.orders}
    return [
        Entry(
            at=at,
            direction="in",
            event=JournalEvent.CONFLICT if c.kind == "conflict" else JournalEvent.NO_DATE_VERSION,
            number=c.number,
            file=files.get(c.number),
            version=c.erp_version,
            tracos_version=c.tracos_version,
            reason=said(c),
            differs=list(c.differs) or None,
            worker=worker,
        )
        for c in clashes
    ]


def said(found: Clash) -> str:
    """One line for the log and the journal."""
    if found.kind == "no_date":
        return f"the stored updatedAt {found.stored_text} names no date: the ERP's version wins"
    winner = "the ERP's version won" if found.outcome is Outcome.UPDATED else "TracOS's stayed"
    tracos = _time(found.tracos_version) if found.tracos_version else found.stored_text
    return (
        f"both changed since the last sync (TracOS {tracos}, ERP {_time(found.erp_version)});"
        f" {winner}; differs: {'; '.join(found.differs)}"
    )


def _time(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")
