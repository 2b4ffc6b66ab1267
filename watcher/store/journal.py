"""The sync journal's port: what happened to each file and each order, kept in the store.

Entries are written in bulk, one write per batch of work, and read back per order number
or per file name, oldest first. Both adapters (``SqliteJournal``, ``MongoJournal``) pass
one contract suite; retention is by age and by a count, so the journal stays bounded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

import msgspec

Direction = Literal["in", "out"]


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


def decode(data: bytes | str) -> Entry:
    return _decode(data)


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Entry).decode
