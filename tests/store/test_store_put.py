"""The store contract for whole-document puts (seed, ``watcher put``): replace, newer wins,
or never replace, with what was done counted; on every store adapter."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.helpers.builders import T0, tracos_doc
from watcher.store import PutResult, Replace, WorkOrderStore

pytestmark = pytest.mark.anyio
LATER = T0 + timedelta(hours=2)


async def titles(store: WorkOrderStore) -> dict[int, Any]:
    return {doc["number"]: doc["title"] for doc in await store.find()}


async def test_always_replaces_and_counts(store: WorkOrderStore) -> None:
    """TracOS's own write replaces whatever is stored, older or not, and keeps the ``_id``."""
    await store.put_documents([tracos_doc(1)])
    [before] = await store.find([1])
    older = tracos_doc(1, title="Older", updatedAt=T0)
    assert await store.put_documents([older, tracos_doc(2)]) == PutResult(1, 1, 0)
    assert await titles(store) == {1: "Older", 2: "Example workorder #2"}
    [after] = await store.find([1])
    assert after["_id"] == before["_id"]


async def test_never_keeps_what_is_stored(store: WorkOrderStore) -> None:
    """``NEVER`` writes only new numbers; a stored one is left exactly as it was."""
    await store.put_documents([tracos_doc(1, title="Real")])
    [before] = await store.find([1])
    put = [tracos_doc(1, title="Sample", updatedAt=LATER), tracos_doc(2)]
    assert await store.put_documents(put, Replace.NEVER) == PutResult(1, 0, 1)
    assert await store.find([1]) == [before]
    assert await titles(store) == {1: "Real", 2: "Example workorder #2"}


async def test_if_newer_replaces_only_older_documents(store: WorkOrderStore) -> None:
    """Newer ``updatedAt`` wins; equal or older is skipped; new numbers are inserted."""
    await store.put_documents([tracos_doc(n, title="Stored") for n in (1, 2, 3)])
    put = [
        tracos_doc(1, title="Newer", updatedAt=LATER),
        tracos_doc(2, title="Same"),
        tracos_doc(3, title="Older", updatedAt=T0),
        tracos_doc(4, title="New"),
    ]
    assert await store.put_documents(put, Replace.IF_NEWER) == PutResult(1, 1, 2)
    assert await titles(store) == {1: "Newer", 2: "Stored", 3: "Stored", 4: "New"}


async def test_if_newer_beats_a_stored_version_that_is_not_a_date(store: WorkOrderStore) -> None:
    """A stored ``updatedAt`` that is no date is older than any; a put without one only inserts."""
    await store.put_documents([tracos_doc(1, updatedAt="yesterday"), tracos_doc(2)])
    put = [tracos_doc(1, title="Dated"), tracos_doc(2, title="Undated", updatedAt=None)]
    assert await store.put_documents(put, Replace.IF_NEWER) == PutResult(0, 1, 1)
    assert await titles(store) == {1: "Dated", 2: "Example workorder #2"}


async def test_a_given_id_is_the_stores_to_choose(store: WorkOrderStore) -> None:
    """An ``_id`` in a put document (e.g. from ``watcher show``) never replaces the stored one."""
    await store.put_documents([tracos_doc(1)])
    [before] = await store.find([1])
    await store.put_documents([tracos_doc(1, _id="not-an-id", title="Again")])
    [after] = await store.find([1])
    assert (after["_id"], after["title"]) == (before["_id"], "Again")
