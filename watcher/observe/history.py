"""The sync journal as an operator reads it: one line per entry, oldest first, or JSON.

Pure: entries in, text or bytes out (``watcher history`` and the ``/history`` endpoint
share it). Names and reasons from outside are escaped: a hostile file name cannot steer
the terminal.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Final

from watcher.core.printable import json_safe, printable, shown_time
from watcher.core.tracos import Outcome
from watcher.store import Entry, HistoryQuery, JournalEvent, shown_json

RELATIVE: Final = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
UNITS: Final = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
ORDER_EVENTS: Final = frozenset(str(outcome) for outcome in Outcome)  # an order's inbound
CLASHES: Final = frozenset({JournalEvent.CONFLICT, JournalEvent.NO_DATE_VERSION})


def since(raw: str, now: datetime) -> datetime:
    """``--since``: an ISO 8601 date or time (UTC unless it says otherwise), or an age such
    as ``30m``, ``2h``, ``7d``; ``ValueError`` with the reason otherwise."""
    text = raw.strip()
    if match := RELATIVE.fullmatch(text):
        try:
            return now - timedelta(**{UNITS[match[2]]: float(match[1])})
        except OverflowError:  # beyond timedelta's or datetime's range: before year 1
            raise ValueError(f"too long ago: {raw[:40]!r} (at most {now.year - 1} years)") from None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"not a time: {raw!r} (an ISO 8601 date or time, or an age like 30m, 2h, 7d)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def subject(query: HistoryQuery) -> str:
    return f"order {query.number}" if query.file is None else f"file {printable(query.file)}"


def as_json(entries: Sequence[Entry]) -> bytes:
    return json_safe(shown_json(entries))


def lines(entries: Sequence[Entry]) -> list[str]:
    return [line(entry) for entry in entries]


def line(entry: Entry) -> str:
    """``2026-12-02T07:41:03.120Z  in   inserted       order 42 from erp-42.json, version …``"""
    return f"{shown_time(entry.at)}  {entry.direction:<3}  {entry.event:<21}  {_what(entry)}"


def _what(entry: Entry) -> str:
    file = printable(entry.file or "?")
    order = f"order {entry.number if entry.number is not None else '?'}"
    version = f", version {shown_time(entry.version)}" if entry.version else ""
    reason = f": {printable(entry.reason)}" if entry.reason else ""
    if entry.direction == "in":
        if entry.event in CLASHES:
            return f"{order} from {file}{version}{reason}"
        if entry.event in ORDER_EVENTS:  # ``to``: its file, of this order alone, archived
            archived = f"; file archived to archive/{printable(entry.to)}" if entry.to else ""
            return f"{order} from {file}{version}{archived}"
        return _filed(entry, file) + reason
    written: dict[str, str] = {
        JournalEvent.EXPORTED: f"{order} to {file}, marked synced{version}",
        JournalEvent.CHANGED_DURING_EXPORT: (
            f"{order} to {file}{version}; changed meanwhile: not marked, goes out again"
        ),
        JournalEvent.MARK_REFUSED: (
            f"{order} to {file}{version}; the store refused its mark, it stays unsynced{reason}"
        ),
    }
    target = f" to {file}" if entry.file else ""
    return written.get(entry.event, f"{order}{target}{version}{reason}")


def _filed(entry: Entry, file: str) -> str:
    """An inbound file's entry: where it went and its orders by outcome."""
    to = printable(entry.to or "?")
    places: dict[str, str] = {
        JournalEvent.ARCHIVED: f"{file} archived to archive/{to}",
        JournalEvent.QUARANTINED: f"{file} quarantined to failed/{to}",
        JournalEvent.PARTLY_REJECTED: f"{file} archived; rejected elements in failed/{to}",
    }
    said = places.get(entry.event, file)
    if entry.counts:
        said += " (" + ", ".join(f"{n} {o}" for o, n in entry.counts.items()) + ")"
    return said
