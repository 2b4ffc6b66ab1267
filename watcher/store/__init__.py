"""The store: where TracOS work orders live, behind one port (``port.py``), and the sync
journal kept beside them (``journal.py``).

Two adapters pass one contract suite: ``mongo`` (production) and ``sqlite`` (embedded);
``configured`` picks the one the settings name. This is the face other rooms import from:
the ports' names, and the configured store's use by one command (loaded on first use).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from watcher.core.faces import lazy
from watcher.store.port import (
    Document,
    PutResult,
    Replace,
    StoredDocument,
    SyncMark,
    TriggerProgress,
    WorkOrderStore,
)

if TYPE_CHECKING:
    from watcher.store.configured import build_journal, read_history, with_store
    from watcher.store.journal import (
        CarriesJournal,
        Entries,
        Entry,
        HistoryQuery,
        Journal,
        JournalEvent,
        JournalTrouble,
        OrderEntries,
        PendingEntries,
        UnreadableEntry,
        new_id,
        order_id,
        shown_json,
    )

__all__ = [
    "CarriesJournal",
    "Document",
    "Entries",
    "Entry",
    "HistoryQuery",
    "Journal",
    "JournalEvent",
    "JournalTrouble",
    "OrderEntries",
    "PendingEntries",
    "PutResult",
    "Replace",
    "StoredDocument",
    "SyncMark",
    "TriggerProgress",
    "UnreadableEntry",
    "WorkOrderStore",
    "build_journal",
    "new_id",
    "order_id",
    "read_history",
    "shown_json",
    "with_store",
]
_JOURNAL: tuple[str, ...] = ("CarriesJournal", "Entries", "Entry", "HistoryQuery", "Journal")
_JOURNAL += ("JournalEvent", "JournalTrouble", "OrderEntries", "PendingEntries", "UnreadableEntry")
_JOURNAL += ("new_id", "order_id", "shown_json")
# The journal's names too: ``status`` and ``show`` read the store without it.
__getattr__ = lazy(
    __name__,
    {
        **dict.fromkeys(("build_journal", "read_history", "with_store"), "configured"),
        **dict.fromkeys(_JOURNAL, "journal"),
    },
)
