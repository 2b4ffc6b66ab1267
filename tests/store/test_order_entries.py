"""A file's order entries kept as columns (``OrderEntries``) until they are written: each
read is the ``Entry`` the file's orders would have made, and waiting, slicing, tracing
and dropping them give what a list of those entries gives (docs/spec.md §7: a big batch's
journal entries are not 270,000 objects beside its orders)."""

from __future__ import annotations

import gc
import sqlite3
from datetime import datetime, timedelta

import msgspec

from tests.helpers.builders import NOW, T0
from watcher.store.journal import (
    Entries,
    Entry,
    OrderEntries,
    PendingEntries,
    new_id,
    order_id,
)
from watcher.store.sqlite_journal import insert
from watcher.store.sqlite_schema import JOURNAL

OWN = Entry(at=NOW, direction="in", event="archived", file="big.json", to="archive/big.json")
EVENTS = ("inserted", "updated", "unchanged", "stale")


def pairs(count: int) -> list[tuple[int, datetime, str]]:
    return [(n * 7, T0 + timedelta(milliseconds=n), EVENTS[n % 4]) for n in range(count)]


def as_entries(count: int, trace: str | None = None) -> list[Entry]:
    """The entries as ``Entry`` makes them, one by one."""
    return [
        Entry(
            at=NOW,
            direction="in",
            event=event,
            number=number,
            file="big.json",
            version=version,
            worker="w",
            trace=trace,
            id=order_id(OWN.id, i),
        )
        for i, (number, version, event) in enumerate(pairs(count))
    ]


def columns(count: int) -> OrderEntries:
    return OrderEntries(pairs(count), of=OWN.id, at=NOW, file="big.json", worker="w")


def test_each_entry_read_is_the_entry_made_one_by_one() -> None:
    kept, made = columns(50), as_entries(50)
    assert list(kept) == made and len(kept) == 50
    assert kept[0] == made[0] and kept[-1] == made[-1] and kept[7] == made[7]
    assert list(kept[10:20]) == made[10:20] and list(kept[45:]) == made[45:]
    assert list(kept[10:20][3:5]) == made[13:15]
    assert msgspec.json.encode(list(kept)) == msgspec.json.encode(made)
    assert list(kept.traced("ab" * 16)) == as_entries(50, trace="ab" * 16)


def test_entries_are_not_for_the_garbage_collector_to_walk() -> None:
    """One is made per order or file; holding only strings, numbers, dates, bytes and
    lists or dicts of those, none can close a cycle, so the collector need not track them
    (its passes walk every tracked object)."""
    counted = Entry(at=NOW, direction="in", event="archived", file="f.json", counts={"a": 1})
    assert not any(gc.is_tracked(entry) for entry in [OWN, counted, *columns(3)])


def test_versions_not_in_utc_and_numbers_beyond_int64_are_kept_as_they_are() -> None:
    from datetime import timezone

    odd = timezone(timedelta(hours=2))
    given = [(2**70, T0.astimezone(odd), "inserted"), (-1, T0, "updated")]
    kept = OrderEntries(given, of=OWN.id, at=NOW, file="f", worker=None)
    assert [(e.number, e.version, e.event) for e in kept] == given
    assert kept[0].version is not None and kept[0].version.utcoffset() == timedelta(hours=2)


def test_waiting_entries_keep_their_order_and_drop_the_oldest() -> None:
    pending = PendingEntries()
    before = [Entry(at=NOW, direction="out", event="exported", number=1, id=new_id())]
    pending.add(before)
    pending.add(Entries([columns(30), [OWN]]))
    assert len(pending) == 32
    taken = pending.take()
    assert len(pending) == 0 and taken == [*before, *as_entries(30), OWN]
    assert taken[1] == as_entries(30)[0] and taken[-1] == OWN
    pending.restore(taken)
    assert pending.drop_oldest(21) == 11
    assert pending.take() == [*as_entries(30)[10:], OWN]


def test_the_embedded_store_writes_the_rows_a_list_of_the_entries_writes() -> None:
    def rows(entries: list[Entry] | Entries) -> list[tuple[object, ...]]:
        db = sqlite3.connect(":memory:")
        db.executescript(JOURNAL)
        insert(entries, db)
        return db.execute("SELECT * FROM journal ORDER BY id").fetchall()

    assert rows(Entries([columns(40), [OWN]])) == rows([*as_entries(40), OWN])


def _rows(entries: list[Entry] | Entries) -> list[tuple[object, ...]]:
    db = sqlite3.connect(":memory:")
    db.executescript(JOURNAL)
    insert(entries, db)
    return db.execute("SELECT * FROM journal ORDER BY id").fetchall()


def test_columns_that_point_at_their_file_write_the_rows_their_entries_write() -> None:
    """Written straight from the columns (no entry per order): the same rows, pointing at
    the file's row, also for a part of them, traced, or beside other entries."""
    own = msgspec.structs.replace(OWN, worker="w")
    traced = msgspec.structs.replace(own, trace="ab" * 16)
    other = Entry(at=NOW, direction="out", event="exported", number=3, file="3.json")
    kept, made = columns(40), as_entries(40)
    pointing = _rows(Entries([[other], kept, [own]]))
    assert pointing == _rows([other, *made, own])
    assert [row[6:8] for row in pointing if row[2] in {0, 7}] == [(None, None)] * 2
    assert _rows(Entries([kept[5:25], [own]])) == _rows([*made[5:25], own])
    assert _rows(Entries([kept.traced("ab" * 16), [traced]])) == _rows(
        [*as_entries(40, trace="ab" * 16), traced]
    )
    assert _rows(Entries([kept, [traced]])) == _rows([*made, traced])  # not alike: not pointing


def test_columns_with_versions_not_in_utc_write_the_rows_their_entries_write() -> None:
    from datetime import timezone

    own = msgspec.structs.replace(OWN, worker="w")
    odd = [(n, v.astimezone(timezone(timedelta(hours=2))), e) for n, v, e in pairs(10)]
    kept = OrderEntries(odd, of=own.id, at=NOW, file="big.json", worker="w")
    assert kept.columns() is None
    assert _rows(Entries([kept, [own]])) == _rows([*kept, own])


def test_entries_made_from_columns_with_outcomes_are_the_entries_made_one_by_one() -> None:
    """``of_columns`` (a file's orders and their ``Outcome`` enums): each entry read is the
    one the pairs made, its event plain text; versions not in UTC kept as they are."""
    from datetime import timezone

    from watcher.core.tracos import Outcome

    given = pairs(30)
    outcomes = [Outcome(event) for _, _, event in given]
    kept = OrderEntries.of_columns(
        [n for n, _, _ in given], [v for _, v, _ in given], outcomes,
        of=OWN.id, at=NOW, file="big.json", worker="w",
    )  # fmt: skip
    assert list(kept) == as_entries(30) and kept.columns() is not None
    assert {type(e.event) for e in kept} == {str}
    odd = [v.astimezone(timezone(timedelta(hours=2))) for _, v, _ in given]
    kept = OrderEntries.of_columns(
        [n for n, _, _ in given], odd, outcomes, of=OWN.id, at=NOW, file="big.json", worker="w"
    )
    assert [e.version for e in kept] == odd and kept.columns() is None
