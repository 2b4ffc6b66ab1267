"""The sync journal in the embedded store: a ``journal`` table in the store's own file.

It has its own connection, used under the store's lock (``SqliteStore.run_locked``): the
two take turns there instead of in SQLite's busy wait. Its commits are not synced on
their own (``synchronous=NORMAL``): the store's next commit (``FULL``) syncs the log file
they are in, so a journal write never adds a sync to the work; a crash of the worker
loses none of them, a power loss at most those written since the store's last commit.
Each row is keyed by the id its entry was made with, so an entry written twice is one
row (``INSERT OR IGNORE``). A full row keeps the entry as JSON plus the columns its
queries need; an order's entry made with its file's entry (the usual inbound entry: an
order inserted or updated from a file) is a row of columns only, its file, worker and
trace read from the file's row its key points at (``journal.owner_id``). The tables are
``sqlite_schema``'s. Deletes go in small transactions so that pruning a large journal
never holds up the worker's writes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from functools import partial
from itertools import chain
from typing import Any, Final, TypeVar

from msgspec.structs import replace

from watcher.store import journal
from watcher.store.journal import (
    EPOCH,
    MICROSECOND,
    OWN,
    Entries,
    Entry,
    HistoryQuery,
    JournalTrouble,
    OrderEntries,
    owner_id,
)
from watcher.store.sqlite import SqliteStore, connect
from watcher.store.sqlite_schema import JOURNAL

T = TypeVar("T")
DELETE_CHUNK: Final = 10_000  # rows per pruning transaction
CHUNK: Final = 500  # ids per IN (...) query
COLUMNS: Final = "id, at, number, event, version, entry, file, dest, worker"
# a row already there (the same entry written again) is left as it is
FULL: Final = "INSERT OR IGNORE INTO journal (id, at, number, file, entry) VALUES (?,?,?,?,?)"
COMPACT: Final = (
    "INSERT OR IGNORE INTO journal (id, at, number, event, version, file, dest, worker)"
    " VALUES (?,?,?,?,?,?,?,?)"
)
# an order's entry that points at its file's entry: its file, destination and worker NULL,
# the time (one for the file's orders) in the statement
POINTING: Final = (
    "INSERT OR IGNORE INTO journal (id, at, number, event, version) VALUES (?, {at}, ?, ?, ?)"
)
ID_JSON: Final = len(b',"id":"') + 24 + len(b'"}')  # how an entry's JSON ends
Row = tuple[Any, ...]  # (id, at, number, event, version, entry, file, dest, worker)


def micros(when: datetime) -> int:
    return (when - EPOCH) // MICROSECOND


def from_micros(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


def _plain(entry: Entry) -> bool:
    """Whether ``entry`` is an order's inbound entry that columns say whole."""
    return (
        entry.number is not None
        and entry.direction == "in"
        and entry.reason is None
        and entry.counts is None
        and entry.tracos_version is None
        and entry.differs is None
    )


def _points(entry: Entry, owner: Entry) -> bool:
    """Whether ``entry`` says nothing its file's entry ``owner`` does not, but its number,
    event, version and time: then its row points at ``owner``'s for the rest."""
    return entry.to is None and _says_alike(owner, entry.file, entry.worker, entry.trace)


def _says_alike(owner: Entry, file: str | None, worker: str | None, trace: str | None) -> bool:
    """Whether an inbound order's entry of this file, worker and trace may point at ``owner``."""
    return (
        owner.direction == "in"
        and file == owner.file
        and worker == owner.worker
        and trace == owner.trace
    )


def insert(entries: Sequence[Entry], db: sqlite3.Connection) -> None:
    """Write ``entries``, each row once whoever writes it again. The rows are made as
    SQLite takes them, never all held at once: a batch's entries are already in memory,
    and its rows as a list would be as much again (docs/spec.md §7). Where the row order
    differs from the entries' the rows are the same: the table is kept in id order."""
    parts = entries.parts if isinstance(entries, Entries) else [entries]
    owners = {e.id: e for e in _unnumbered(parts)}
    others: list[Sequence[Entry]] = []
    for part in parts:
        if not (isinstance(part, OrderEntries) and _insert_pointing(part, owners, db)):
            others.append(part)
    full: list[Entry] = []  # the few entries that need their JSON: after the columns-only ones
    db.executemany(COMPACT, _compact_rows(chain.from_iterable(others), owners, full))
    db.executemany(FULL, map(_full_row, full))


def _insert_pointing(
    part: OrderEntries, owners: Mapping[bytes, Entry], db: sqlite3.Connection
) -> bool:
    """Write a file's order entries straight from their columns when they all point at
    their file's entry (written with them): what ``_compact_rows`` would make of each, with
    no ``Entry`` an order and only what varies bound (a bound value costs about 0.25 µs,
    as much as a row's Python). False, nothing written, when they do not all point."""
    owner = owners.get(part.owner)
    at, file, worker, trace = part.common
    if owner is None or not _says_alike(owner, file, worker, trace):
        return False
    rows = part.columns()
    if rows is None:
        return False
    db.executemany(POINTING.format(at=micros(at)), rows)
    return True


def _unnumbered(parts: Iterable[Sequence[Entry]]) -> Iterator[Entry]:
    """The entries without a number (the ones orders may point at): a file's order
    entries kept as columns all have one, and are not made into entries to be looked at."""
    for part in parts:
        if not isinstance(part, OrderEntries):
            yield from (e for e in part if e.number is None)


def _compact_rows(
    entries: Iterable[Entry], owners: Mapping[bytes, Entry], full: list[Entry]
) -> Iterator[Row]:
    """The columns-only rows of ``entries``, one at a time; the others go to ``full``."""
    for e in entries:
        if _plain(e):
            at = micros(e.at)
            version = None if e.version is None else micros(e.version)
            owner = owners.get(owner_id(e.id) or b"")
            if owner is not None and _points(e, owner):
                yield (e.id, at, e.number, e.event, version, None, None, None)
                continue
            if e.trace is None and e.file is not None:  # a row with a file points at none
                yield (e.id, at, e.number, e.event, version, e.file, e.to, e.worker)
                continue
        full.append(e)


def _full_row(e: Entry) -> Row:
    return (e.id, micros(e.at), e.number, e.file, _without_id(journal.encode(e)))


class SqliteJournal:
    """``Journal`` on the embedded store's file."""

    def __init__(self, store: SqliteStore) -> None:
        self._store = store
        self._conn: sqlite3.Connection | None = None

    async def open(self, create: bool = True) -> None:
        await self._run(lambda: self._open(create))

    def _open(self, create: bool) -> None:
        self._conn = connect(self._store.path, create)
        self._conn.execute("PRAGMA synchronous=NORMAL")  # synced by the store's commits
        if create:
            self._conn.executescript(JOURNAL)

    async def close(self) -> None:
        await self._store.run_closing(self._close_now)

    def _close_now(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def _run(self, work: Callable[[], T]) -> T:
        return await self._store.run_locked(work)

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise sqlite3.OperationalError("the journal is not open")
        return self._conn

    async def record(self, entries: Sequence[Entry]) -> None:
        await self._run(lambda: self._write(partial(insert, entries)))

    def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            done = work(db)
        except sqlite3.OperationalError as exc:
            db.execute("ROLLBACK")
            if exc.sqlite_errorcode == sqlite3.SQLITE_ERROR:  # its table or a column gone
                raise JournalTrouble(f"embedded store's journal: {exc}") from exc
            raise  # busy, I/O, a full disk: the store's own state
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return done

    async def history(self, query: HistoryQuery) -> list[Entry]:
        def read() -> list[Entry]:
            if not self._has_table():
                return []
            return self._entries(self._rows(query), query.limit)

        return await self._run(read)

    def _rows(self, query: HistoryQuery) -> list[Row]:
        since = micros(query.since) if query.since else -(2**62)
        order = " ORDER BY at DESC, id DESC LIMIT ?"
        if query.event is not None:  # rare (an operator's command): a scan, no index
            where = "(event = ?1 OR json_extract(CAST(entry AS TEXT), '$.event') = ?1)"
            sql = f"SELECT {COLUMNS} FROM journal WHERE {where} AND at >= ?2" + order
            return self._db.execute(sql, (query.event, since, query.limit)).fetchall()
        if query.file is None:
            sql = f"SELECT {COLUMNS} FROM journal WHERE number = ? AND at >= ?" + order
            return self._db.execute(sql, (query.number, since, query.limit)).fetchall()
        sql = f"SELECT {COLUMNS} FROM journal WHERE file = ? AND at >= ?" + order
        files = self._db.execute(sql, (query.file, since, query.limit)).fetchall()
        return [*files, *self._orders_of(files, since, query.limit)]

    def _orders_of(self, files: list[Row], since: int, limit: int) -> Iterable[Row]:
        """The column-only entries of the orders of these files' entries (by key range)."""
        sql = (
            f"SELECT {COLUMNS} FROM journal WHERE id > ? AND id < ? AND entry IS NULL"
            " AND at >= ? ORDER BY id DESC LIMIT ?"
        )
        for key, *_ in files:
            if key.endswith(OWN):  # an entry orders may point at
                yield from self._db.execute(sql, (key[:-4], key, since, limit))

    def _entries(self, found: list[Row], limit: int) -> list[Entry]:
        """The newest ``limit`` rows as entries, oldest first."""
        newest = sorted(found, key=lambda row: (row[1], row[0]), reverse=True)[:limit]
        pointing = (row[0] for row in newest if row[5] is None and row[6] is None)
        owners = self._owners({owner_id(key) for key in pointing})
        return [_entry(row, owners) for row in reversed(newest)]

    def _owners(self, ids: set[bytes | None]) -> dict[bytes, Entry]:
        wanted = [key for key in ids if key is not None]
        found: dict[bytes, Entry] = {}
        for start in range(0, len(wanted), CHUNK):
            chunk = wanted[start : start + CHUNK]
            sql = f"SELECT id, entry FROM journal WHERE id IN ({','.join('?' * len(chunk))})"
            found.update((key, _decoded(key, data)) for key, data in self._db.execute(sql, chunk))
        return found

    def _has_table(self) -> bool:
        """A store made before the journal existed, opened by an inspection command."""
        sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'journal'"
        return self._db.execute(sql).fetchone() is not None

    async def forget(self, before: datetime, keep: int) -> int:
        # ids grow with time: the oldest are found first, in id order, without an index on ``at``
        old = "SELECT id FROM journal WHERE at < ? ORDER BY id LIMIT ?"
        deleted = await self._delete_all(old, micros(before))
        newest = "SELECT id FROM journal ORDER BY id DESC LIMIT 1 OFFSET ?"
        cut = await self._run(lambda: self._db.execute(newest, (keep,)).fetchone())
        if cut is None:
            return deleted
        beyond = "SELECT id FROM journal WHERE id <= ? ORDER BY id LIMIT ?"
        return deleted + await self._delete_all(beyond, cut[0])

    async def _delete_all(self, select: str, bound: Any) -> int:
        """Delete what ``select`` picks, ``DELETE_CHUNK`` rows per transaction."""
        sql = f"DELETE FROM journal WHERE id IN ({select})"
        deleted = 0
        while True:
            count = await self._run(partial(self._delete_chunk, sql, bound))
            deleted += count
            if count < DELETE_CHUNK:
                return deleted

    def _delete_chunk(self, sql: str, bound: Any) -> int:
        return self._write(lambda db: db.execute(sql, (bound, DELETE_CHUNK)).rowcount)


def _without_id(data: bytes) -> bytes:
    """An entry's JSON without its id (the row's key): the id is its last field, always
    ``,"id":"`` and 24 characters of base64."""
    assert data[-ID_JSON:].startswith(b',"id":"'), data
    return data[:-ID_JSON] + b"}"


def _decoded(key: bytes, data: bytes) -> Entry:
    """A full row's entry, with its row's id (an entry written before ids were made with
    the entries has none in its JSON)."""
    entry = journal.decode(data)
    return entry if entry.id == key else replace(entry, id=key)


def _entry(row: Row, owners: dict[bytes, Entry]) -> Entry:
    key, at, number, event, version, data, file, to, worker = row
    if data is not None:
        return _decoded(key, data)
    owner = None if file is not None else owners.get(owner_id(key) or b"")
    return Entry(
        at=from_micros(at),
        direction="in",
        event=event,
        number=number,
        file=file if owner is None else owner.file,
        to=to,
        version=None if version is None else from_micros(version),
        worker=worker if owner is None else owner.worker,
        trace=None if owner is None else owner.trace,
        id=key,
    )
