"""Field drift: keys the ERP sends that the format does not know, noticed and reported.

Such keys are still ignored for storage (docs/spec.md §2.1). ``DriftWatch`` is the configured
format with one addition: at most once a second, a file (of at most ``SAMPLE_BYTES``) is
also decoded as plain JSON and its objects' keys compared with the keys the format's own
schema names; each unknown key is counted (files checked that carried it) with when it
was first and last seen and an order of such a file. At most ``MAX_KEYS`` keys are kept
(the metric's label set stays bounded). A key seen for the first time in this worker
becomes a journal event (``field_drift``, on the example order).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Final

import msgspec

from watcher.core.tracos import TracosWorkOrder
from watcher.erp import Direction, ErpFormat, FileVerdict, OutboundFile
from watcher.store import Entry, JournalEvent
from watcher.sync.stats import KeySeen, Stats

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


class DriftWatch:
    """An ``ErpFormat`` that also notes the keys it does not know (see the module)."""

    def __init__(self, inner: ErpFormat, stats: Stats) -> None:
        self.inner = inner
        self.known = known_keys(inner.schema("inbound"))
        self.stats = stats
        self._due = 0.0
        self._lock = threading.Lock()  # files are judged in worker threads
        self._new: list[tuple[str, KeySeen]] = []

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
                    self._new.append((key, drift[key]))

    def new_entries(self, worker: str | None) -> list[Entry]:
        """Journal entries for the keys first seen since the last call."""
        with self._lock:
            new, self._new = self._new, []
        return [
            Entry(
                at=seen.first,
                direction="in",
                event=JournalEvent.FIELD_DRIFT,
                number=seen.example_order,
                reason=f"the ERP sends a key the format does not know: {key!r} (ignored)",
                worker=worker,
            )
            for key, seen in new
        ]
