"""The embedded store's tables, and stores of earlier releases brought up to date at open.

Formats (``PRAGMA user_version``): 0, dates as plain strings; 1, dates tagged (``rows``),
an index on ``seq`` that only served ``max(seq)``, each mark rewriting the document's JSON;
2, the sync state in columns (``synced``, ``synced_at``: a mark writes two integers)
and the next ``seq`` kept in ``counter``, advanced once per write transaction; 3 (this
one), the journal keyed by the ids its entries are made with (``JOURNAL``). A release
that reads an earlier format at most refuses a newer store (its ``user_version``, or for
format 1 its ``synced_at`` column, is a newer release's), in one line.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import msgspec

from watcher import __version__
from watcher.core.errors import StoreTooNew
from watcher.store import rows
from watcher.store.port import Document

FORMAT: Final = 3
TAGGED: Final = 1  # the format from which dates are tagged
SYNC_COLUMNS: Final = 2  # the format from which the sync state is in columns
# The journal (``sqlite_journal``): one row per entry, keyed by the id it was made with
# (a row written again is ignored), ``at`` in microseconds. A full entry is JSON in
# ``entry``, with the columns its queries need. An order's inbound entry is a row of
# columns only (``entry`` NULL): made with its file's entry, its key points at the file's
# row, which has its file's name and worker (one index entry: its number); made alone (a
# file of that one order, archived), its row has them (``dest``: where the file went).
JOURNAL: Final = """
CREATE TABLE IF NOT EXISTS journal (
    id      BLOB PRIMARY KEY,
    at      INTEGER NOT NULL,
    number  INTEGER,
    file    TEXT,
    event   TEXT,
    version INTEGER,
    dest    TEXT,
    worker  TEXT,
    entry   BLOB
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS journal_number ON journal (number, at) WHERE number IS NOT NULL;
CREATE INDEX IF NOT EXISTS journal_file ON journal (file, at) WHERE file IS NOT NULL;
"""
# the journal of formats 1 and 2 (rowid ids, ``at`` in milliseconds), set aside to be copied
JOURNAL_ASIDE: Final = """
DROP INDEX IF EXISTS journal_number;
DROP INDEX IF EXISTS journal_file;
ALTER TABLE journal RENAME TO journal_before_3;
"""
SCHEMA: Final = (
    """
CREATE TABLE workorders (
    number     INTEGER PRIMARY KEY,
    updated_at INTEGER,
    synced     INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    changed_at INTEGER NOT NULL,
    doc        TEXT NOT NULL,
    synced_at  INTEGER
);
CREATE INDEX workorders_unsynced ON workorders (seq) WHERE synced = 0;
CREATE INDEX workorders_unsynced_age ON workorders (updated_at) WHERE synced = 0;
CREATE TABLE counter (seq INTEGER NOT NULL);
INSERT INTO counter VALUES (0);
"""
    + JOURNAL
)
# the columns of ``workorders`` this release knows: any other is a newer one's
COLUMNS: Final = frozenset(
    {"number", "updated_at", "synced", "seq", "changed_at", "doc", "synced_at"}
)
# the counter is read from the ``seq`` index before it goes (a scan of every row without it)
TO_FORMAT_2: Final = """
ALTER TABLE workorders ADD COLUMN synced_at INTEGER;
CREATE TABLE counter (seq INTEGER NOT NULL);
INSERT INTO counter SELECT coalesce(max(seq), 0) FROM workorders;
DROP INDEX IF EXISTS workorders_seq;
"""
LEGACY_DATE_FIELDS: Final = ("createdAt", "updatedAt", "deletedAt", "syncedAt")
_decode = msgspec.json.Decoder(dict[str, Any]).decode


def prepare(db: sqlite3.Connection, path: Path, create: bool) -> None:
    """Make the tables of a new store (if ``create``), or bring an earlier one up to this
    format, once; a store from a newer release is refused (``StoreTooNew``), never written
    to. A store already up to date is only read: a command that only looks never waits for
    the write lock."""
    found = _format(db)
    _refuse_newer(db, path, found)
    if found == FORMAT and not _has_index(db, "workorders_seq"):
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        _bring_up_to_date(db, create)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _bring_up_to_date(db: sqlite3.Connection, create: bool) -> None:
    """Inside the write transaction: what another process did meanwhile is seen here."""
    found = _format(db)
    if found == 0 and create and not _has_table(db, "workorders"):
        _run_all(db, SCHEMA)
    else:
        if found < TAGGED:
            _tag_dates(db)
        if found < SYNC_COLUMNS:
            _run_all(db, TO_FORMAT_2)
        if found < FORMAT:
            _journal_to_format_3(db)
        # an older release opening this store creates its ``seq`` index before it refuses
        db.execute("DROP INDEX IF EXISTS workorders_seq")
    db.execute(f"PRAGMA user_version = {FORMAT}")


def _journal_to_format_3(db: sqlite3.Connection) -> None:
    """The journal keyed by made-once ids: each earlier entry copied as it is (its JSON),
    keyed by its old id (zeros first, so before any new id: the same order), ``at`` in
    microseconds."""
    if not _has_table(db, "journal"):
        _run_all(db, JOURNAL)
        return
    _run_all(db, JOURNAL_ASIDE)
    _run_all(db, JOURNAL)
    old = db.execute("SELECT id, at, number, file, entry FROM journal_before_3")
    copied = ((old_entry_id(n), at * 1000, number, file, e) for n, at, number, file, e in old)
    sql = "INSERT INTO journal (id, at, number, file, entry) VALUES (?, ?, ?, ?, ?)"
    db.executemany(sql, copied)
    db.execute("DROP TABLE journal_before_3")


def old_entry_id(rowid: int) -> bytes:
    """The id of an entry written before ids were made with the entries (format 2 or before)."""
    from watcher.store.journal import OWN  # here: ``status`` and ``show`` open no journal

    return bytes(4) + rowid.to_bytes(8, "big") + OWN


def _run_all(db: sqlite3.Connection, script: str) -> None:
    """Each statement of ``script`` in the open transaction (``executescript`` commits)."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def _format(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def _has_table(db: sqlite3.Connection, name: str) -> bool:
    sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
    return db.execute(sql, (name,)).fetchone() is not None


def _has_index(db: sqlite3.Connection, name: str) -> bool:
    sql = "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?"
    return db.execute(sql, (name,)).fetchone() is not None


def _refuse_newer(db: sqlite3.Connection, path: Path, found: int) -> None:
    """A higher ``user_version``, or columns this release does not know: a newer release's."""
    extra = sorted({row[1] for row in db.execute("PRAGMA table_info(workorders)")} - COLUMNS)
    if found <= FORMAT and not extra:
        return
    what = f"store format {found}" + (f", with columns {', '.join(extra)}" if extra else "")
    raise StoreTooNew(
        f"embedded store {path} was written by a newer release of watcher ({what}; this"
        f" release {__version__} reads format {FORMAT} at most): run that release,"
        " or point DATA_STATE_DIR at another folder"
    )


def _tag_dates(db: sqlite3.Connection) -> None:
    """Format 0 to 1: tag the dates of rows written when they were plain RFC 3339 strings."""
    found = db.execute("SELECT number, doc FROM workorders").fetchall()
    docs = ((n, _with_legacy_dates(_decode(doc))) for n, doc in found)
    tagged = ((rows.encode(doc), rows.version_of(doc), n) for n, doc in docs)
    db.executemany("UPDATE workorders SET doc = ?, updated_at = ? WHERE number = ?", tagged)


def _with_legacy_dates(doc: Document) -> Document:
    for field in LEGACY_DATE_FIELDS:
        value = doc.get(field)
        if isinstance(value, str):
            try:
                when = msgspec.convert(value, datetime)
            except msgspec.ValidationError:
                continue  # not a date then: it stays the string it is
            if when.tzinfo is not None:
                doc[field] = when
    return doc


def next_seq(db: sqlite3.Connection) -> int:
    """The last ``seq`` given (in a write transaction): the next write's is one more."""
    return int(db.execute("SELECT seq FROM counter").fetchone()[0])


def advance(db: sqlite3.Connection, last: int) -> None:
    """Record ``last`` as the last ``seq`` given, once per write transaction."""
    db.execute("UPDATE counter SET seq = ?", (last,))
