"""The embedded store: TracOS documents in SQLite (WAL), same semantics as MongoDB.

Each row keeps the whole document as JSON plus the columns the rules need: the number
(unique), ``updated_at`` in epoch milliseconds (newer wins), ``synced`` and ``synced_at``
(a mark's, kept out of the JSON) and a monotonic ``seq`` given by every write (the change
feed and the version a conditional mark checks). The tables: ``sqlite_schema``.
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import threading
import time
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from itertools import chain, count, repeat
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

import anyio

from watcher import fs as files
from watcher.core.errors import StoreDamaged, StoreMissing, StoreUnavailable
from watcher.core.tracos import (
    NUMBER,
    UPDATED_AT,
    Clash,
    OrderUpsert,
    Outcome,
    clash,
    decide,
    may_cross,
    newest_per_number,
    normalise_date,
    stored_date,
)
from watcher.store import rows, sqlite_schema
from watcher.store.port import (
    Document,
    Handler,
    PutResult,
    Replace,
    StoredDocument,
    SyncMark,
    TriggerProgress,
    replaces,
)

if TYPE_CHECKING:
    from watcher.store.journal import Entry, PendingEntries

T = TypeVar("T")
CHUNK: Final = 500  # numbers per IN (...) query, well under SQLite's variable limit
WAKE_POLL_SECONDS: Final = 0.2  # how often writes by other processes are looked for
WATCHED_POLL_SECONDS: Final = 1.0  # as often, where the WAL's writes wake the trigger
COMMIT_SECONDS: Final = 0.002  # and this soon after the WAL was written to (then 2x, 4x…)
WRITING_SECONDS: Final = 0.05  # but no more often than this while its writes go on
BUSY_SECONDS: Final = 10.0  # how long a statement waits for another process's lock
CLOSE_WAIT_SECONDS: Final = 0.2  # how long closing waits for a call stuck behind one

# a batch's marks, conditional on the version read (``seq``): the rows marked come back
MARK: Final = (
    "UPDATE workorders SET synced = 1, synced_at = ?"
    " WHERE synced = 0 AND seq IN ({places}) RETURNING seq"
)
# min() skips NULLs (an updatedAt that is no date) and reads the partial index above
OLDEST_UNSYNCED: Final = "SELECT min(updated_at) FROM workorders WHERE synced = 0"
# an inbound write's rows: all synced, the time of the write in the statement. Rows that
# are all new (read absent in this write transaction) are a plain INSERT: SQLite's REPLACE
# costs about 0.45 µs a row more (3.7 against 3.2 µs of CPU for 100,000 new rows)
INSERTED: Final = (
    "INSERT INTO workorders (number, updated_at, synced, seq, changed_at, doc)"
    " VALUES (?, ?, 1, ?, {changed}, ?)"
)
UPSERTED: Final = INSERTED.replace("INSERT", "INSERT OR REPLACE", 1)


def crossing(row: tuple[Any, ...], order: OrderUpsert) -> bool:
    """Whether a synced row must be read to know if ``order`` crossed its export (a mark
    sets ``synced_at``; an inbound write or a put leaves it NULL)."""
    synced_at = row[3]
    return may_cross(order, None if synced_at is None else rows.from_millis(synced_at))


def _to_write(
    orders: Sequence[OrderUpsert],
    winner: dict[int, int],
    stored: dict[int, tuple[Any, ...]],
    outcomes: list[Outcome | None],
    clashes: list[Clash] | None,
) -> tuple[list[OrderUpsert], list[rows.Stored | None]]:
    """The orders to write (the newest of each number, in the batch's order) and each one's
    stored row (None: a new order), their outcomes set in ``outcomes``."""
    if not stored:  # all new (a first batch): nothing to judge, order by order
        for index in winner.values():
            outcomes[index] = Outcome.INSERTED
        written = [orders[index] for index in winner.values()]
        return written, [None] * len(written)
    written, before = [], []
    for number, index in winner.items():
        order, row = orders[index], stored.get(number)
        if row is None:  # a new order: nothing to judge
            outcomes[index] = outcome = Outcome.INSERTED
        else:
            outcomes[index] = outcome = _judged(row, order, clashes)
        if outcome in (Outcome.INSERTED, Outcome.UPDATED):
            written.append(order)
            before.append(None if row is None else row[1:])
    return written, before


def _judged(row: tuple[Any, ...], order: OrderUpsert, clashes: list[Clash] | None) -> Outcome:
    """The outcome of ``order`` over its stored ``row`` (``updated_at``, JSON, ``synced``,
    ``synced_at``); a clash found on the way goes to ``clashes``. The document is read only
    when its version is no date, it is unsynced, or the order may have crossed its export."""
    millis, doc, synced, synced_at = row
    odd = millis is None or not synced or crossing(row, order)
    when = None if millis is None else rows.from_millis(millis)
    parsed = rows.decode_marked(doc, synced, synced_at) if odd and doc else {}
    if odd and millis is None:
        when = stored_date(parsed.get("updatedAt"))  # maybe text naming a date
    outcome = decide(when, order.updatedAt)
    if odd and clashes is not None and (found := clash(parsed, order, outcome)):
        clashes.append(found)
    return outcome


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    return info.st_dev, info.st_ino


def _durable_files(path: Path) -> tuple[Path, ...]:
    """The files an acknowledged write rests on: the database, its write-ahead log (a
    commit is durable there until a checkpoint copies it over) and the log's index."""
    return path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")


def connect(
    path: Path, create: bool = True, busy_seconds: float = BUSY_SECONDS
) -> sqlite3.Connection:
    """A connection in WAL mode whose acknowledged writes survive a power loss; a lock held
    by another process is waited for ``busy_seconds`` at most (from the first statement)."""
    # mode=rw: a file removed since it was checked is an error, never a new empty store
    where = str(path) if create else path.resolve().as_uri() + "?mode=rw"
    conn = sqlite3.connect(
        where, busy_seconds, isolation_level=None, check_same_thread=False, uri=not create
    )
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


@contextmanager
def translated(path: Path) -> Iterator[None]:
    """SQLite's errors as ours: busy or I/O trouble is an outage, a damaged file worse."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        raise StoreUnavailable(f"embedded store: {exc}") from exc
    except sqlite3.DatabaseError as exc:  # not a database, malformed pages
        raise StoreDamaged(
            f"embedded store {path} is damaged ({exc}): stop the worker, move the"
            " file aside and restore a backup (or remove it to start an empty store);"
            " files wait in the inbound folder meanwhile"
        ) from exc


class SqliteStore:
    """``WorkOrderStore`` on a SQLite file; safe for other processes to read and write."""

    def __init__(
        self, path: Path, threads: bool = True, busy_seconds: float = BUSY_SECONDS
    ) -> None:
        """``threads=False``: each call runs right here, never in a worker thread (a
        one-shot command, which has nothing to do meanwhile and no event loop to start).
        ``busy_seconds``: how long to wait for another process's lock (``status`` answers
        within a second, saying what it could not read)."""
        self._path = path
        self._threads = threads
        self._busy_seconds = busy_seconds
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._watch: sqlite3.Connection | None = None
        self._wake: anyio.Event | None = None  # while following: our own writes wake it
        self._ids = rows.ObjectIds()
        # the files opened (``_durable_files``): device and inode each, None if absent
        self._identity: dict[Path, tuple[int, int] | None] = {}
        self._commits = 0  # our own commits (``data_version`` only changes for others')
        self._counted: tuple[tuple[int, int], tuple[int, int]] | None = None
        self.trigger = TriggerProgress()
        self._riding: PendingEntries | None = None  # journal entries each write takes along
        self._journal_insert: Callable[[Sequence[Entry], sqlite3.Connection], None] | None = None

    @property
    def mode(self) -> str:
        return "embedded"

    @property
    def path(self) -> Path:
        return self._path

    async def open(self, create: bool = True) -> None:
        await self.run_locked(lambda: self._open(create))

    def _open(self, create: bool) -> None:
        if create:
            self._path.parent.mkdir(parents=True, exist_ok=True)
        elif not self._path.is_file():
            raise StoreMissing(
                f"no embedded store at {self._path}: run this command in the worker's"
                " directory, or set DATA_STATE_DIR to the worker's state folder"
                " (or MONGO_URI, if the worker uses MongoDB)"
            )
        self._conn = connect(self._path, create, self._busy_seconds)
        # an existing store is brought up to date, whoever opens it
        sqlite_schema.prepare(self._conn, self._path, create)
        self._watch = connect(self._path, create, self._busy_seconds)
        self._identity = {path: _identity(path) for path in _durable_files(self._path)}

    async def close(self) -> None:
        await self.run_closing(self._close_now)

    def _close_now(self) -> None:
        for conn in (self._conn, self._watch):
            if conn is not None:
                conn.close()
        self._conn = self._watch = None

    async def run_closing(self, close: Callable[[], None]) -> None:
        """``close`` (connections of this file) once no call is using them. A call stuck
        behind another process's lock is not waited for beyond ``CLOSE_WAIT_SECONDS``:
        the process may end meanwhile, as SQLite allows (what was committed is on disk)."""
        if not self._threads:
            with self._lock:
                return close()
        with anyio.move_on_after(CLOSE_WAIT_SECONDS):
            await anyio.to_thread.run_sync(self._closing, close, abandon_on_cancel=True)

    def _closing(self, close: Callable[[], None]) -> None:
        with self._lock:
            close()

    async def ping(self) -> None:
        await self.run_locked(lambda: self._db.execute("SELECT 1").fetchone())

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreUnavailable("the embedded store is not open")
        return self._conn

    async def run_locked(self, work: Callable[[], T]) -> T:
        """``work`` on the store's file, under the lock held around each use of it in this
        process (the journal's work too: its writes and the store's take turns here, never
        in SQLite's busy wait of a millisecond or more); SQLite's errors as ours."""
        if not self._threads:
            return self._locked(work)
        # a caller cancelled (a stop after its grace) stops waiting at once; the call ends
        # in its thread, its transaction committed or rolled back whole
        return await anyio.to_thread.run_sync(self._locked, work, abandon_on_cancel=True)

    def _locked(self, work: Callable[[], T]) -> T:
        with self._lock, translated(self._path):
            self._check_same_file()
            return work()

    def _check_same_file(self) -> None:
        """Never acknowledge a write into a file that no longer has the store's name: the
        database, or the write-ahead log every commit goes to first (deleted, SQLite would
        go on writing into the unlinked log, and a crash would lose all of it)."""
        for path, known in self._identity.items():
            if known is not None and _identity(path) != known:
                self._save_what_was_acknowledged()
                raise StoreDamaged(
                    f"embedded store {self._path}: {path.name} was deleted or replaced while"
                    " the worker ran: nothing more is written to it; restore the file, or"
                    " restart the worker (which keeps what was stored)"
                )

    def _save_what_was_acknowledged(self) -> None:
        """Copy the unlinked log's commits into the database while it is still open."""
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("PRAGMA wal_checkpoint(FULL)")

    def carry(self, pending: PendingEntries) -> None:
        """Each write transaction from now on also writes the journal entries waiting in
        ``pending``: one commit (and one sync) for the work and its journal."""
        # imported here: the journal's adapter is built on this module
        from watcher.store.sqlite_journal import insert

        self._riding, self._journal_insert = pending, insert

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        riding: Sequence[Entry] = []
        try:
            yield db
            riding = self._ride_along(db)
            self._check_same_file()
        except BaseException:
            db.execute("ROLLBACK")
            self._put_back(riding)
            raise
        try:
            db.execute("COMMIT")
        except BaseException:
            self._put_back(riding)
            raise
        self._commits += 1

    def _ride_along(self, db: sqlite3.Connection) -> Sequence[Entry]:
        """Write the waiting journal entries in this transaction; the entries written. The
        journal's trouble (its table dropped, an entry it cannot take) never fails the
        store's write: its part is undone and the entries wait for a write of their own,
        where the trouble is said."""
        if self._riding is None or self._journal_insert is None:
            return []
        riding = self._riding.take()
        if not riding:
            return []
        db.execute("SAVEPOINT journal")
        try:
            self._journal_insert(riding, db)
        except Exception:
            db.execute("ROLLBACK TO journal")
            db.execute("RELEASE journal")
            self._riding.restore(riding)
            return []
        db.execute("RELEASE journal")
        return riding

    def _put_back(self, riding: Sequence[Entry]) -> None:
        """Entries taken along by a write that was not committed: they wait again."""
        if self._riding is not None:
            self._riding.restore(riding)

    async def upsert(
        self, orders: Sequence[OrderUpsert], now: datetime, clashes: list[Clash] | None = None
    ) -> list[Outcome]:
        return await self.run_locked(lambda: self._upsert(orders, now, clashes))

    def _upsert(
        self, orders: Sequence[OrderUpsert], now: datetime, clashes: list[Clash] | None
    ) -> list[Outcome]:
        now = normalise_date(now)  # once, not once an order
        winner, outcomes = newest_per_number(orders)
        with self._transaction() as db:
            stored = self._stored(db, list(winner))
            written, before = _to_write(orders, winner, stored, outcomes, clashes)
            self._write_upserted(db, written, before, now)
        return [o for o in outcomes if o is not None]

    def _write_upserted(
        self,
        db: sqlite3.Connection,
        written: list[OrderUpsert],
        before: list[rows.Stored | None],
        now: datetime,
    ) -> None:
        """Write the rows of an inbound write, each made as SQLite takes it (a batch's
        encoded rows never coexist), each with the next ``seq`` (the counter advanced once,
        after). One encode a row: a new order's from a Struct, a stored one's with only the
        fields the write sets replaced. The per-row values are zipped in C (no Python frame
        a row but the row's JSON); the time of the write and ``synced`` are in the
        statement; a batch's new ids are made as one block."""
        synced_at = rows.Date(now)  # one for the batch
        new = before.count(None)
        new_id = chain(self._ids.block(new), self._ids).__next__
        docs = map(rows.written, written, before, repeat(synced_at), repeat(new_id))
        versions = rows.millis_of(map(UPDATED_AT, written))
        first = sqlite_schema.next_seq(db) + 1
        values = zip(map(NUMBER, written), versions, count(first), docs)
        statement = INSERTED if new == len(written) else UPSERTED
        db.executemany(statement.format(changed=rows.to_millis(now)), values)
        sqlite_schema.advance(db, first + len(written) - 1)

    def _stored(self, db: sqlite3.Connection, numbers: list[int]) -> dict[int, tuple[Any, ...]]:
        """``updated_at``, the document's JSON, ``synced`` and ``synced_at`` per stored
        number, in one query per chunk."""
        found: dict[int, tuple[Any, ...]] = {}
        columns = "number, updated_at, doc, synced, synced_at"
        for start in range(0, len(numbers), CHUNK):
            chunk = numbers[start : start + CHUNK]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT {columns} FROM workorders WHERE number IN ({marks})"
            found.update((row[0], row[1:]) for row in db.execute(query, chunk))
        return found

    def _replace(self, db: sqlite3.Connection, written: Iterable[rows.Row], now: datetime) -> None:
        """Write whole rows, each with the next sequence number (the counter is advanced
        once, after); the time of the write is in the statement."""
        first = sqlite_schema.next_seq(db) + 1
        last = [first - 1]

        def values() -> Iterator[tuple[Any, ...]]:
            for seq, (number, version, flag, doc) in enumerate(written, start=first):
                last[0] = seq
                yield number, version, flag, seq, doc

        changed = rows.to_millis(now)
        sql = (
            "INSERT OR REPLACE INTO workorders (number, updated_at, synced, seq, changed_at, doc)"
            f" VALUES (?, ?, ?, ?, {changed}, ?)"
        )
        db.executemany(sql, values())
        sqlite_schema.advance(db, last[0])

    async def put_documents(
        self, docs: Sequence[Document], replace: Replace = Replace.ALWAYS
    ) -> PutResult:
        now = datetime.now(UTC)
        prepared = [rows.as_bson_would({k: v for k, v in d.items() if k != "_id"}) for d in docs]
        result = await self.run_locked(lambda: self._put(prepared, replace, now))
        if self._wake is not None:
            self._wake.set()
        return result

    def _put(self, docs: list[Document], replace: Replace, now: datetime) -> PutResult:
        with self._transaction() as db:
            stored = self._stored(db, [doc["number"] for doc in docs])
            writes: list[Document] = []
            for doc in docs:
                millis, old, *_ = stored.get(doc["number"], (None, None))
                when = None if millis is None else rows.from_millis(millis)
                if old is None:
                    writes.append({"_id": next(self._ids), **doc})
                elif replaces(replace, when, doc.get("updatedAt")):
                    writes.append({"_id": rows.decode(old).get("_id", next(self._ids)), **doc})
            self._replace(db, [rows.row_of(doc) for doc in writes], now)
        inserted = len(docs) - len(stored)
        return PutResult(inserted, len(writes) - inserted, len(docs) - len(writes))

    async def find(self, numbers: Sequence[int] = ()) -> list[Document]:
        def read() -> list[Document]:
            if numbers:
                found = self._stored(self._db, list(numbers))
                return [rows.decode_marked(*found[n][1:]) for n in sorted(found)]
            every = "SELECT doc, synced, synced_at FROM workorders ORDER BY number"
            return [rows.decode_marked(*row) for row in self._db.execute(every)]

        return await self.run_locked(read)

    async def iter_documents(self, batch_size: int) -> AsyncGenerator[list[Document], None]:
        """Keyset pages on the number (the rowid): each page is a short read of its own, so
        a long listing never holds a read transaction the worker's writes must wait out."""
        after: int | None = None
        while True:
            page, after = await self.run_locked(partial(self._documents_after, after, batch_size))
            if page:
                yield page
            if len(page) < batch_size:
                return

    def _documents_after(self, after: int | None, limit: int) -> tuple[list[Document], int | None]:
        """Up to ``limit`` documents numbered above ``after`` (None: from the first), and the
        last number read."""
        query, args = "SELECT number, doc, synced, synced_at FROM workorders", [limit]
        if after is not None:
            query, args = query + " WHERE number > ?", [after, limit]
        page = self._db.execute(query + " ORDER BY number LIMIT ?", args).fetchall()
        return [rows.decode_marked(*row[1:]) for row in page], page[-1][0] if page else after

    async def iter_unsynced(self, batch_size: int) -> AsyncGenerator[list[StoredDocument], None]:
        """Keyset pages on the write sequence, through the partial index of unsynced rows:
        a document marked meanwhile leaves the index, one written meanwhile comes later in
        the same sweep (its new ``seq`` is above every one read so far)."""
        seen = 0
        while True:
            found, seen = await self.run_locked(partial(self._unsynced_after, seen, batch_size))
            if found:
                yield found
            if len(found) < batch_size:
                return

    def _unsynced_after(self, seen: int, limit: int) -> tuple[list[StoredDocument], int]:
        """Up to ``limit`` unsynced documents changed after sequence number ``seen``, in
        write order, and the newest sequence number read."""
        query = (
            "SELECT number, seq, changed_at, doc, synced_at FROM workorders"
            " WHERE synced = 0 AND seq > ?"
        )
        changed = self._db.execute(query + " ORDER BY seq LIMIT ?", (seen, limit)).fetchall()
        found = [
            StoredDocument(str(n), rows.decode_marked(doc, 0, marked), seq, rows.from_millis(at))
            for n, seq, at, doc, marked in changed
        ]
        return found, changed[-1][1] if changed else seen

    async def unsynced_at(self, marks: Sequence[SyncMark]) -> set[str]:
        def check() -> set[str]:
            found: set[str] = set()
            for start in range(0, len(marks), CHUNK):
                chunk = [mark.version for mark in marks[start : start + CHUNK]]
                places = ",".join("?" * len(chunk))
                query = f"SELECT number FROM workorders WHERE synced = 0 AND seq IN ({places})"
                found.update(str(number) for (number,) in self._db.execute(query, chunk))
            return found

        return await self.run_locked(check)

    async def mark_synced(
        self, marks: Sequence[SyncMark], now: datetime, refused: dict[str, str] | None = None
    ) -> set[str]:
        """(Never refused for one document: ``refused`` stays empty.)"""
        synced_at = rows.to_millis(normalise_date(now))

        # one statement per chunk of the batch, not one per document: it says which rows it
        # marked, so nothing is read before or after it
        keys = {mark.version: mark.key for mark in marks}

        def mark() -> set[str]:
            done: set[str] = set()
            with self._transaction() as db:
                for start in range(0, len(marks), CHUNK):
                    chunk = [mark.version for mark in marks[start : start + CHUNK]]
                    places = ",".join("?" * len(chunk))
                    query = MARK.format(places=places)
                    done.update(keys[seq] for (seq,) in db.execute(query, [synced_at, *chunk]))
            return done

        return await self.run_locked(mark)

    async def unsync(self, numbers: Sequence[int]) -> int:
        def unsync() -> int:
            changed = rows.to_millis(datetime.now(UTC))
            sql = (
                "UPDATE workorders SET synced = 0, changed_at = ?, seq = ?,"  # a new version
                " doc = json_set(doc, '$.isSynced', json('false')) WHERE number = ? AND synced = 1"
            )
            with self._transaction() as db:
                seq = start = sqlite_schema.next_seq(db)
                for number in numbers:  # rare (an operator's command): one row at a time
                    seq += db.execute(sql, (changed, seq + 1, number)).rowcount
                sqlite_schema.advance(db, seq)
                return seq - start

        done = await self.run_locked(unsync)
        if self._wake is not None:
            self._wake.set()
        return done

    async def counts(self) -> tuple[int, int]:
        return await self.run_locked(self._counts)

    def _counts(self) -> tuple[int, int]:
        """Counted again only after a commit (ours, or another process's): at idle, asked
        every 2 s over 50,000 unsynced rows, a recount would be most of the worker's CPU."""
        key = (int(self._db.execute("PRAGMA data_version").fetchone()[0]), self._commits)
        if self._counted is None or self._counted[0] != key:
            query = (
                "SELECT (SELECT count(*) FROM workorders),"
                " (SELECT count(*) FROM workorders WHERE synced = 0)"
            )
            stored, unsynced = self._db.execute(query).fetchone()
            self._counted = (key, (int(stored), int(unsynced)))
        return self._counted[1]

    async def oldest_unsynced(self) -> datetime | None:
        oldest = (await self.run_locked(lambda: self._db.execute(OLDEST_UNSYNCED).fetchone()))[0]
        return None if oldest is None else rows.from_millis(oldest)

    async def follow_unsynced(self, handle: Handler, poll_seconds: float, batch_size: int) -> None:
        """Sweep, then wake on our own writes at once and on other processes' as their
        commit reaches the file (or within ~0.2 s where that cannot be watched): one keyset
        over the write sequence, a page of at most ``batch_size`` at a time."""
        seen, swept = 0, 0
        began: float | None = time.monotonic()  # the first pass, from the start: a sweep
        wake = self._wake = anyio.Event()
        writes = files.watch_writes(f"{self._path}-wal")  # there while the store is open
        try:
            while True:
                if writes is not None:  # what was written so far, ``version`` says
                    files.drain_events(writes)
                version = await self.run_locked(self._data_version)
                found, seen = await self.run_locked(partial(self._unsynced_after, seen, batch_size))
                if found:
                    swept += len(found)
                    await handle(found)
                    continue
                if began is not None:
                    self.trigger.swept(time.monotonic() - began, swept)
                    began = None
                await self._until_changed(version, wake, writes)
                wake = self._wake = anyio.Event()
        finally:
            if writes is not None:
                os.close(writes)

    async def _until_changed(self, version: int, wake: anyio.Event, writes: int | None) -> None:
        """Until a commit came since ``version``, or our own write woke us. Another process's
        commit wakes it as it reaches the WAL (``writes``); but a commit is visible only once
        its WAL is synced and the shared memory says so, which no event tells of, and a long
        transaction writes the WAL long before it commits. So after a write it looks again
        in 2 ms, then 4, 8… and then every 50 ms, for as long as writes come and a second
        after (another process's transaction of 3 s: 76 looks, 2 % of a core, where a look
        a write was 4,583 and a core; a commit is seen within 50 ms of showing); with no
        write, every second (the fallback, should the WAL be made again), or every 0.2 s
        where the WAL cannot be watched."""
        every = WAKE_POLL_SECONDS if writes is None else WATCHED_POLL_SECONDS
        gap, writing_until = COMMIT_SECONDS, -math.inf
        while True:
            written = writes is not None and files.drain_events(writes)
            if wake.is_set() or await self.run_locked(self._data_version) != version:
                return
            self.trigger.progressed(time.time())
            now = time.monotonic()
            if written:
                writing_until = now + every
            if now < writing_until:
                with anyio.move_on_after(gap):
                    await wake.wait()
                gap = min(2 * gap, WRITING_SECONDS)
            else:
                gap = COMMIT_SECONDS
                with anyio.move_on_after(every):
                    await _written(wake, writes)

    def _data_version(self) -> int:
        """Changes whenever another connection (or process) commits; nearly free to read,
        but it waits while another process holds the file locked: never on the event loop."""
        if self._watch is None:
            raise StoreUnavailable("the embedded store is not open")
        return int(self._watch.execute("PRAGMA data_version").fetchone()[0])


async def _written(wake: anyio.Event, writes: int | None) -> None:
    """Until ``wake`` (our own write) or a write to the WAL (another process's commit,
    or ours): TracOS's put is seen as it lands, not at the next look up to 0.2 s later
    (a tenth of a 10,000-order export's time, measured)."""
    if writes is None:
        await wake.wait()
        return
    async with anyio.create_task_group() as tg:

        async def woken() -> None:
            await wake.wait()
            tg.cancel_scope.cancel()

        tg.start_soon(woken)
        await anyio.wait_readable(writes)  # read away before the next look
        tg.cancel_scope.cancel()
