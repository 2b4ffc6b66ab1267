"""The store port: what inbound and outbound need from wherever TracOS work orders live.

Two adapters pass one contract suite: ``SqliteStore`` (embedded) and ``MongoStore``.
The newer-wins rules live in ``watcher.core.tracos``; the document builders here make
both adapters write the same fields. Whatever may be large (every unsynced document,
every document) comes from a cursor in batches, never as one list: a first start beside
a million unsynced orders holds one batch of them at a time.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Hashable, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, Final, Protocol

import msgspec

from watcher.core.tracos import ERP_VERSION, Clash, OrderUpsert, Outcome, normalise_date

Document = dict[str, Any]


# Structs, not dataclasses: a sweep makes one per document, and each dataclass costs
# every command that imports the port about 1.5 ms to create (docs/performance.md, start-up).
class StoredDocument(msgspec.Struct, frozen=True):
    """A document as read for export: ``version`` is what a conditional mark checks."""

    key: str
    doc: Document
    version: Hashable
    changed_at: datetime | None = None


class SyncMark(msgspec.Struct, frozen=True):
    """Mark ``key`` synced only if it still has ``version``."""

    key: str
    version: Hashable


Handler = Callable[[list[StoredDocument]], Awaitable[None]]


class TriggerProgress(msgspec.Struct):
    """What a store's outbound trigger (``follow_unsynced``) has done, for the metrics: its
    sweeps, and when it last showed life (a change event, a change stream's resume point
    moving on, a poll or a look at the embedded store's version), as Unix time."""

    sweeps: int = 0
    swept_orders: int = 0
    sweep_seconds: float = 0.0  # all sweeps together
    last_sweep_seconds: float = 0.0
    progressed_at: float | None = None

    def swept(self, seconds: float, orders: int) -> None:
        self.sweeps += 1
        self.swept_orders += orders
        self.sweep_seconds += seconds
        self.last_sweep_seconds = seconds

    def progressed(self, now: float) -> None:
        self.progressed_at = now


class Replace(StrEnum):
    """What ``put_documents`` does to a number that is already stored."""

    ALWAYS = "always"  # TracOS's own write: the stored document is replaced
    IF_NEWER = "if_newer"  # only by a newer ``updatedAt`` (a stored non-date counts older)
    NEVER = "never"  # kept as it is: only numbers not stored yet are written


class PutResult(msgspec.Struct, frozen=True):
    """What ``put_documents`` did: new numbers, replaced documents, documents left alone."""

    inserted: int = 0
    replaced: int = 0
    skipped: int = 0


class WorkOrderStore(Protocol):
    """The port. Transient trouble raises ``StoreUnavailable``."""

    @property
    def mode(self) -> str:
        """How changes are noticed: ``embedded``, ``MongoDB change stream``, ``MongoDB polling``."""
        ...

    async def open(self, create: bool = True) -> None:
        """Connect, check the store answers, create the schema or unique index.

        ``create=False`` (inspection commands) creates nothing: a store that is not there
        raises ``StoreMissing``, saying how to point at the right one.
        """

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the store answers now."""

    async def upsert(
        self, orders: Sequence[OrderUpsert], now: datetime, clashes: list[Clash] | None = None
    ) -> list[Outcome]:
        """Newer wins, per order, in one bulk write; outcomes in the order given. A stored
        ``updatedAt`` that is RFC 3339 text counts as the date it names, anything else that
        is no date as older than any. ``clashes`` gets what an operator must hear of: TracOS
        changes not yet synced that met an ERP version, and versions that were no date."""
        ...

    async def put_documents(
        self, docs: Sequence[Document], replace: Replace = Replace.ALWAYS
    ) -> PutResult:
        """Write whole TracOS documents as TracOS itself would (seed, ``put``, tests), keyed
        by number (each number once per call); a replaced document keeps its ``_id``.

        ``IF_NEWER`` with a document whose ``updatedAt`` is not a date writes it only where
        its number is not stored yet.
        """
        ...

    async def find(self, numbers: Sequence[int] = ()) -> list[Document]:
        """Stored documents (all, or these numbers), ordered by number, as one list: for a
        few numbers (and tests); ``iter_documents`` reads them all."""
        ...

    def iter_documents(self, batch_size: int) -> AsyncGenerator[list[Document], None]:
        """Every stored document, ordered by number, in batches of at most ``batch_size``,
        each read when the one before has been taken. Each number comes once; writes made
        meanwhile may or may not be seen (each batch is as stored when it is read)."""
        ...

    def iter_unsynced(self, batch_size: int) -> AsyncGenerator[list[StoredDocument], None]:
        """One sweep: every document whose ``isSynced`` is not true (absent counts as
        unsynced), from a cursor, in batches of at most ``batch_size``.

        A document unsynced from the start of the sweep to its end, and unchanged, comes
        exactly once; one marked synced meanwhile does not come again. One written during
        the sweep may come in it (at its new version) or not: ``follow_unsynced`` hands it
        over either way. Close the generator (``contextlib.aclosing``) when leaving early.
        """
        ...

    async def unsynced_at(self, marks: Sequence[SyncMark]) -> set[str]:
        """The keys whose document is still unsynced at the version given (an export checks
        this while it holds the file's claim: an older read must never overwrite a newer file)."""
        ...

    async def mark_synced(
        self, marks: Sequence[SyncMark], now: datetime, refused: dict[str, str] | None = None
    ) -> set[str]:
        """Set ``isSynced``/``syncedAt`` where the version still matches; the keys marked.

        ``refused`` gets, by key, the reason of each mark the store refused for good for
        that one document (a MongoDB validator): it stays unsynced. The embedded store's
        schema is the worker's own, so it never refuses one."""
        ...

    async def unsync(self, numbers: Sequence[int]) -> int:
        """Mark these orders unsynced (``watcher resend``): the worker exports them again,
        as any TracOS change. The number of orders that were synced."""
        ...

    async def counts(self) -> tuple[int, int]:
        """(stored, unsynced)."""
        ...

    async def oldest_unsynced(self) -> datetime | None:
        """The oldest ``updatedAt`` of the unsynced documents whose ``updatedAt`` is a date
        (None when there is none): how long the oldest waiting change has waited. Asked
        every two seconds, so an index answers it, never a scan."""
        ...

    # sweeps and signs of life of ``follow_unsynced`` (the worker's stats share the object)
    trigger: TriggerProgress

    async def follow_unsynced(self, handle: Handler, poll_seconds: float, batch_size: int) -> None:
        """Call ``handle`` with a sweep of all unsynced documents (batch by batch, at most
        ``batch_size`` each), then with each new batch.

        Runs until cancelled; after any reconnect it sweeps again, so nothing is missed.
        """


UPSERT_DATES: Final = ("createdAt", "updatedAt", "syncedAt", "deletedAt", ERP_VERSION)  # it sets


def upsert_fields(order: OrderUpsert, now: datetime) -> Document:
    """The fields an inbound write sets; ``description`` is only set on insert, and a
    ``status`` of None leaves the stored one (see ``insert_fields``)."""
    fields: Document = {
        "number": order.number,
        "status": order.status,
        "title": order.title,
        "createdAt": order.createdAt,
        "updatedAt": order.updatedAt,
        "deleted": order.deleted,
        "isSynced": True,  # the ERP already has this version: never echo it back
        "syncedAt": normalise_date(now),
        ERP_VERSION: order.updatedAt,  # the ERP's own version: its outbound file withdrawn
    }
    if order.status is None:
        del fields["status"]  # (a literal, then this: faster than building it up)
    if order.deletedAt is not None:
        fields["deletedAt"] = order.deletedAt
    return fields


def insert_fields(order: OrderUpsert) -> Document:
    """The fields only an insert sets: the description, and ``created`` for no status."""
    if order.status is None:
        return {"description": order.description, "status": "created"}
    return {"description": order.description}


def apply_upsert(existing: Document | None, order: OrderUpsert, now: datetime) -> Document:
    """The document after an inbound write (for stores that rewrite whole documents)."""
    doc = dict(existing) if existing else insert_fields(order)
    doc.pop("deletedAt", None)
    doc.update(upsert_fields(order, now))
    return doc


def replaces(replace: Replace, stored: datetime | None, incoming: object) -> bool:
    """Whether a put replaces a stored document whose ``updatedAt`` is ``stored`` (None when
    it is not a date: older than any) with one whose ``updatedAt`` is ``incoming``."""
    if replace is Replace.ALWAYS:
        return True
    if replace is Replace.NEVER or not isinstance(incoming, datetime):
        return False
    return stored is None or normalise_date(incoming) > stored


def mark_fields(now: datetime) -> Document:
    return {"isSynced": True, "syncedAt": normalise_date(now)}
