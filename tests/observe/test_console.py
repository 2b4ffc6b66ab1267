"""The operator console: renders of fixed snapshots, rates, the summary line, terminal detection."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import anyio
import pytest
from rich.console import Console
from rich.live import Live

from watcher.core.settings import load_settings
from watcher.observe.console import (
    FRAME_SHARE,
    LONGEST_GAP,
    Header,
    LinesAbove,
    LiveConsole,
    LogSummary,
    is_interactive,
    render,
    summary_line,
)
from watcher.sync.stats import Count, Failure, RecentRates, Snapshot, Stats, StoreState, rates

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
URI = "mongodb://user:s3cret@host/?replicaSet=rs0"
HEADER = Header.from_settings(load_settings({}), "1.0.0", "embedded")
REASON = "Expected `int`, got `str` - at `$.orderNo`; the rest of this reason is long " * 2


def still() -> float:
    """A clock that does not move: frames take no time, and every call draws one."""
    return 0.0


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def text(renderable: object, width: int, height: int = 24) -> str:
    console = Console(
        record=True, width=width, height=height, file=io.StringIO(), color_system=None
    )
    console.print(renderable)
    return console.export_text()


def busy_stats() -> Stats:
    stats = Stats(started=T0)
    for name, amount in [("files_seen", 1234), ("orders_inserted", 1000), ("exported", 980)]:
        stats.count(Count(name), amount)
    for name, amount in [("orders_updated", 200), ("orders_unchanged", 30), ("orders_stale", 4)]:
        stats.count(Count(name), amount)
    stats.count(Count.RETRIES, 5)
    stats.waiting_files, stats.unsynced = 12, 14
    for i in range(12):
        stats.event(at(3720 + i), "in", str(1000 + i), ("inserted", "updated", "stale")[i % 3])
        stats.event(at(3720 + i), "out", str(900 + i), "exported")
    stats.latency_in.extend([0.012, 0.020, 0.040])
    stats.latency_out.extend([0.008, 0.022])
    stats.waiting_age, stats.in_flight, stats.unsynced_age = 12.4, 1000, 30 * 3600.0
    return stats


def failing_stats() -> Stats:
    stats = busy_stats()
    for i in range(8):
        stats.count(Count.FILES_FAILED)
        stats.failure(at(3700 + i), "in", f"broken-{i}.json", REASON)
    stuck = Failure(at(3710), "out", "order 77", "unknown status 'weird'")
    stats.unexportable["doc-77"] = stuck
    stats.count(Count.UNEXPORTABLE)
    stats.failure(stuck.time, stuck.direction, stuck.subject, stuck.reason)
    return stats


def retrying_stats() -> Stats:
    stats = busy_stats()
    error = "localhost:27017: [Errno 111] Connection refused (configured timeouts: 20000.0ms)"
    stats.store = StoreState(connected=False, error=error, next_attempt=at(3737.2))
    return stats


def idle() -> Snapshot:
    return Stats(started=T0).snapshot(T0)


def busy() -> Snapshot:
    return busy_stats().snapshot(at(3733))


def retrying() -> Snapshot:
    return retrying_stats().snapshot(at(3733))


def failing() -> Snapshot:
    return failing_stats().snapshot(at(3733))


SCENARIOS: dict[str, Callable[[], Snapshot]] = {
    "idle": idle,
    "busy": busy,
    "retrying": retrying,
    "failures": failing,
}


@pytest.mark.parametrize("width", [80, 120])
def test_idle_console_shows_zero_counters_and_no_latency(width: int) -> None:
    """A fresh start shows the header, zero counters, dashes for latency and no events."""
    shown = text(render(idle(), HEADER), width)
    assert "watcher 1.0.0 · up 0:00:00 · embedded · embedded SQLite" in shown
    assert "in data/inbound · out data/outbound" in shown
    assert "store connected" in shown
    assert "file → committed —" in shown
    assert "recent events: none yet" in shown
    assert "recent failures: none" in shown


@pytest.mark.parametrize("width", [80, 120])
def test_busy_console_shows_counters_rates_latency_and_newest_events(width: int) -> None:
    """Counters, per-second rates, p50/p95 in ms and the newest events come first."""
    stats = busy_stats()
    before = stats.snapshot(at(3723))
    stats.count(Count.FILES_SEEN, 60)
    after = stats.snapshot(at(3733))
    shown = text(render(after, HEADER, rates(before, after)), width)
    assert "up 1:02:13" in shown
    assert "1,294" in shown
    assert "6.0" in shown
    assert "file → committed 20/40 ms" in shown
    assert "change → file 22/22 ms" in shown
    newest = next(line for line in shown.splitlines() if "911" in line)
    assert newest.split()[:4] == ["10:02:11", "out", "911", "exported"]


@pytest.mark.parametrize("width", [80, 120])
def test_store_outage_shows_retrying_error_and_next_attempt(width: int) -> None:
    """While the store is down the console says RETRYING, why, and when the next attempt is."""
    shown = text(render(retrying(), HEADER), width)
    line = next(line for line in shown.splitlines() if "RETRYING" in line)
    assert line.startswith("store RETRYING: localhost:27017: [Errno 111]")
    assert line.rstrip().endswith("— next attempt in 5 s")
    assert len(line.rstrip()) <= width


@pytest.mark.parametrize("width", [80, 120])
def test_failures_show_the_start_of_the_reason_and_unexportable_orders(width: int) -> None:
    """Quarantine reasons show their start, cut with an ellipsis; stuck orders are listed."""
    shown = text(render(failing(), HEADER), width)
    assert "recent failures, 1 unexportable" in shown
    assert "order 77" in shown
    assert "unknown status 'weird'" in shown
    line = next(line for line in shown.splitlines() if "broken-7.json" in line)
    assert "Expected `int`, got `str` - at `$.orderNo`" in line
    assert line.rstrip().endswith("…")


def test_wide_console_puts_events_and_failures_side_by_side() -> None:
    """At 120 columns one line holds both an event and a failure."""
    shown = text(render(failing(), HEADER), 120)
    assert any("911" in line and "order 77" in line for line in shown.splitlines())


@pytest.mark.parametrize("width", [80, 120])
def test_password_never_appears(width: int) -> None:
    """The MongoDB password is masked in the header."""
    header = Header.from_settings(load_settings({"MONGO_URI": URI}), "1.0.0", "MongoDB polling")
    shown = text(render(busy(), header), width)
    assert "s3cret" not in shown
    assert "***" in shown


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize(("width", "height"), [(80, 24), (120, 24), (80, 16)])
def test_console_fits_the_terminal(scenario: str, width: int, height: int) -> None:
    """Every render fits the terminal's width and height."""
    lines = text(render(SCENARIOS[scenario](), HEADER), width, height).splitlines()
    assert len(lines) <= height
    assert max(len(line.rstrip()) for line in lines) <= width


def test_rates_are_per_second_differences() -> None:
    """Rates divide each counter's growth by the seconds between snapshots."""
    stats = Stats(started=T0)
    stats.count(Count.FILES_SEEN, 10)
    before = stats.snapshot(at(10))
    stats.count(Count.FILES_SEEN, 30)
    stats.count(Count.EXPORTED, 4)
    assert rates(before, stats.snapshot(at(12))) == {"files_seen": 15.0, "exported": 2.0}
    assert rates(None, before) == {}
    assert rates(before, before) == {}


def test_summary_line_has_the_counts_and_no_escape_codes() -> None:
    """The headless summary is one plain line with every count."""
    line = summary_line(failing())
    assert line == (
        "summary: 1234 files (8 failed), orders 1000 inserted / 200 updated / 30 unchanged"
        " / 4 stale, 980 exported, 1 unexportable, 5 retries, 12 files waiting, 14 unsynced,"
        " store connected; latency p50/p95 in 20/40 ms, out 22/22 ms"
    )
    assert "\x1b" not in line
    assert "\n" not in line


def test_summary_line_reports_a_store_outage() -> None:
    """A store outage shows in the summary with its error."""
    assert "store RETRYING: localhost:27017" in summary_line(retrying())


def test_log_summary_logs_once_per_period(caplog: pytest.LogCaptureFixture) -> None:
    """One INFO line when the period has passed, none in between."""
    stats, summary = busy_stats(), LogSummary(every=60)
    caplog.set_level(logging.INFO, logger="watcher.summary")
    for seconds in (10, 59.9, 60, 90, 119, 120):
        anyio.run(summary, stats.snapshot(at(seconds)))
    assert [r.getMessage()[:16] for r in caplog.records] == ["summary: 1234 fi"] * 2
    assert all(r.levelno == logging.INFO for r in caplog.records)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("stream", "term", "expected"),
    [(Terminal(), "xterm-256color", True), (Terminal(), "dumb", False), (io.StringIO(), "", False)],
)
def test_is_interactive(stream: io.StringIO, term: str, expected: bool) -> None:
    """Only a terminal that is not TERM=dumb gets the live console."""
    assert is_interactive(stream, {"TERM": term}) is expected


def test_is_interactive_on_a_closed_stream() -> None:
    """A closed stream is not a terminal."""
    stream = io.StringIO()
    stream.close()
    assert is_interactive(stream, {}) is False


def test_live_console_draws_the_snapshot_and_logs_above_it() -> None:
    """The live console shows the last snapshot; its log handler prints plain lines."""
    console = Console(record=True, width=80, height=24, file=io.StringIO(), color_system=None)
    with LiveConsole(lambda: HEADER, console) as live:
        anyio.run(live, busy())
        handler = live.log_handler()
        handler.handle(logging.makeLogRecord({"msg": "store [bold]down", "levelno": 30}))
    shown = console.export_text()
    assert "store [bold]down" in shown
    assert "1,234" in shown


def test_a_flood_of_log_lines_is_drawn_once_a_refresh() -> None:
    """500 warnings between two refreshes reach the terminal in one piece at the next
    refresh, with the console's new frame below them: none is written, nor the console
    redrawn, per line (each redraw of the whole console made a flood 7-20x slower)."""
    terminal = io.StringIO()
    console = Console(file=terminal, width=80, height=24, force_terminal=True, color_system=None)
    frames = "watcher 1.0.0 · up"  # the console's first line: once in each frame drawn
    with LiveConsole(HEADER, console, clock=still) as live:
        handler = live.log_handler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        anyio.run(live, busy())
        drawn = terminal.getvalue()
        for i in range(500):
            handler.handle(
                logging.makeLogRecord({"msg": f"bad-{i}.json quarantined", "levelno": 30})
            )
        assert terminal.getvalue() == drawn  # nothing yet: the lines wait for the refresh
        anyio.run(live, busy_stats().snapshot(at(3734)))
        shown = terminal.getvalue()[len(drawn) :]
    assert shown.count(frames) <= 2  # below the lines, then the new one
    assert shown.rindex("up 1:02:14") > shown.rindex("bad-499.json")  # the new frame last
    assert all(f"bad-{i}.json quarantined" in shown for i in range(500))


def test_a_flood_longer_than_kept_says_how_many_lines_it_left_out() -> None:
    """Between two redraws the console keeps the newest lines, and counts the others."""
    console = Console(file=io.StringIO(), width=80, force_terminal=True, color_system=None)
    with Live(console=console, auto_refresh=False) as live:
        lines = LinesAbove(live, keep=3)
        for i in range(5):
            lines.handle(logging.makeLogRecord({"msg": f"line {i}", "levelno": 30}))
        taken = lines.take()
    assert taken is not None
    assert taken.plain.splitlines() == [
        "… 2 earlier log lines not shown",
        "line 2",
        "line 3",
        "line 4",
    ]
    assert lines.take() is None


def test_frames_are_spaced_to_take_a_small_share_of_the_time() -> None:
    """A frame that took 10 ms is followed by none for 10 ms / FRAME_SHARE (a third of a
    second at 3%): a call before then draws nothing, and its log lines wait for the next."""
    terminal = io.StringIO()
    console = Console(file=terminal, width=80, height=24, force_terminal=True, color_system=None)
    ticks = iter([0.0, 0.010, 0.25, 0.5, 0.51])  # each frame's start and end; a skipped call
    with LiveConsole(HEADER, console, clock=lambda: next(ticks)) as live:
        handler = live.log_handler()
        for second in range(3):
            handler.handle(logging.makeLogRecord({"msg": f"line {second}", "levelno": 30}))
            anyio.run(live, busy_stats().snapshot(at(3733 + second)))
            if second == 1:
                assert "line 1" not in terminal.getvalue()  # waits for the next frame
        shown = terminal.getvalue()
    assert 0.010 / FRAME_SHARE > 0.25
    assert "up 1:02:13" in shown and "up 1:02:14" not in shown and "up 1:02:15" in shown
    assert all(f"line {second}" in shown for second in range(3))


def test_a_frame_that_took_long_leaves_the_console_still_no_longer_than_the_longest_gap() -> None:
    """A terminal that took a second to take a frame: the next is drawn two seconds later
    (LONGEST_GAP), not the 33 s that the frames' share of the time alone would give."""
    terminal = io.StringIO()
    console = Console(file=terminal, width=80, height=24, force_terminal=True, color_system=None)
    ticks = iter([0.0, 1.0, LONGEST_GAP - 0.01, LONGEST_GAP, LONGEST_GAP])
    with LiveConsole(HEADER, console, clock=lambda: next(ticks)) as live:
        for second in range(3):
            anyio.run(live, busy_stats().snapshot(at(3733 + second)))
        shown = terminal.getvalue()
    assert "up 1:02:13" in shown and "up 1:02:14" not in shown and "up 1:02:15" in shown


def test_rates_are_of_the_last_few_seconds() -> None:
    """After ten seconds at 500/s, the rate is the new 2,500/s within the window, and 0
    once the flow stops for as long: no ten-second average in between."""
    stats, recent = Stats(started=T0), RecentRates(window=3.0)
    shown = []
    for tick in range(4 * 20):  # four snapshots a second, by their own clock
        seconds = tick / 4
        flow = 500 if seconds <= 10 else 2500 if seconds <= 15 else 0
        stats.count(Count.FILES_SEEN, int(flow / 4) if tick else 0)
        shown.append(recent.add(stats.snapshot(at(seconds))).get(Count.FILES_SEEN))
    assert shown[0] is None
    assert shown[4 * 10] == 500
    assert shown[4 * 13] == 2500  # three seconds into the faster flow
    assert shown[4 * 18] == 0


def test_live_console_shows_the_recent_rate() -> None:
    """The live console's rates come from the last few seconds; repeats are skipped."""
    stats = Stats(started=T0)
    console = Console(record=True, width=80, height=24, file=io.StringIO(), color_system=None)
    with LiveConsole(HEADER, console, clock=still) as live:
        for seconds, files in [(0, 0), (5, 5000), (9, 7000), (12, 14500), (12, 14500)]:
            stats.count(Count.FILES_SEEN, files - stats.counters[Count.FILES_SEEN])
            anyio.run(live, stats.snapshot(at(seconds)))
    assert "files   14,500 2.5k" in console.export_text()  # not 1.4k: since 5 s


@pytest.mark.parametrize("width", [80, 120])
def test_the_lag_line_says_how_far_behind(width: int) -> None:
    """The oldest file waiting, the oldest unsynced order and the files in flight."""
    assert "lag  oldest file waiting 12 s · oldest unsynced 1d 6:00:00 · in flight 1,000" in (
        text(render(busy(), HEADER), width)
    )
    assert "lag  oldest file waiting none · oldest unsynced none · in flight 0" in text(
        render(idle(), HEADER), width
    )


@pytest.mark.parametrize("width", [80, 120])
def test_a_paused_direction_shows_until_resumed(width: int) -> None:
    """``watcher pause outbound`` shows as one line; gone once resumed."""
    stats = busy_stats()
    stats.pauses.update(frozenset({"outbound"}))
    assert "PAUSED: outbound takes no new work" in text(
        render(stats.snapshot(at(5)), HEADER), width
    )
    stats.pauses.update(frozenset())
    assert "PAUSED" not in text(render(stats.snapshot(at(6)), HEADER), width)
