"""The sync journal's port: what happened to each file and each order, kept in the store.

Entries are written in bulk, one write per batch of work, and read back per order number
or per file name, oldest first. Both adapters (``SqliteJournal``, ``MongoJournal``) pass
one contract suite; retention is by age and by a count, so the journal stays bounded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, Protocol

import msgspec

from watcher.core.errors import CommandFailed, capped
from watcher.core.printable import printable

Direction = Literal["in", "out"]


class JournalEvent(StrEnum):
    """Every event the journal records, named once. An order's inbound entry has its
    ``Outcome`` as its event (``inserted``, ``updated``, ``unchanged``, ``stale``)."""

    ARCHIVED = "archived"
    QUARANTINED = "quarantined"
    PARTLY_REJECTED = "partly_rejected"  # archived; its refused elements in failed/
    CLAIMED = "claimed"  # stored, not yet filed away: it stays claimed
    RETAKEN = "retaken"  # changed since it was read: read again
    EXPORTED = "exported"
    CHANGED_DURING_EXPORT = "changed_during_export"
    MARK_REFUSED = "mark_refused"  # written, but the store refused the document's mark
    SUPERSEDED = "superseded"
    NOT_WRITTEN = "not_written"
    UNEXPORTABLE = "unexportable"
    CONFLICT = "conflict"  # both sides changed an order since it was last synced
    NO_DATE_VERSION = "no_date_version"  # a stored updatedAt that named no date, overwritten
    REPAIRED = "repaired"  # an outbound file rewritten to the store's synced version
    RESEND = "resend"  # `watcher resend`: marked unsynced to go out again
    FIELD_DRIFT = "field_drift"  # a key the ERP format does not know, first seen


class Entry(msgspec.Struct, frozen=True, omit_defaults=True, kw_only=True):
    """One event: a file filed away, an order written, exported or refused.

    ``file`` names the inbound file an order came from (or the file itself), or the
    outbound file an order went to; ``to`` is where an inbound file was filed away (on
    an order's entry too when the file held that order alone and was archived: one entry
    for the commonest file, not two);
    ``version`` is the order's ``lastUpdateDate`` (inbound) or ``updatedAt`` (outbound).
    """

    at: datetime
    direction: Direction
    event: str
    number: int | None = None
    file: str | None = None
    to: str | None = None
    version: datetime | None = None
    reason: str | None = None
    counts: dict[str, int] | None = None
    worker: str | None = None
    trace: str | None = None  # the OpenTelemetry trace id of the work, when tracing is on
    tracos_version: datetime | None = None  # a conflict's other side
    differs: list[str] | None = None  # a conflict's fields that differ, TracOS's value first


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """One order's story (``number``) or one file's (``file``): the newest ``limit`` entries
    at or after ``since``, returned oldest first."""

    number: int | None = None
    file: str | None = None
    since: datetime | None = None
    limit: int = 1000
    event: str | None = None  # every entry of this event instead (``watcher conflicts``)


class Journal(Protocol):
    """The port. Transient trouble raises ``StoreUnavailable``, like the store's."""

    async def open(self, create: bool = True) -> None:
        """Connect; create the table or collection and its indexes unless ``create`` is
        False (inspection commands: a journal not there yet reads as empty)."""

    async def close(self) -> None: ...

    async def record(self, entries: Sequence[Entry]) -> None:
        """Append the entries in one write (or a few, for a very large batch)."""

    async def history(self, query: HistoryQuery) -> list[Entry]:
        """The entries the query asks for, oldest first (by time, then by writing order)."""
        ...

    async def forget(self, before: datetime, keep: int) -> int:
        """Delete entries older than ``before``, and the oldest beyond the newest ``keep``;
        the number deleted."""
        ...


def encode(entry: Entry) -> bytes:
    return _encode(entry)


class UnreadableEntry(CommandFailed):
    """An entry in the journal that is not one of ours (written by hand, or by another
    program into the same table or collection): reading the history says so in one line."""


def decode(data: bytes | str) -> Entry:
    """An entry as the embedded store keeps it (JSON); ``UnreadableEntry`` if it is not one."""
    try:
        return _decode(data)
    except msgspec.DecodeError as exc:  # also a ValidationError
        raise _unreadable(exc, data) from None


def convert(doc: Mapping[str, Any]) -> Entry:
    """An entry as MongoDB returns it; ``UnreadableEntry`` if it is not one."""
    try:
        return msgspec.convert(doc, Entry)
    except msgspec.ValidationError as exc:
        raise _unreadable(exc, doc) from None


def _unreadable(exc: Exception, found: object) -> UnreadableEntry:
    shown = printable(capped(repr(found), 120))
    return UnreadableEntry(
        f"the sync journal holds an entry that is not a watcher entry ({capped(str(exc))}):"
        f" {shown}; remove it from the journal"
    )


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Entry).decode
