"""The operator console: a pure render of a stats snapshot, the rich ``Live`` that shows it,
and the plain summary line logged instead when stdout is not a terminal."""

from __future__ import annotations

import logging
import math
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final, Self, TextIO

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.live import Live
from rich.table import Table
from rich.text import Text

from watcher.core.printable import printable
from watcher.core.settings import Settings
from watcher.sync import ORDERS, Count, Failure, RecentRates, Snapshot

WIDE: Final = 120  # from this width, events and failures sit side by side
FIXED_LINES: Final = 10  # header, folders, store, counters (title + 4 rows), latency, lag
STALE_COUNTS_SECONDS: Final = 5.0  # from this age, the store line says how old the counts are
# the live console's share of the worker's time at most, drawing frames; but a frame
# that took long (a terminal slow to take its output) leaves the console still no longer
FRAME_SHARE: Final = 0.03
LONGEST_GAP: Final = 2.0  # seconds
# log lines queued between two redraws of the live console; older ones are counted, not shown
KEEP_LINES: Final = 1000
STYLES: Final = {"unchanged": "dim", "stale": "yellow", "failed": "red"}  # others: green
# the counters grid: (label, counter) per cell; "@" marks a queue depth, which has no rate
COUNTERS: Final = (
    (
        ("files", Count.FILES_SEEN),
        ("inserted", Count.ORDERS_INSERTED),
        ("exported", Count.EXPORTED),
    ),
    (
        ("failed", Count.FILES_FAILED),
        ("updated", Count.ORDERS_UPDATED),
        ("unexportable", Count.UNEXPORTABLE),
    ),
    (("waiting", "@waiting"), ("unchanged", Count.ORDERS_UNCHANGED), ("unsynced", "@unsynced")),
    (("retries", Count.RETRIES), ("stale", Count.ORDERS_STALE), ("errors", Count.EXPORT_ERRORS)),
)


@dataclass(frozen=True, slots=True)
class Header:
    """What the console says about this worker; ``store`` is already password-masked."""

    version: str
    store: str
    mode: str
    inbound: Path
    outbound: Path
    archive: Path
    failed: Path

    @classmethod
    def from_settings(cls, settings: Settings, version: str, mode: str) -> Header:
        folders = (settings.inbound_dir, settings.outbound_dir, settings.archive_dir)
        return cls(version, settings.store_label, mode, *folders, settings.failed_dir)


def render(
    snapshot: Snapshot, header: Header, rates: Mapping[str, float] | None = None
) -> RenderableType:
    """The whole console for one snapshot; it fits the console's width and height."""
    return Dashboard(snapshot, header, dict(rates or {}))


@dataclass(frozen=True, slots=True)
class Dashboard:
    """The console's layout, chosen at render time from the console's width and height."""

    snapshot: Snapshot
    header: Header
    rates: dict[str, float]

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width, budget = options.max_width, options.size.height - FIXED_LINES
        budget -= len(self.snapshot.problems) + bool(self.snapshot.paused)
        yield from _top(self.snapshot, self.header, width)
        yield from _problems(self.snapshot)
        yield _counters(self.snapshot, self.rates)
        yield _latencies(self.snapshot)
        yield _lag(self.snapshot)
        events, failures = len(self.snapshot.events), len(_failures(self.snapshot))
        if width >= WIDE:
            rows = max(0, budget - 1)
            grid = Table.grid(expand=True, padding=(0, 2))
            grid.add_column()
            grid.add_column(ratio=1)
            grid.add_row(_events(self.snapshot, rows), _failure_table(self.snapshot, rows))
            yield grid
            return
        shown_failures = min(failures, max((budget - 2) // 3, budget - 2 - events))
        yield _events(self.snapshot, max(0, budget - 2 - shown_failures))
        yield _failure_table(self.snapshot, shown_failures)


def _top(snapshot: Snapshot, header: Header, width: int) -> Iterator[Text]:
    uptime = _duration(snapshot.now - snapshot.started)
    title = f"watcher {header.version} · up {uptime} · {header.mode} · {header.store}"
    yield Text(title, style="bold", no_wrap=True, overflow="ellipsis")
    folders = (
        f"in {header.inbound} · out {header.outbound} · archive {header.archive}"
        f" · failed {header.failed}"
    )
    yield Text(printable(folders), style="dim", no_wrap=True, overflow="ellipsis")
    yield _store_line(snapshot, width)


def _store_line(snapshot: Snapshot, width: int) -> Text:
    store, age = snapshot.store, _counts_age(snapshot)
    if store.connected:
        return Text.assemble("store ", ("connected", "bold green"), age, no_wrap=True)
    if not store.error and store.next_attempt is None:
        return Text("store connecting…", style="bold yellow", no_wrap=True)
    if store.next_attempt is None:  # a call hanging, not failing: nothing is retried yet
        prefix, suffix = "store NOT ANSWERING: ", age
    else:
        wait = (store.next_attempt - snapshot.now).total_seconds()
        prefix, suffix = "store RETRYING: ", f" — next attempt in {max(0, math.ceil(wait))} s"
    error, room = _flat(store.error) or "unavailable", width - len(prefix + suffix)
    if len(error) > room:  # shorten the error, never the time of the next attempt
        error = error[: max(0, room - 1)] + "…"
    return Text(prefix + error + suffix, style="bold red", no_wrap=True, overflow="ellipsis")


def _counts_age(snapshot: Snapshot) -> str:
    """How old the store's counts are, once that is worth saying (they refresh every 2 s)."""
    if snapshot.counts_at is None:
        return ""
    age = (snapshot.now - snapshot.counts_at).total_seconds()
    return f" · counts {age:.0f} s old" if age >= STALE_COUNTS_SECONDS else ""


def _problems(snapshot: Snapshot) -> Iterator[Text]:
    if snapshot.paused:
        held = " and ".join(sorted(snapshot.paused))
        line = f"PAUSED: {held} takes no new work until `watcher resume`"
        yield Text(line, style="bold yellow", no_wrap=True, overflow="ellipsis")
    for problem in snapshot.problems:
        yield Text(
            f"problem: {_flat(problem)}", style="bold red", no_wrap=True, overflow="ellipsis"
        )


def _counters(snapshot: Snapshot, rates: Mapping[str, float]) -> Table:
    values: dict[str, int] = {str(k): v for k, v in snapshot.counters.items()}
    values["@waiting"] = snapshot.waiting_files
    values["@unsynced"] = snapshot.unsynced
    table = Table(box=None, padding=(0, 1, 0, 0), header_style="bold")
    for title in ("inbound", "orders", "outbound"):
        table.add_column(title, style="dim", no_wrap=True)
        table.add_column("", justify="right", style="bold", no_wrap=True)
        table.add_column("/s", justify="right", style="dim", no_wrap=True)
    for row in COUNTERS:
        cells = [(label, f"{values.get(key, 0):,}", _rate(rates.get(key))) for label, key in row]
        table.add_row(*(text for cell in cells for text in cell))
    return table


def _latencies(snapshot: Snapshot) -> Text:
    inbound, outbound = _pair(snapshot.latency_in), _pair(snapshot.latency_out)
    line = f"latency p50/p95  file → committed {inbound}  ·  change → file {outbound}"
    return Text(line, no_wrap=True, overflow="ellipsis")


def _lag(snapshot: Snapshot) -> Text:
    """How far behind: the oldest file waiting (since it landed), the oldest unsynced
    order (since its ``updatedAt``), and the files claimed but not yet filed away."""
    waiting, unsynced = _age(snapshot.waiting_age), _age(snapshot.unsynced_age)
    line = (
        f"lag  oldest file waiting {waiting} · oldest unsynced {unsynced}"
        f" · in flight {snapshot.in_flight:,}"
    )
    return Text(line, no_wrap=True, overflow="ellipsis")


def _events(snapshot: Snapshot, rows: int) -> RenderableType:
    if not snapshot.events:
        return Text("recent events: none yet", style="dim")
    table = _listing("recent events (UTC)", expand=False)
    table.add_column(no_wrap=True, overflow="ellipsis", max_width=28)
    table.add_column(no_wrap=True, min_width=9)
    for event in list(reversed(snapshot.events))[:rows]:
        style = STYLES.get(event.outcome, "green")
        subject, outcome = Text(printable(event.subject)), Text(event.outcome, style=style)
        table.add_row(f"{event.time:%H:%M:%S}", event.direction, subject, outcome)
    return table if rows else Text(f"recent events: {len(snapshot.events)} (no room)", "dim")


def _failure_table(snapshot: Snapshot, rows: int) -> RenderableType:
    failures = _failures(snapshot)
    total, refused = snapshot.unexportable_total, snapshot.marks_refused_total
    stuck = f", {total:,} unexportable" if total else ""
    stuck += f", {refused:,} marks refused" if refused else ""
    if not failures:
        return Text("recent failures: none", style="dim")
    table = _listing(f"recent failures{stuck}", expand=True)
    table.add_column(no_wrap=True, overflow="ellipsis", max_width=20, style="bold")
    table.add_column(no_wrap=True, overflow="ellipsis", ratio=1, min_width=16, style="red")
    for failure in failures[:rows]:
        reason = _flat(failure.reason)
        table.add_row(
            f"{failure.time:%H:%M:%S}",
            failure.direction,
            Text(printable(failure.subject)),
            Text(reason),
        )
    return table if rows else Text(f"recent failures: {len(failures)}{stuck}", "bold red")


def _listing(title: str, expand: bool) -> Table:
    """A headerless table whose first columns are a time and a direction."""
    table = Table(title=title, title_style="bold", title_justify="left", expand=expand)
    table.box, table.padding, table.show_header = None, (0, 1, 0, 0), False
    table.add_column(no_wrap=True, style="dim", min_width=8)
    table.add_column(no_wrap=True, min_width=3)
    return table


def _failures(snapshot: Snapshot) -> list[Failure]:
    """Recent failures plus the most recent still-unexportable orders and orders whose mark
    the store refused, newest first."""
    merged = set(snapshot.failures) | set(snapshot.unexportable) | set(snapshot.marks_refused)
    return sorted(merged, key=lambda failure: failure.time, reverse=True)


def summary_line(snapshot: Snapshot) -> str:
    """One plain line for the log: counts since start, queues and the store's state."""
    c = snapshot.counters
    orders = " / ".join(f"{c.get(counter, 0)} {o}" for o, counter in ORDERS.items())
    store = "connected" if snapshot.store.connected else f"RETRYING: {_flat(snapshot.store.error)}"
    return (
        f"summary: {c.get(Count.FILES_SEEN, 0)} files ({c.get(Count.FILES_FAILED, 0)} failed),"
        f" orders {orders}, {c.get(Count.EXPORTED, 0)} exported,"
        f" {c.get(Count.UNEXPORTABLE, 0)} unexportable, {c.get(Count.RETRIES, 0)} retries,"
        f" {snapshot.waiting_files} files waiting, {snapshot.unsynced} unsynced,"
        f" store {store}; latency p50/p95 in {_pair(snapshot.latency_in)},"
        f" out {_pair(snapshot.latency_out)}"
    )


def is_interactive(stream: TextIO, env: Mapping[str, str] | None = None) -> bool:
    """True when ``stream`` is a terminal that understands escape codes."""
    term = (os.environ if env is None else env).get("TERM", "")
    try:
        return stream.isatty() and term != "dumb"
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class LiveConsole:
    """The live console: ``await console(snapshot)`` redraws it (inside ``with console:``)."""

    def __init__(
        self,
        header: Header | Callable[[], Header],
        console: Console | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        """``header`` may be a callable, so a store mode that changes shows up; ``clock``
        times the frames (their cost sets how soon the next may be drawn)."""
        self.console = console or Console()
        self._header = header
        self._rates = RecentRates()
        self._shown: object = None
        self._clock = clock
        self._due = -math.inf  # no frame before this time (``clock``'s seconds)
        # no refresh thread: we redraw on each snapshot; screen, transient stay off
        self._live = Live(Text("starting…", style="dim"), console=self.console, auto_refresh=False)
        self._lines = LinesAbove(self._live)

    async def __call__(self, snapshot: Snapshot) -> None:
        """Redraw when something visible changed (at most once a second while idle), with
        the log lines since the last call above it: at most two frames a call (the lines'
        and the new one), however many lines.

        A frame is drawn in the worker's own thread, so frames are spaced to take at most
        ``FRAME_SHARE`` of its time: a big console (13 ms a frame at 120x40) is drawn about
        twice a second rather than four times; a call before then is skipped, and its log
        lines wait for the next frame."""
        start = self._clock()
        if start < self._due:
            return
        self._draw(snapshot)
        self._due = start + min((self._clock() - start) / FRAME_SHARE, LONGEST_GAP)

    def _draw(self, snapshot: Snapshot) -> None:
        header = self._header() if callable(self._header) else self._header
        rates = self._rates.add(snapshot)
        visible = replace(snapshot, now=snapshot.started)  # all but the clock
        key = (header, int((snapshot.now - snapshot.started).total_seconds()), visible)
        lines = self._lines.take()
        with self.console:  # one write to the terminal for the lines and the frame
            if lines is not None:  # printed above the console, which is drawn below them
                self.console.print(lines, soft_wrap=True)
            if key != self._shown:
                self._shown = key
                self._live.update(render(snapshot, header, rates), refresh=True)

    def log_handler(self, level: int = logging.WARNING) -> logging.Handler:
        """The handler whose records are printed above the live console (not over it), in
        one piece at each redraw."""
        self._lines.setLevel(level)
        return self._lines

    def __enter__(self) -> Self:
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._lines.flush()
        self._live.stop()


class LinesAbove(logging.Handler):
    """Log records kept as lines for the live console's next redraw.

    While the console is live, each print above it redraws the whole console (all its
    tables) under the printed text: a line per bad file in a flood of them made the
    pipeline, which logs as it files each one away, wait on thousands of redraws (a flood
    of 2,000 was 20x slower than without the console). So records only queue here, and
    ``LiveConsole`` prints them in one piece a redraw; at most ``keep`` of them, the
    newest, and how many were left out. Before and after the console is live, a record
    is printed at once. Long lines are left to the terminal to wrap (``soft_wrap``): rich
    wrapping them costs five times the rest of the printing (49 against 9 ms a thousand).
    """

    def __init__(self, live: Live, keep: int = KEEP_LINES) -> None:
        super().__init__()
        self._live = live
        self._lines: deque[str] = deque(maxlen=keep)
        self._skipped = 0  # records pushed out of ``_lines`` before they were printed

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # logging's own contract: a handler reports, never raises
            self.handleError(record)
            return
        if not self._live.is_started:
            self._live.console.print(Text(line), soft_wrap=True)
            return
        if len(self._lines) == self._lines.maxlen:
            self._skipped += 1
        self._lines.append(line)

    def take(self) -> Text | None:
        """The lines queued since the last call, as one text (None if there are none)."""
        self.acquire()  # the lock ``handle`` holds around ``emit``, in any thread
        try:
            lines, skipped = list(self._lines), self._skipped
            self._lines.clear()
            self._skipped = 0
        finally:
            self.release()
        if skipped:
            lines.insert(0, f"… {skipped:,} earlier log lines not shown")
        return Text("\n".join(lines)) if lines else None

    def flush(self) -> None:
        """Print what is queued now (the console stops, or logging shuts down)."""
        lines = self.take()
        if lines is not None:
            self._live.console.print(lines, soft_wrap=True)


class LogSummary:
    """Headless reporting: one INFO summary line every ``every`` seconds of snapshot time."""

    def __init__(self, every: float = 60.0, logger: logging.Logger | None = None) -> None:
        self.every = timedelta(seconds=every)
        self.log = logger or logging.getLogger("watcher.summary")
        self._due: datetime | None = None

    async def __call__(self, snapshot: Snapshot) -> None:
        if self._due is None:
            self._due = snapshot.started + self.every
        if snapshot.now >= self._due:
            counts = {str(name): value for name, value in snapshot.counters.items()}
            fields = {"files_waiting": snapshot.waiting_files, "unsynced": snapshot.unsynced}
            self.log.info("%s", summary_line(snapshot), extra={"counts": counts | fields})
            self._due = snapshot.now + self.every


def _rate(value: float | None) -> str:
    if value is None:
        return ""
    if value == 0:
        return "0"
    if value >= 1000:
        return f"{value / 1000:.1f}k"
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "none"
    if seconds < 10:
        return f"{seconds:.1f} s"
    return f"{seconds:.0f} s" if seconds < 60 else _duration(timedelta(seconds=seconds))


def _pair(pair: tuple[float, float] | None) -> str:
    if pair is None:
        return "—"
    return (
        "/".join(f"{ms:.0f}" if ms >= 10 else f"{ms:.1f}" for ms in (x * 1e3 for x in pair)) + " ms"
    )


def _duration(elapsed: timedelta) -> str:
    seconds = max(0, int(elapsed.total_seconds()))
    days, seconds = divmod(seconds, 86400)
    clock = f"{seconds // 3600}:{seconds % 3600 // 60:02}:{seconds % 60:02}"
    return f"{days}d {clock}" if days else clock


def _flat(text: str) -> str:
    """A message on one line (runs of white space as one space), anything else escaped."""
    return printable(" ".join(text.split()))
