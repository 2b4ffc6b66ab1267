"""Journal entries made and not yet written: one list, written by whoever comes first.

A batch's entries can only be made once the batch is done (its outcomes, where its files
were filed), so they cannot go in the batch's own write. They wait here, and the store's
next write takes them along: in the same SQLite transaction, or the same MongoDB command
(the client-level ``bulkWrite``). When no write comes within a short window, or at a
stop, the journal writes them on its own (``watcher.sync.journaling.Recorder``). Entries
are keyed by the ids they were made with, so a write repeated after a failure adds no
line: whoever could not write them puts them back (``restore``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from watcher.store.journal import Entry


class PendingEntries:
    """The entries waiting to be written; safe to take from the store's worker thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[Entry] = []
        self._since: float | None = None  # when the oldest waiting entry began to wait

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def since(self) -> float | None:
        """The monotonic time the entries waiting began to wait; None when none wait."""
        return self._since

    def add(self, entries: Sequence[Entry]) -> None:
        if not entries:
            return
        with self._lock:
            self._entries += entries
            if self._since is None:
                self._since = time.monotonic()

    def take(self) -> list[Entry]:
        """All the entries waiting, which are now the taker's to write (or to ``restore``)."""
        with self._lock:
            taken, self._entries, self._since = self._entries, [], None
        return taken

    def restore(self, entries: Sequence[Entry]) -> None:
        """Entries taken but not written, back before any added since: they wait a new window."""
        if not entries:
            return
        with self._lock:
            self._entries = [*entries, *self._entries]
            self._since = time.monotonic()

    def drop_oldest(self, keep: int) -> int:
        """Drop the oldest beyond ``keep``; how many were dropped."""
        with self._lock:
            dropped = max(0, len(self._entries) - keep)
            del self._entries[:dropped]
            if not self._entries:
                self._since = None
        return dropped


@runtime_checkable
class CarriesJournal(Protocol):
    """A store whose writes take the pending journal entries along (both adapters)."""

    def carry(self, pending: PendingEntries) -> None:
        """From now on, each write also writes the entries waiting in ``pending``."""
