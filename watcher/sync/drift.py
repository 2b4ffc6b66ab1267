"""Field drift: keys the ERP sends that the format does not know, noticed and reported.

Such keys are still ignored for storage (docs/spec.md §2.1). ``DriftWatch`` is the configured
format with one addition: at most once a second, a file (of at most ``SAMPLE_BYTES``) is
also decoded as plain JSON and its objects' keys compared with the keys the format's own
schema names; each unknown key is counted (files checked that carried it) with when it
was first and last seen and an order and the name of such a file. At most ``MAX_KEYS``
keys are kept (the metric's label set stays bounded). ``DriftLedger`` (``drift_ledger``)
keeps them across restarts in the state folder (``field-drift.json``): a key seen for the
first time in the product's life becomes a journal event (``field_drift``, on the example
order), once; a restart, or another worker on the same state folder, does not announce it again, and
``watcher status`` reads first and last seen and the example from the ledger.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import msgspec

from watcher.core.tracos import TracosWorkOrder
from watcher.erp import Direction, ErpFormat, FileVerdict, OutboundFile, Taken
from watcher.store import Entry, JournalEvent
from watcher.sync.drift_ledger import DriftLedger, KeySeen
from watcher.sync.stats import Stats

MAX_KEYS: Final = 20
SAMPLE_SECONDS: Final = 1.0
SAMPLE_BYTES: Final = 1 << 20  # a large batch file is never decoded twice


def known_keys(schema: dict[str, Any]) -> frozenset[str]:
    """Every property any object of the format's inbound schema names."""
    return frozenset(key for shape in _objects(schema) for key in shape.get("properties", {}))


def _objects(node: object) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if node.get("type") == "object":
            yield node
        for value in node.values():
            yield from _objects(value)
    elif isinstance(node, list):
        for value in node:
            yield from _objects(value)


def unknown_keys(data: bytes, known: frozenset[str]) -> set[str]:
    """The keys of the file's object (or its array's objects) that ``known`` lacks."""
    try:
        decoded = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return set()
    objects = decoded if isinstance(decoded, list) else [decoded]
    return {key for item in objects if isinstance(item, dict) for key in item} - known


def merged(kept: KeySeen | None, seen: KeySeen, counted: int) -> KeySeen:
    """The ledger's entry for a key after this worker saw it ``counted`` more times."""
    if kept is None:
        return msgspec.structs.replace(seen, files=counted)
    return KeySeen(
        kept.files + counted,
        min(kept.first, seen.first),
        max(kept.last, seen.last),
        kept.example_order if kept.example_order is not None else seen.example_order,
        kept.example_file or seen.example_file,
    )


class DriftWatch:
    """An ``ErpFormat`` that also notes the keys it does not know (see the module)."""

    def __init__(self, inner: ErpFormat, stats: Stats, ledger: DriftLedger | None = None) -> None:
        self.inner = inner
        self.known = known_keys(inner.schema("inbound"))
        self.stats = stats
        self.ledger = ledger or DriftLedger(None)
        self._due = 0.0
        self._lock = threading.Lock()  # files are judged in worker threads
        self._new: list[str] = []  # keys first seen by this worker, not yet in the ledger
        self._unnamed: dict[int, list[str]] = {}  # id of a verdict → keys its file showed
        self._counted: dict[str, int] = {}  # files per key already added to the ledger

    @property
    def name(self) -> str:
        return self.inner.name

    def judge(self, data: bytes) -> FileVerdict:
        verdict = self.inner.judge(data)
        if len(data) <= SAMPLE_BYTES and time.monotonic() >= self._due:
            self._due = time.monotonic() + SAMPLE_SECONDS
            self._note(unknown_keys(data, self.known), verdict)
        return verdict

    def render(self, order: TracosWorkOrder) -> OutboundFile:
        return self.inner.render(order)

    def schema(self, direction: Direction) -> dict[str, Any]:
        return self.inner.schema(direction)

    def _note(self, keys: set[str], verdict: FileVerdict) -> None:
        if not keys:
            return
        now = datetime.now(UTC)
        example = verdict.orders[0].number if verdict.orders else None
        with self._lock:
            drift = self.stats.drift
            for key in sorted(keys):
                seen = drift.get(key)
                if seen is not None:
                    drift[key] = msgspec.structs.replace(seen, files=seen.files + 1, last=now)
                elif len(drift) < MAX_KEYS:
                    drift[key] = KeySeen(1, now, now, example)
                    self._new.append(key)
                    self._unnamed.setdefault(id(verdict), []).append(key)

    def name_examples(self, taken: Sequence[Taken]) -> None:
        """The file names of the examples noted while these files were judged."""
        with self._lock:
            if not self._unnamed:
                return
            for item in taken:
                for key in self._unnamed.pop(id(item.verdict), []):
                    seen = self.stats.drift[key]
                    self.stats.drift[key] = msgspec.structs.replace(seen, example_file=item.shown)
            self._unnamed.clear()  # ids of verdicts gone may be reused

    def new_entries(self, worker: str | None) -> list[Entry]:
        """Keep what this worker saw in the ledger; journal entries for the keys that are
        new to the ledger (blocking: a small file read and written)."""
        with self._lock:
            new, self._new = self._new, []
            seen_now = dict(self.stats.drift)
        if not seen_now:
            return []
        kept = self.ledger.read()
        first_ever = [key for key in new if key not in kept]
        changed = False
        for key, seen in seen_now.items():
            counted = seen.files - self._counted.get(key, 0)
            named = key in kept and kept[key].example_file is None and seen.example_file
            if counted or key not in kept or named:
                kept[key] = merged(kept.get(key), seen, counted)
                self._counted[key] = seen.files
                changed = True
        if changed:
            self.ledger.write(kept)
        with self._lock:  # status shows when the key was first seen, in any run
            for key in seen_now:
                if (now := self.stats.drift.get(key)) is not None:
                    self.stats.drift[key] = msgspec.structs.replace(now, first=kept[key].first)
        return [_entry(key, kept[key], worker) for key in first_ever]


def _entry(key: str, seen: KeySeen, worker: str | None) -> Entry:
    return Entry(
        at=seen.first,
        direction="in",
        event=JournalEvent.FIELD_DRIFT,
        number=seen.example_order,
        file=seen.example_file,
        reason=f"the ERP sends a key the format does not know: {key!r} (ignored)",
        worker=worker,
    )
