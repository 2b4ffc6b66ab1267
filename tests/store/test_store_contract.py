"""One contract for every store: SQLite, MongoDB over mongomock, and a real MongoDB server."""

from __future__ import annotations

from contextlib import aclosing
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import anyio
import pytest

from tests.helpers.builders import NOW, T0, order, tracos_doc
from tests.helpers.stores import all_unsynced
from watcher.core.tracos import Clash, Outcome
from watcher.store import StoredDocument, SyncMark, WorkOrderStore

pytestmark = pytest.mark.anyio
ZERO = timedelta(0)


async def one(store: WorkOrderStore, number: int) -> dict[str, Any]:
    [doc] = await store.find([number])
    return doc


async def test_insert(store: WorkOrderStore) -> None:
    """A new number is inserted, synced (no echo), with its description."""
    assert await store.upsert([order(1)], NOW) == [Outcome.INSERTED]
    doc = await one(store, 1)
    assert (doc["title"], doc["description"], doc["isSynced"]) == ("Order 1", "Order 1", True)
    assert "syncedAt" in doc


async def test_newer_updates_and_keeps_description(store: WorkOrderStore) -> None:
    """Newer lastUpdateDate wins; description is only set on insert."""
    await store.upsert([order(1)], NOW)
    newer = order(1, T0 + timedelta(milliseconds=1), title="Renamed", description="Renamed")
    assert await store.upsert([newer], NOW) == [Outcome.UPDATED]
    doc = await one(store, 1)
    assert (doc["title"], doc["description"]) == ("Renamed", "Order 1")


async def test_equal_is_unchanged_and_older_is_stale(store: WorkOrderStore) -> None:
    """Same millisecond → unchanged; older → stale and the stored document untouched."""
    await store.upsert([order(1, title="Kept")], NOW)
    before = await one(store, 1)
    older = order(1, T0 - timedelta(milliseconds=1), title="Old")
    assert await store.upsert([order(1, title="Same"), older], NOW) == [
        Outcome.UNCHANGED,
        Outcome.STALE,
    ]
    assert await one(store, 1) == before


async def test_duplicate_numbers_are_impossible(store: WorkOrderStore) -> None:
    """Writing the same number from two batches leaves one document."""
    await store.upsert([order(5)], NOW)
    await store.upsert([order(5, T0 + timedelta(seconds=1))], NOW)
    assert len(await store.find([5])) == 1
    assert (await store.counts())[0] == 1


async def test_batch_with_same_number_twice_keeps_newest(store: WorkOrderStore) -> None:
    """Within one batch the newest version of a number wins, the other is counted stale."""
    newest = order(2, T0 + timedelta(seconds=5), title="Newest")
    outcomes = await store.upsert([order(2, title="Older"), newest, order(2, T0, title="Dup")], NOW)
    assert outcomes == [Outcome.STALE, Outcome.INSERTED, Outcome.STALE]
    assert (await one(store, 2))["title"] == "Newest"


async def test_undelete_clears_deleted_at(store: WorkOrderStore) -> None:
    """A later un-delete removes deletedAt."""
    await store.upsert([order(3, deleted=True, deletedAt=T0)], NOW)
    assert (await one(store, 3))["deleted"] is True
    await store.upsert([order(3, T0 + timedelta(seconds=1))], NOW)
    doc = await one(store, 3)
    assert doc["deleted"] is False and "deletedAt" not in doc


async def test_unsynced_query_sees_documents_without_is_synced(store: WorkOrderStore) -> None:
    """TracOS documents without isSynced (or with false) are unsynced; inbound ones are not."""
    await store.put_documents([tracos_doc(1), tracos_doc(2, isSynced=False)])
    await store.upsert([order(3)], NOW)
    unsynced = await all_unsynced(store)
    assert sorted(d.doc["number"] for d in unsynced) == [1, 2]
    assert await store.counts() == (3, 2)


async def test_oldest_unsynced_is_the_oldest_dated_update_waiting(store: WorkOrderStore) -> None:
    """The oldest ``updatedAt`` among unsynced documents, whatever says "not synced";
    synced ones and an ``updatedAt`` that is no date do not count."""
    assert await store.oldest_unsynced() is None
    hour = timedelta(hours=1)
    await store.put_documents(
        [
            tracos_doc(1, updatedAt=T0 + hour),
            tracos_doc(2, updatedAt=T0, isSynced=False),
            tracos_doc(3, updatedAt=T0 - 3 * hour, isSynced=True),
            tracos_doc(4, updatedAt="2020-01-01T00:00:00+00:00"),
            tracos_doc(5, updatedAt=T0 - hour, isSynced="no"),
        ]
    )
    assert await store.oldest_unsynced() == T0 - hour
    unsynced = {d.doc["number"]: d for d in await all_unsynced(store)}
    marks = [SyncMark(unsynced[n].key, unsynced[n].version) for n in (2, 5)]
    await store.mark_synced(marks, NOW)
    assert await store.oldest_unsynced() == T0 + hour


async def test_mark_synced_when_unchanged(store: WorkOrderStore) -> None:
    """The conditional mark succeeds on an unchanged document."""
    await store.put_documents([tracos_doc(1)])
    [doc] = await all_unsynced(store)
    assert await store.mark_synced([SyncMark(doc.key, doc.version)], NOW) == {doc.key}
    assert await all_unsynced(store) == []
    assert (await one(store, 1))["isSynced"] is True


async def test_mark_refused_when_document_changed(store: WorkOrderStore) -> None:
    """A document changed after it was read is not marked and stays unsynced."""
    await store.put_documents([tracos_doc(1), tracos_doc(2)])
    first, second = sorted(await all_unsynced(store), key=lambda d: d.doc["number"])
    await store.put_documents([tracos_doc(1, title="Changed meanwhile")])
    marks = [SyncMark(first.key, first.version), SyncMark(second.key, second.version)]
    assert await store.mark_synced(marks, NOW) == {second.key}
    [left] = await all_unsynced(store)
    assert left.doc["title"] == "Changed meanwhile"


async def test_unsynced_at_names_only_documents_still_at_the_version_read(
    store: WorkOrderStore,
) -> None:
    """Changed since the read, or marked by someone else: not current any more."""
    await store.put_documents([tracos_doc(n) for n in (1, 2, 3)])
    first, second, third = sorted(await all_unsynced(store), key=lambda d: d.doc["number"])
    marks = [SyncMark(d.key, d.version) for d in (first, second, third)]
    await store.put_documents([tracos_doc(1, title="Changed meanwhile")])
    await store.mark_synced([marks[1]], NOW)
    assert await store.unsynced_at(marks) == {third.key}
    assert await store.unsynced_at([]) == set()


@pytest.mark.parametrize(
    ("text", "outcome"),
    [
        ("2099-01-01T00:00:00+00:00", Outcome.STALE),
        ("2020-01-01T00:00:00Z", Outcome.UPDATED),
        (
            (T0 + timedelta(hours=2)).astimezone(timezone(timedelta(hours=2))).isoformat(),
            Outcome.UNCHANGED,
        ),
    ],
    ids=["newer", "older", "same-instant-other-offset"],
)
async def test_a_stored_version_that_is_rfc3339_text_is_compared_as_its_date(
    store: WorkOrderStore, text: str, outcome: Outcome
) -> None:
    """TracOS's own tools store ``updatedAt`` as text: newer wins on the date it names."""
    await store.put_documents([tracos_doc(1, updatedAt=text, isSynced=True)])
    clashes: list[Clash] = []
    assert await store.upsert([order(1, T0 + timedelta(hours=2))], NOW, clashes) == [outcome]
    doc = await one(store, 1)
    assert doc["updatedAt"] == (T0 + timedelta(hours=2) if outcome is Outcome.UPDATED else text)
    assert clashes == []


@pytest.mark.parametrize(
    "odd", [4_102_444_800_000, None, "next tuesday"], ids=["int", "null", "text"]
)
async def test_a_stored_version_that_is_no_date_loses_and_is_reported(
    store: WorkOrderStore, odd: object
) -> None:
    """An ``updatedAt`` that names no date counts as older than any ERP version, and the
    store says so (the journal records it)."""
    await store.put_documents([tracos_doc(1, updatedAt=odd, isSynced=True)])
    clashes: list[Clash] = []
    assert await store.upsert([order(1, title="From the ERP")], NOW, clashes) == [Outcome.UPDATED]
    doc = await one(store, 1)
    assert (doc["title"], doc["isSynced"]) == ("From the ERP", True)
    assert [(c.kind, c.number, c.tracos_version, c.stored_text) for c in clashes] == [
        ("no_date", 1, None, repr(odd))
    ]


@pytest.mark.parametrize(
    ("hours", "outcome"),
    [(5, Outcome.UPDATED), (-5, Outcome.STALE)],
    ids=["erp-newer", "erp-older"],
)
async def test_an_erp_version_meeting_an_unsynced_tracos_change_is_a_conflict(
    store: WorkOrderStore, hours: int, outcome: Outcome
) -> None:
    """TracOS changed the order since it was last synced, and the ERP sends another
    version: the newer still wins, and the store reports both versions and what differs."""
    tracos_at = T0 + timedelta(hours=1)
    await store.put_documents([tracos_doc(1, title="TracOS's", updatedAt=tracos_at)])
    await store.put_documents([tracos_doc(2, updatedAt=tracos_at, isSynced=True)])
    erp_at = tracos_at + timedelta(hours=hours)
    clashes: list[Clash] = []
    sent = [order(n, erp_at, title="ERP's", status="completed") for n in (1, 2)]
    assert await store.upsert(sent, NOW, clashes) == [outcome, outcome]
    [found] = clashes
    assert (found.kind, found.number, found.outcome) == ("conflict", 1, outcome)
    assert (found.erp_version, found.tracos_version) == (erp_at, tracos_at)
    assert found.differs == ('title: "TracOS\'s" → "ERP\'s"',)
    winner = "ERP's" if outcome is Outcome.UPDATED else "TracOS's"
    assert (await one(store, 1))["title"] == winner


@pytest.mark.parametrize(
    ("hours", "outcome"),
    [(1, Outcome.UPDATED), (-1, Outcome.STALE)],
    ids=["erp-newer", "erp-older"],
)
async def test_an_erp_version_made_before_a_tracos_change_was_exported_is_a_conflict(
    store: WorkOrderStore, hours: int, outcome: Outcome
) -> None:
    """TracOS's change was exported (synced) first, and an ERP version made before that
    export (so without it) arrives after: both changed since the last sync, a conflict as
    well. Not one: an ERP version made after the export (it could have seen it), nor a
    newer one over the ERP's own version stored (a burst of its own changes)."""
    tracos_at, exported_at = T0 + timedelta(hours=1), T0 + timedelta(hours=3)
    await store.put_documents(
        [tracos_doc(n, title="TracOS's", updatedAt=tracos_at) for n in (1, 2)]
    )
    marks = [SyncMark(d.key, d.version) for d in await all_unsynced(store)]
    assert len(await store.mark_synced(marks, exported_at)) == 2
    await store.upsert([order(3, tracos_at, title="ERP's first")], exported_at)
    erp_at = tracos_at + timedelta(hours=hours)
    clashes: list[Clash] = []
    sent = [
        order(1, erp_at, title="ERP's"),
        order(2, exported_at + timedelta(hours=1), title="ERP's, after the export"),
        order(3, tracos_at + timedelta(minutes=90), title="ERP's second"),
    ]
    assert await store.upsert(sent, NOW, clashes) == [outcome, Outcome.UPDATED, Outcome.UPDATED]
    [found] = clashes
    assert (found.kind, found.number, found.outcome) == ("conflict", 1, outcome)
    assert (found.erp_version, found.tracos_version) == (erp_at, tracos_at)
    assert found.differs == (
        "status: 'completed' → 'pending'",
        'title: "TracOS\'s" → "ERP\'s"',
    )
    winner = "ERP's" if outcome is Outcome.UPDATED else "TracOS's"
    assert (await one(store, 1))["title"] == winner


@pytest.mark.parametrize(
    "erp_version",
    [datetime(1960, 1, 1, tzinfo=UTC), datetime(1969, 12, 31, 12, tzinfo=UTC)],
    ids=["1960", "the-eve-of-1970"],
)
async def test_a_document_without_updated_at_loses_even_to_a_version_before_1970(
    store: WorkOrderStore, erp_version: datetime
) -> None:
    """No ``updatedAt`` stored is older than any version, however early: every store agrees."""
    undated = {k: v for k, v in tracos_doc(1).items() if k != "updatedAt"}
    await store.put_documents([undated])
    erp = order(1, updated=erp_version, title="From the ERP")
    assert await store.upsert([erp], NOW) == [Outcome.UPDATED]
    doc = await one(store, 1)
    assert (doc["title"], doc["updatedAt"]) == ("From the ERP", erp_version)


async def test_a_mark_reports_only_what_this_call_marked(store: WorkOrderStore) -> None:
    """Two overlapping mark calls in the same millisecond: each returns only its own marks."""
    await store.put_documents([tracos_doc(n) for n in (1, 2, 3)])
    docs = {d.doc["number"]: d for d in await all_unsynced(store)}
    first = [SyncMark(docs[n].key, docs[n].version) for n in (1, 2)]
    second = [SyncMark(docs[n].key, docs[n].version) for n in (2, 3)]
    assert await store.mark_synced(first, NOW) == {docs[1].key, docs[2].key}
    assert await store.mark_synced(second, NOW) == {docs[3].key}
    assert await all_unsynced(store) == []


async def test_follow_unsynced_sweeps_then_sees_new_changes(store: WorkOrderStore) -> None:
    """The change feed starts with a sweep and then reports new unsynced documents only."""
    await store.put_documents([tracos_doc(1)])
    await store.upsert([order(9)], NOW)
    seen: list[int] = []
    got_two = anyio.Event()

    async def handle(docs: list[StoredDocument]) -> None:
        seen.extend(d.doc["number"] for d in docs)
        if 2 in seen:
            got_two.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(store.follow_unsynced, handle, 0.05, 1000)
        with anyio.fail_after(10):
            while 1 not in seen:
                await anyio.sleep(0.01)
            await store.upsert([order(10)], NOW)  # synced by inbound: no event expected
            await store.put_documents([tracos_doc(2)])
            await got_two.wait()
        tg.cancel_scope.cancel()
    assert 9 not in seen and 10 not in seen


async def test_no_status_keeps_the_stored_one(store: WorkOrderStore) -> None:
    """An upsert without a status (the status dialect's DELETED) leaves the stored status."""
    await store.upsert([order(4, status="on_hold")], NOW)
    deleted = order(4, T0 + timedelta(seconds=1), status=None, deleted=True, deletedAt=T0)
    assert await store.upsert([deleted], NOW) == [Outcome.UPDATED]
    doc = await one(store, 4)
    assert (doc["status"], doc["deleted"]) == ("on_hold", True)


async def test_no_status_on_insert_is_created(store: WorkOrderStore) -> None:
    """A new order without a status is stored as ``created``."""
    assert await store.upsert([order(6, status=None)], NOW) == [Outcome.INSERTED]
    assert (await one(store, 6))["status"] == "created"


async def test_created_is_a_storable_status(store: WorkOrderStore) -> None:
    """``created`` (the status dialect's NEW) is written like any other status."""
    await store.upsert([order(8, status="pending")], NOW)
    await store.upsert([order(8, T0 + timedelta(seconds=1), status="created")], NOW)
    assert (await one(store, 8))["status"] == "created"


async def test_documents_come_back_with_the_same_types_from_every_store(
    store: WorkOrderStore,
) -> None:
    """Ids are strings, dates aware datetimes (to the ms), odd values keep their own type."""
    await store.put_documents([tracos_doc(1), tracos_doc(2, updatedAt="2099-01-01", custom=7)])
    await store.upsert([order(3)], NOW)
    [stored] = [d for d in await all_unsynced(store) if d.doc["number"] == 1]
    await store.mark_synced([SyncMark(stored.key, stored.version)], NOW)
    docs = {d["number"]: d for d in await store.find()}
    for doc in (*docs.values(), *(d.doc for d in await all_unsynced(store))):
        assert isinstance(doc["_id"], str)
        assert isinstance(doc["createdAt"], datetime) and doc["createdAt"].utcoffset() == ZERO
    assert docs[1]["syncedAt"] == NOW and docs[1]["updatedAt"] == T0 + timedelta(hours=1)
    assert docs[3]["updatedAt"] == T0 and docs[3]["syncedAt"] == NOW
    assert (docs[2]["updatedAt"], docs[2]["custom"]) == ("2099-01-01", 7)


async def test_a_sweep_comes_in_bounded_batches_each_document_once(store: WorkOrderStore) -> None:
    """Unsynced documents stream in batches of at most the size asked; each comes once."""
    await store.put_documents([tracos_doc(n) for n in range(1, 8)])
    await store.upsert([order(20), order(21)], NOW)  # synced by inbound: never swept
    batches = [batch async for batch in store.iter_unsynced(3)]
    assert [len(batch) for batch in batches] == [3, 3, 1]
    numbers = [d.doc["number"] for batch in batches for d in batch]
    assert sorted(numbers) == list(range(1, 8))
    assert all(isinstance(d, StoredDocument) for batch in batches for d in batch)


async def test_a_batch_marked_as_it_comes_is_not_swept_again(store: WorkOrderStore) -> None:
    """What an export does: mark each batch before the next is read; every document still
    comes exactly once, and none is left unsynced."""
    await store.put_documents([tracos_doc(n) for n in range(1, 11)])
    seen: list[int] = []
    async with aclosing(store.iter_unsynced(3)) as batches:
        async for batch in batches:
            assert 0 < len(batch) <= 3
            seen.extend(d.doc["number"] for d in batch)
            marks = [SyncMark(d.key, d.version) for d in batch]
            assert await store.mark_synced(marks, NOW) == {d.key for d in batch}
    assert sorted(seen) == list(range(1, 11))
    assert await store.counts() == (10, 0)


async def test_a_sweep_left_early_leaves_the_store_usable(store: WorkOrderStore) -> None:
    """Closing a sweep after its first batch releases its cursor; the next sweep is whole."""
    await store.put_documents([tracos_doc(n) for n in range(1, 6)])
    async with aclosing(store.iter_unsynced(2)) as batches:
        async for batch in batches:
            assert len(batch) == 2
            break
    assert len(await all_unsynced(store, 2)) == 5


async def test_follow_hands_over_what_changes_during_its_sweep(store: WorkOrderStore) -> None:
    """A document changed, and one written, while the first sweep is under way still reach
    the handler at their new versions (later in the sweep, or from the change feed)."""
    await store.put_documents([tracos_doc(n) for n in range(1, 7)])
    seen: dict[int, str] = {}
    first_batch = True

    async def handle(docs: list[StoredDocument]) -> None:
        nonlocal first_batch
        assert len(docs) <= 2
        if first_batch and docs:
            first_batch = False
            await store.put_documents([tracos_doc(n, title="Changed") for n in (1, 6)])
            await store.put_documents([tracos_doc(7)])
        seen.update((d.doc["number"], d.doc["title"]) for d in docs)

    async with anyio.create_task_group() as tg:
        tg.start_soon(store.follow_unsynced, handle, 0.05, 2)
        with anyio.fail_after(10):
            while not (seen.get(1) == seen.get(6) == "Changed" and 7 in seen):
                await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    assert set(seen) == set(range(1, 8))


async def test_every_document_streams_in_number_order_once(store: WorkOrderStore) -> None:
    """``iter_documents``: all stored documents (synced or not), by number, bounded batches."""
    await store.put_documents([tracos_doc(n) for n in (5, 1, 30, 2)])
    await store.upsert([order(4), order(3)], NOW)
    batches = [batch async for batch in store.iter_documents(2)]
    assert all(0 < len(batch) <= 2 for batch in batches)
    assert [d["number"] for batch in batches for d in batch] == [1, 2, 3, 4, 5, 30]
    assert [d for batch in batches for d in batch] == await store.find()
    assert [batch async for batch in store.iter_documents(10)] == [await store.find()]


async def test_unsync_makes_synced_orders_go_out_again(store: WorkOrderStore) -> None:
    """`watcher resend`: a synced order becomes unsynced at a new version (swept, markable);
    an unsynced or unknown one is left as it is."""
    await store.put_documents([tracos_doc(1, isSynced=True), tracos_doc(2)])
    assert await store.unsync([1, 2, 3]) == 1
    unsynced = {d.doc["number"]: d for d in await all_unsynced(store)}
    assert sorted(unsynced) == [1, 2] and unsynced[1].doc["isSynced"] is False
    assert await store.mark_synced([SyncMark(unsynced[1].key, unsynced[1].version)], NOW) == {
        unsynced[1].key
    }
