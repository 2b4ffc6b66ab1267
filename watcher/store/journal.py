"""The sync journal's port: what happened to each file and each order, kept in the store.

Entries wait in ``PendingEntries`` for the store's next write, which takes them along in
its own transaction or command, else they are written in bulk on their own; they are read
back per order number or per file name, oldest first. Both adapters (``SqliteJournal``,
``MongoJournal``) pass one contract suite; retention is by age and by a count, so the
journal stays bounded.

Each entry's ``id`` is made with it, never when it is written: writing the same entries
again (a retry after a reply was lost, a write that timed out but went through) adds no
line. An id is 16 bytes: MongoDB's ObjectId layout (seconds, five random bytes of this
process, a counter), then a position. An order's entry made with its file's entry shares
that entry's 12 first bytes and has its place in the file as position, the file's entry
``OWN``: ids sort in the order the entries were made, and a store can find a file's
orders from its entry's id alone (the embedded store keeps such an order's entry without
JSON of its own).
"""

from __future__ import annotations

import os
import threading
import time
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from itertools import accumulate, chain, repeat
from operator import attrgetter, floordiv, is_, methodcaller, sub
from typing import Any, Literal, Protocol, runtime_checkable

import msgspec

from watcher.core.errors import CommandFailed, StoreUnavailable, capped
from watcher.core.printable import printable

Direction = Literal["in", "out"]
OWN = b"\xff" * 4  # the position of an entry that points at no other
BASE = 12  # bytes of an id before its position


class _Ids:
    """Ids in ObjectId's layout: unique across processes, increasing within one (the
    counter carries into the seconds rather than wrap)."""

    def __init__(self) -> None:
        self.renew()

    def renew(self) -> None:
        self._process = os.urandom(5)
        self._seconds = self._count = 0

    def base(self) -> bytes:
        now = int(time.time())
        if now > self._seconds:
            self._seconds, self._count = now, 0
        else:
            self._count += 1
            if self._count >> 24:
                self._seconds, self._count = self._seconds + 1, 0
        return self._seconds.to_bytes(4, "big") + self._process + self._count.to_bytes(3, "big")


_ids = _Ids()
os.register_at_fork(after_in_child=_ids.renew)  # a child never repeats its parent's ids


def new_id() -> bytes:
    """A new entry's id."""
    return _ids.base() + OWN


def order_id(file_id: bytes, position: int) -> bytes:
    """The id of the ``position``-th order's entry of the file whose entry is ``file_id``."""
    return file_id[:BASE] + position.to_bytes(4, "big")


def owner_id(entry_id: bytes) -> bytes | None:
    """The id of the entry ``entry_id`` was made with (its file's), if any."""
    if len(entry_id) != BASE + 4 or entry_id[BASE:] == OWN:
        return None
    return entry_id[:BASE] + OWN


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


class Entry(msgspec.Struct, frozen=True, omit_defaults=True, kw_only=True, gc=False):
    """One event: a file filed away, an order written, exported or refused.

    ``file`` names the inbound file an order came from (or the file itself), or the
    outbound file an order went to; ``to`` is where an inbound file was filed away (on
    an order's entry too when the file held that order alone and was archived: one entry
    for the commonest file, not two);
    ``version`` is the order's ``lastUpdateDate`` (inbound) or ``updatedAt`` (outbound).

    Not tracked by the garbage collector (``gc=False``): one is made per order or file and
    it holds only strings, numbers, dates and bytes, so it can close no reference cycle
    (a 10,000-file burst: 97 collections instead of 116).
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
    id: bytes = msgspec.field(default_factory=new_id)  # made once: a rewrite adds no line


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


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
TZINFO = attrgetter("tzinfo")


class OrderEntries(Sequence[Entry]):
    """The inbound entries of a file's orders, made with the file's entry (``of``): kept as
    columns (a number, a version and an event an order: 17 bytes) and made into ``Entry``
    one at a time as they are read. A batch's entries wait for the store's next write; as
    entries (one each, its 16-byte id and its event's text: about 250 bytes) a 270,000-order
    batch's would be 65 MB more at the batch's peak (docs/spec.md §7), as columns 5 MB.
    Each entry read is equal to the one ``Entry`` would have made: id ``order_id(of, i)``."""

    __slots__ = ("_common", "_events", "_kinds", "_numbers", "_of", "_span", "_versions")

    def __init__(
        self,
        pairs: Iterable[tuple[int, datetime, str]],
        *,
        of: bytes,
        at: datetime,
        file: str | None,
        worker: str | None,
        trace: str | None = None,
    ) -> None:
        numbers: list[int] = []
        versions: list[datetime] = []
        events: list[str] = []
        for number, version, event in pairs:
            numbers.append(number)
            versions.append(version)
            events.append(event)
        self._keep(numbers, versions, events, of, (at, file, worker, trace))

    @classmethod
    def of_columns(
        cls,
        numbers: Sequence[int],
        versions: Sequence[datetime],
        events: Sequence[str],
        *,
        of: bytes,
        at: datetime,
        file: str | None,
        worker: str | None,
    ) -> OrderEntries:
        """The entries of orders given as columns (number, version, event each): what a
        file's orders and outcomes already are, with no tuple an order to take apart."""
        made = object.__new__(cls)
        made._keep(numbers, versions, events, of, (at, file, worker, None))
        return made

    def _keep(
        self,
        numbers: Sequence[int],
        versions: Sequence[datetime],
        events: Sequence[str],
        of: bytes,
        common: tuple[datetime, str | None, str | None, str | None],
    ) -> None:
        """Keep the columns compact, converted by C maps (no Python frame an order: in a
        loop they cost about 0.3 µs an order). An event may be an enum (``Outcome``): its
        value is kept, as plain text."""
        found = tuple(dict.fromkeys(events))
        index = {kind: i for i, kind in enumerate(found)}
        self._kinds = tuple(map(str, found))
        self._events: Sequence[int] = array("B", map(index.__getitem__, events))
        self._numbers: Sequence[int] = _int64s(numbers)
        self._versions: Sequence[Any] = versions
        if all(map(is_, map(type, versions), repeat(datetime))) and all(
            map(is_, map(TZINFO, versions), repeat(UTC))
        ):
            micros = map(floordiv, map(sub, versions, repeat(EPOCH)), repeat(MICROSECOND))
            self._versions = _int64s(list(micros))
        self._of = of[:BASE]
        self._common = common
        self._span = (0, len(numbers))

    def _view(self, start: int, stop: int, trace: str | None) -> OrderEntries:
        view = object.__new__(OrderEntries)
        for name in ("_events", "_kinds", "_numbers", "_of", "_versions"):
            setattr(view, name, getattr(self, name))
        at, file, worker, _ = self._common
        view._common = (at, file, worker, trace)
        view._span = (start, stop)
        return view

    def traced(self, trace: str) -> OrderEntries:
        """The same entries, each naming the trace ``trace``."""
        return self._view(*self._span, trace)

    def __len__(self) -> int:
        start, stop = self._span
        return stop - start

    def __getitem__(self, index: Any) -> Any:
        start, stop = self._span
        if isinstance(index, slice):
            first, last, step = index.indices(stop - start)
            if step != 1:
                return list(self)[index]
            return self._view(start + first, start + max(first, last), self._common[3])
        if index < 0:
            index += stop - start
        if not 0 <= index < stop - start:
            raise IndexError(index)
        return self._entry(start + index)

    def __iter__(self) -> Iterator[Entry]:
        return map(self._entry, range(*self._span))

    @property
    def owner(self) -> bytes:
        """The id of the file's entry these entries were made with (their ids point at it)."""
        return self._of + OWN

    @property
    def common(self) -> tuple[datetime, str | None, str | None, str | None]:
        """What every one of these entries says alike: time, file, worker and trace."""
        return self._common

    def columns(self) -> Iterator[tuple[bytes, int, str, int]] | None:
        """Each entry as (id, number, event, version in microseconds), the tuples made in C
        from the columns, never an ``Entry`` an order (a store writes 100,000 of them for a
        batch: about 1.8 µs an entry less); None when the versions are kept as datetimes."""
        start, stop = self._span
        versions = self._versions
        if not isinstance(versions, array):
            return None
        positions = map(methodcaller("to_bytes", 4, "big"), range(start, stop))
        ids = map(self._of.__add__, positions)
        events = map(self._kinds.__getitem__, self._events[start:stop])
        return zip(ids, self._numbers[start:stop], events, versions[start:stop], strict=True)

    def _entry(self, position: int) -> Entry:
        at, file, worker, trace = self._common
        version = self._versions[position]
        return Entry(
            at=at,
            direction="in",
            event=self._kinds[self._events[position]],
            number=self._numbers[position],
            file=file,
            version=version if isinstance(version, datetime) else EPOCH + version * MICROSECOND,
            worker=worker,
            trace=trace,
            id=self._of + position.to_bytes(4, "big"),
        )


def _int64s(values: Sequence[int]) -> Sequence[int]:
    """``values`` in 8 bytes each, or as they are when one does not fit."""
    try:
        return array("q", values)
    except OverflowError:
        return values


class Entries(Sequence[Entry]):
    """Entries in parts (lists, ``OrderEntries``), read as one sequence without being
    copied into one list: what ``PendingEntries`` hands over."""

    __slots__ = ("_ends", "parts")

    def __init__(self, parts: Iterable[Sequence[Entry]] = ()) -> None:
        self.parts: list[Sequence[Entry]] = [part for part in parts if len(part)]
        self._ends = list(accumulate(map(len, self.parts)))

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    def __iter__(self) -> Iterator[Entry]:
        return chain.from_iterable(self.parts)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return list(self)[index]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        part = bisect_right(self._ends, index)
        return self.parts[part][index - (self._ends[part - 1] if part else 0)]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]


def parts_of(entries: Sequence[Entry]) -> list[Sequence[Entry]]:
    """``entries`` as parts ``Entries`` can hold: a plain sequence copied into a list (its
    owner may change it), columns and parts as they are."""
    if isinstance(entries, Entries):
        return list(entries.parts)
    if isinstance(entries, OrderEntries):
        return [entries]
    return [list(entries)]


# Journal entries made and not yet written: one list, written by whoever comes first.
# A batch's entries can only be made once the batch is done (its outcomes, where its
# files were filed), so they cannot go in the batch's own write. They wait here, and the
# store's next write takes them along: in the same SQLite transaction, or the same
# MongoDB command (the client-level ``bulkWrite``). When no write comes within a short
# window, or at a stop, the journal writes them on its own (``sync.journaling``). Entries
# are keyed by the ids they were made with, so a write repeated after a failure adds no
# line: whoever could not write them puts them back (``restore``; ``put_back`` where the
# store did not answer, so that the journal's writer shows the outage as its own write would).
class PendingEntries:
    """The entries waiting to be written; safe to take from the store's worker thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries = Entries()  # in parts: a big batch's orders stay columns
        self._since: float | None = None  # when the oldest waiting entry began to wait
        # told when a store write took entries along and met an outage the write's own
        # caller never saw (its own part answered): the journal's writer says it
        self.unwritten: Callable[[Exception], None] | None = None

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
            self._entries = Entries([*self._entries.parts, *parts_of(entries)])
            if self._since is None:
                self._since = time.monotonic()

    def take(self) -> Entries:
        """All the entries waiting, which are now the taker's to write (or to ``restore``)."""
        with self._lock:
            taken, self._entries, self._since = self._entries, Entries(), None
        return taken

    def restore(self, entries: Sequence[Entry]) -> None:
        """Entries taken but not written, back before any added since: they wait a new window."""
        if not entries:
            return
        with self._lock:
            self._entries = Entries([*parts_of(entries), *self._entries.parts])
            self._since = time.monotonic()

    def put_back(self, entries: Sequence[Entry], why: Exception) -> None:
        """Entries a store write took along but could not write, the store unavailable
        (``why``) while the write's own part went through: they wait again, and the outage
        is told (``unwritten``), as the journal's own write would have met it."""
        self.restore(entries)
        if self.unwritten is not None:
            self.unwritten(why)

    def drop_oldest(self, keep: int) -> int:
        """Drop the oldest beyond ``keep``; how many were dropped."""
        with self._lock:
            dropped = max(0, len(self._entries) - keep)
            parts, cut = list(self._entries.parts), dropped
            while cut and len(parts[0]) <= cut:
                cut -= len(parts.pop(0))
            if cut:
                parts[0] = parts[0][cut:]
            self._entries = Entries(parts)
            if not self._entries:
                self._since = None
        return dropped


@runtime_checkable
class CarriesJournal(Protocol):
    """A store whose writes take the pending journal entries along (both adapters)."""

    def carry(self, pending: PendingEntries) -> None:
        """From now on, each write also writes the entries waiting in ``pending``."""


def encode(entry: Entry) -> bytes:
    return _encode(entry)


def shown_json(entries: Sequence[Entry]) -> bytes:
    """The entries as JSON for people and scripts (``history --json``, ``/history``): every
    field but the id, which is the journal's own business."""
    plain = msgspec.to_builtins(entries, builtin_types=(datetime,))
    for item in plain:
        del item["id"]
    return _encode(plain)


class JournalTrouble(StoreUnavailable):
    """The journal's own trouble, not the store's (its table gone, an entry refused): its
    entries wait as through an outage, but the store's state is not the journal's to tell."""


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
