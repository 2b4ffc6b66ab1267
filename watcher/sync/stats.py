"""What the worker has done since start: counters, latencies, recent events and failures.

The pipelines write here; the console, the log summary, the status file and the metrics
read frozen snapshots of it. Nothing here does I/O.
"""

from __future__ import annotations

import itertools
import time
from bisect import bisect_left
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final

import msgspec

from watcher.core.tracos import Outcome
from watcher.erp import Trouble
from watcher.store import TriggerProgress
from watcher.sync.drift_ledger import KeySeen
from watcher.sync.pausing import Direction, Pauses

RECENT: Final = 10
RECENT_UNEXPORTABLE: Final = 5  # listed in snapshots and the status file; the rest counted
MARKS_REFUSED_LISTED: Final = 20  # orders whose mark the store refused, listed; the rest counted
SAMPLES: Final = 2000  # latency samples kept for the percentiles
# ... of the last five minutes only: after an outage, once traffic stops, its huge
# latencies age out instead of staying the console's p50/p95 for ever
LATENCY_WINDOW: Final = 300.0
# A store call unanswered for this long shows the store as not answering (not "connected").
STUCK_SECONDS: Final = 5.0
# The console's rates are of the last few seconds: a burst shows at its own speed at once.
RATE_WINDOW: Final = 3.0


class Count(StrEnum):
    """Every counter, named once: a typo is a type error, not a silent zero."""

    FILES_SEEN = "files_seen"
    FILES_ARCHIVED = "files_archived"  # used (a batch with rejected elements too)
    FILES_FAILED = "files_failed"
    ORDERS_INSERTED = "orders_inserted"
    ORDERS_UPDATED = "orders_updated"
    ORDERS_UNCHANGED = "orders_unchanged"
    ORDERS_STALE = "orders_stale"
    EXPORTED = "exported"
    UNEXPORTABLE = "unexportable"
    EXPORT_ERRORS = "export_errors"
    CHANGED_DURING_EXPORT = "changed_during_export"
    CONFLICTS = "conflicts"  # ERP versions that met a TracOS change not yet synced
    VERSIONS_NOT_DATES = "versions_not_dates"  # stored updatedAt naming no date, overwritten
    REPAIRED = "repaired"  # outbound files rewritten to the store's synced version
    RETRIES = "retries"


# Latency histogram buckets, seconds: fine around the service levels (p50 ≤ 50 ms, p99 ≤
# 250 ms), coarse up to the minutes an outage or a paused direction can add.
BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


@dataclass(frozen=True, slots=True)
class Histogram:
    """Every sample since start: how many fell in each bucket of ``BUCKETS`` (the last one
    past them all), not cumulative, and their sum."""

    counts: tuple[int, ...] = (0,) * (len(BUCKETS) + 1)
    total: float = 0.0

    @property
    def count(self) -> int:
        return sum(self.counts)


class Latency(deque[float]):
    """The recent samples (for the percentiles on the console: the last ``SAMPLES`` of
    the last ``window`` seconds, by ``clock``) and, in buckets, all of them since start
    (for a Prometheus histogram that aggregates across workers)."""

    def __init__(
        self, window: float = LATENCY_WINDOW, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(maxlen=SAMPLES)
        self._times: deque[float] = deque(maxlen=SAMPLES)  # when each sample came, by clock
        self._window, self._clock = window, clock
        self._counts = [0] * (len(BUCKETS) + 1)
        self._total = 0.0

    def append(self, seconds: float) -> None:
        super().append(seconds)
        self._times.append(self._clock())
        self._counts[bisect_left(BUCKETS, seconds)] += 1  # a bucket holds values <= its bound
        self._total += seconds

    def extend(self, samples: Iterable[float]) -> None:
        """Samples that came together (a batch's): the clock read once for all,
        not once a sample."""
        values = list(samples)
        super().extend(values)
        self._times.extend(itertools.repeat(self._clock(), len(values)))
        counts, total = self._counts, self._total
        for seconds in values:
            counts[bisect_left(BUCKETS, seconds)] += 1  # a bucket holds values <= its bound
            total += seconds
        self._total = total

    def histogram(self) -> Histogram:
        return Histogram(tuple(self._counts), self._total)

    def recent(self) -> list[float]:
        """The samples that came within the window (older ones no longer count)."""
        since = self._clock() - self._window
        return [seconds for seconds, came in zip(self, self._times, strict=True) if came >= since]


# The counter of each inbound outcome (``orders_inserted`` for ``inserted``, …).
ORDERS: Final = {outcome: Count(f"orders_{outcome}") for outcome in Outcome}


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
    counters: dict[Count, int]
    latency_in: tuple[float, float] | None  # p50, p95 in seconds, of the recent samples
    latency_out: tuple[float, float] | None
    waiting_files: int
    unsynced: int
    store: StoreState
    events: tuple[Event, ...]
    failures: tuple[Failure, ...]
    # the most recent few still-unexportable orders, newest first, and how many in all:
    # a snapshot stays small (and cheap to take) whatever the number of problems
    unexportable: tuple[Failure, ...]
    unexportable_total: int = 0
    stored: int | None = None  # the store's counts, as last answered (None: not yet)
    counts_at: datetime | None = None  # when the store last answered them
    problems: tuple[str, ...] = ()  # side effects that keep failing (status file, …)
    # how far behind, as last measured (never extrapolated: a file taken since must not
    # seem to wait on): seconds the oldest inbound file had waited since it landed, and
    # since the oldest unsynced order's ``updatedAt``; None when none waits
    waiting_age: float | None = None
    in_flight: int = 0  # files claimed and not yet filed away
    unsynced_age: float | None = None
    histogram_in: Histogram = Histogram()  # every sample since start, in buckets
    histogram_out: Histogram = Histogram()
    trigger: TriggerProgress = field(default_factory=TriggerProgress)  # a copy, see Stats
    paused: frozenset[Direction] = frozenset()  # directions held by ``watcher pause``
    disk: dict[str, tuple[int, int]] = field(default_factory=dict)  # folder → free, total
    drift: dict[str, KeySeen] = field(default_factory=dict)  # by key, at most ``MAX_KEYS``
    # orders the store refused to mark synced (they stay unsynced), newest first: the
    # first ``MARKS_REFUSED_LISTED``, and how many in all
    marks_refused: tuple[Failure, ...] = ()
    marks_refused_total: int = 0


@dataclass
class Stats:
    started: datetime
    counters: Counter[Count] = field(default_factory=Counter)
    latency_in: Latency = field(default_factory=Latency)
    latency_out: Latency = field(default_factory=Latency)
    waiting_files: int = 0
    unsynced: int = 0
    store: StoreState = field(default_factory=StoreState)
    events: deque[Event] = field(default_factory=lambda: deque(maxlen=RECENT))
    failures: deque[Failure] = field(default_factory=lambda: deque(maxlen=RECENT))
    unexportable: dict[str, Failure] = field(default_factory=dict)  # by document key
    stored: int | None = None
    counts_at: datetime | None = None
    problems: dict[str, str] = field(default_factory=dict)  # what → why it fails
    drift: dict[str, KeySeen] = field(default_factory=dict)  # unknown ERP keys (sync.drift)
    asked_since: datetime | None = None  # a store call for the counts is under way since
    calls: dict[object, datetime] = field(default_factory=dict)  # the pipelines' calls, since
    waiting_age: float | None = None
    in_flight: int = 0
    unsynced_age: float | None = None
    # the store's outbound trigger writes here (the worker shares its store's object)
    trigger: TriggerProgress = field(default_factory=TriggerProgress)
    pauses: Pauses = field(default_factory=Pauses)
    disk: dict[str, tuple[int, int]] = field(default_factory=dict)  # folder → free, total
    # by document key, until the order is marked (sync.bookkeeping): the one list the
    # console, the status file, `watcher status` and /status show
    marks_refused: dict[str, Failure] = field(default_factory=dict)

    def problem(self, what: str, reason: str) -> bool:
        """A side effect (status file, …) failed; True when it is news."""
        new = what not in self.problems
        self.problems[what] = reason
        return new

    def solved(self, what: str) -> bool:
        """It worked again; True when it had been failing."""
        return self.problems.pop(what, None) is not None

    def count(self, name: Count, amount: int = 1) -> None:
        self.counters[name] += amount

    def trouble(self, direction: str, counter: Count | None = None) -> Trouble:
        """A reporter of trouble in one direction (also counted, if ``counter``)."""

        def report(subject: str, reason: str) -> None:
            self.failure(datetime.now(UTC), direction, subject, reason)
            if counter is not None:
                self.count(counter)

        return report

    def event(self, time: datetime, direction: str, subject: str, outcome: str) -> None:
        self.events.append(Event(time, direction, subject, outcome))

    def failure(self, time: datetime, direction: str, subject: str, reason: str) -> None:
        self.failures.append(Failure(time, direction, subject, reason))

    @contextmanager
    def asking(self) -> Iterator[None]:
        """A store call under way for the block: one hanging for long shows (``store_state``)."""
        call = object()
        self.calls[call] = datetime.now(UTC)
        try:
            yield
        finally:
            del self.calls[call]

    def store_state(self, now: datetime) -> StoreState:
        """The store as the view should tell it: a call hanging for long is not "connected"."""
        asked = [when for when in (self.asked_since, *self.calls.values()) if when is not None]
        since = min(asked, default=None)
        if self.store.connected and since is not None:
            waited = (now - since).total_seconds()
            if waited > STUCK_SECONDS:
                return StoreState(False, f"the store has not answered for {waited:.0f} s")
        return self.store

    def snapshot(self, now: datetime) -> Snapshot:
        recent = self.unexportable.values()
        return Snapshot(
            started=self.started,
            now=now,
            counters=dict(self.counters),
            latency_in=percentiles(self.latency_in.recent()),
            latency_out=percentiles(self.latency_out.recent()),
            waiting_files=self.waiting_files,
            unsynced=self.unsynced,
            store=self.store_state(now),
            events=tuple(self.events),
            failures=tuple(self.failures),
            unexportable=tuple(itertools.islice(reversed(recent), RECENT_UNEXPORTABLE)),
            unexportable_total=len(self.unexportable),
            stored=self.stored,
            counts_at=self.counts_at,
            problems=tuple(self.problems.values()),
            waiting_age=self.waiting_age,
            in_flight=self.in_flight,
            unsynced_age=self.unsynced_age,
            histogram_in=self.latency_in.histogram(),
            histogram_out=self.latency_out.histogram(),
            trigger=msgspec.structs.replace(self.trigger),
            paused=self.pauses.held,
            disk=self.disk,
            drift=dict(self.drift),
            marks_refused=tuple(
                itertools.islice(reversed(self.marks_refused.values()), MARKS_REFUSED_LISTED)
            ),
            marks_refused_total=len(self.marks_refused),
        )


def rates(previous: Snapshot | None, current: Snapshot) -> dict[str, float]:
    """Per-second rate of each counter between two snapshots (empty without a previous)."""
    if previous is None:
        return {}
    seconds = (current.now - previous.now).total_seconds()
    if seconds <= 0:
        return {}
    before = previous.counters
    return {k: max(0, v - before.get(k, 0)) / seconds for k, v in current.counters.items()}


@dataclass
class RecentRates:
    """The counters' rates over the last ``window`` seconds of snapshots, by the snapshots'
    own clock: from the newest snapshot at least that old (or the oldest there is)."""

    window: float = RATE_WINDOW
    _kept: deque[Snapshot] = field(default_factory=deque)

    def add(self, snapshot: Snapshot) -> dict[str, float]:
        """Keep ``snapshot``; the rates up to it."""
        kept = self._kept
        kept.append(snapshot)
        while len(kept) > 2 and (snapshot.now - kept[1].now).total_seconds() >= self.window:
            kept.popleft()
        return rates(kept[0], snapshot) if len(kept) > 1 else {}


def percentiles(samples: deque[float] | list[float]) -> tuple[float, float] | None:
    """p50 and p95 of the samples (nearest rank), or None when there are none."""
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, len(ordered) * 95 // 100)]
