"""The sync journal in the embedded store: a ``journal`` table in the store's own file.

It has its own connection, used under the store's lock (``SqliteStore.run_locked``): the
two take turns there instead of in SQLite's busy wait. Its commits are not synced on
their own (``synchronous=NORMAL``): the store's next commit (``FULL``) syncs the log file
they are in, so a journal write never adds a sync to the work; a crash of the worker
loses none of them, a power loss at most those written since the store's last commit.
Each row keeps the entry as JSON plus the columns its queries need; deletes go in small
transactions so that pruning a large journal never holds up the worker's writes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from typing import Final, TypeVar

from watcher.store import journal, rows
from watcher.store.journal import Entry, HistoryQuery
from watcher.store.sqlite import SqliteStore, connect

T = TypeVar("T")
DELETE_CHUNK: Final = 10_000  # rows per pruning transaction

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS journal (
    id     INTEGER PRIMARY KEY,
    at     INTEGER NOT NULL,
    number INTEGER,
    file   TEXT,
    entry  BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS journal_number ON journal (number, at) WHERE number IS NOT NULL;
CREATE INDEX IF NOT EXISTS journal_file ON journal (file, at) WHERE file IS NOT NULL;
"""


def _insert(entries: Sequence[Entry], db: sqlite3.Connection) -> None:
    sql = "INSERT INTO journal (at, number, file, entry) VALUES (?, ?, ?, ?)"
    db.executemany(
        sql, ((rows.to_millis(e.at), e.number, e.file, journal.encode(e)) for e in entries)
    )


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
            self._conn.executescript(SCHEMA)

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
        await self._run(lambda: self._write(partial(_insert, entries)))

    def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            done = work(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return done

    async def history(self, query: HistoryQuery) -> list[Entry]:
        column, value = ("number", query.number) if query.file is None else ("file", query.file)
        if query.event is not None:  # rare (an operator's command): a scan, no index
            column, value = "json_extract(CAST(entry AS TEXT), '$.event')", query.event
        since = rows.to_millis(query.since) if query.since else -(2**62)
        sql = (
            f"SELECT entry FROM journal WHERE {column} = ? AND at >= ?"
            " ORDER BY at DESC, id DESC LIMIT ?"
        )

        def read() -> list[Entry]:
            if not self._has_table():
                return []
            found = self._db.execute(sql, (value, since, query.limit)).fetchall()
            return [journal.decode(data) for (data,) in reversed(found)]

        return await self._run(read)

    def _has_table(self) -> bool:
        """A store made before the journal existed, opened by an inspection command."""
        sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'journal'"
        return self._db.execute(sql).fetchone() is not None

    async def forget(self, before: datetime, keep: int) -> int:
        cutoff = rows.to_millis(before)
        # ids grow with time: the oldest are found first, in id order, without an index on ``at``
        old = "SELECT id FROM journal WHERE at < ? ORDER BY id LIMIT ?"
        beyond = "SELECT id FROM journal WHERE id <= (SELECT max(id) FROM journal) - ? LIMIT ?"
        deleted = await self._delete_all(old, cutoff)
        return deleted + await self._delete_all(beyond, keep)

    async def _delete_all(self, select: str, bound: int) -> int:
        """Delete what ``select`` picks, ``DELETE_CHUNK`` rows per transaction."""
        sql = f"DELETE FROM journal WHERE id IN ({select})"
        deleted = 0
        while True:
            count = await self._run(partial(self._delete_chunk, sql, bound))
            deleted += count
            if count < DELETE_CHUNK:
                return deleted

    def _delete_chunk(self, sql: str, bound: int) -> int:
        return self._write(lambda db: db.execute(sql, (bound, DELETE_CHUNK)).rowcount)
