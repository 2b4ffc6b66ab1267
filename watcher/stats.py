"""What the worker has done since start: counters, latencies, recent events and failures.

The pipelines write here; the console, the log summary, the status file and the metrics
read frozen snapshots of it. Nothing here does I/O.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

RECENT: Final = 10
SAMPLES: Final = 2000  # latency samples kept for the percentiles


@dataclass(frozen=True, slots=True)
class Event:
    time: datetime
    direction: str  # "in" or "out"
    subject: str  # order number or file name
    outcome: str


@dataclass(frozen=True, slots=True)
class Failure:
    time: datetime
    direction: str
    subject: str
    reason: str


@dataclass(frozen=True, slots=True)
class StoreState:
    connected: bool = True
    error: str = ""
    next_attempt: datetime | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A frozen copy of the stats, for rendering and reporting."""

    started: datetime
    now: datetime
    counters: dict[str, int]
    latency_in: tuple[float, float] | None  # p50, p95 in seconds
    latency_out: tuple[float, float] | None
    waiting_files: int
    unsynced: int
    store: StoreState
    events: tuple[Event, ...]
    failures: tuple[Failure, ...]
    unexportable: dict[str, Failure]


@dataclass
class Stats:
    started: datetime
    counters: Counter[str] = field(default_factory=Counter)
    latency_in: deque[float] = field(default_factory=lambda: deque(maxlen=SAMPLES))
    latency_out: deque[float] = field(default_factory=lambda: deque(maxlen=SAMPLES))
    waiting_files: int = 0
    unsynced: int = 0
    store: StoreState = field(default_factory=StoreState)
    events: deque[Event] = field(default_factory=lambda: deque(maxlen=RECENT))
    failures: deque[Failure] = field(default_factory=lambda: deque(maxlen=RECENT))
    unexportable: dict[str, Failure] = field(default_factory=dict)

    def count(self, name: str, amount: int = 1) -> None:
        self.counters[name] += amount

    def event(self, time: datetime, direction: str, subject: str, outcome: str) -> None:
        self.events.append(Event(time, direction, subject, outcome))

    def failure(self, time: datetime, direction: str, subject: str, reason: str) -> None:
        self.failures.append(Failure(time, direction, subject, reason))

    def snapshot(self, now: datetime) -> Snapshot:
        return Snapshot(
            started=self.started,
            now=now,
            counters=dict(self.counters),
            latency_in=percentiles(self.latency_in),
            latency_out=percentiles(self.latency_out),
            waiting_files=self.waiting_files,
            unsynced=self.unsynced,
            store=self.store,
            events=tuple(self.events),
            failures=tuple(self.failures),
            unexportable=dict(self.unexportable),
        )


def percentiles(samples: deque[float] | list[float]) -> tuple[float, float] | None:
    """p50 and p95 of the samples (nearest rank), or None when there are none."""
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, len(ordered) * 95 // 100)]
