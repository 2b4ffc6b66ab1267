"""The read-only JSON API on the metrics port: a table of routes, path → route.

A route takes the parsed query (each parameter with its values) and returns a status code
and a body that becomes JSON; a parameter it cannot use raises ``BadQuery`` (400 with the
reason). Routes answer from what the worker already knows and the files beside it, never
by waiting on the store: ``/status`` is ``watcher status --json`` with the counts the
worker last had (``counts_from`` names it, ``counts_age_seconds`` says how old they are).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import Final
from urllib.parse import parse_qs

import msgspec

from watcher.core.errors import CommandFailed, StoreUnavailable
from watcher.core.settings import Settings
from watcher.core.tracos import INT64_MAX
from watcher.observe import history
from watcher.observe.http_server import Response
from watcher.observe.status_report import gather_status
from watcher.store import HistoryQuery, UnreadableEntry, read_history
from watcher.sync import Snapshot

Query = Mapping[str, list[str]]
Route = Callable[[Query], tuple[int, object]]
JSON: Final = "application/json"
MAX_PARAMETERS: Final = 20


class BadQuery(ValueError):
    """A query the route cannot use; its message is the 400's reason."""


def answer(route: Route, query: str) -> Response:
    """``route``'s answer to ``query`` (the raw query string), as JSON."""
    try:
        parsed = parse_qs(
            query, keep_blank_values=True, strict_parsing=bool(query), max_num_fields=MAX_PARAMETERS
        )
        status, body = route(parsed)
    except BadQuery as exc:
        status, body = 400, {"error": str(exc)}
    except ValueError as exc:  # parse_qs: a field without "=", too many fields
        status, body = 400, {"error": f"bad query string: {exc}"}
    return status, JSON, msgspec.json.encode(body) + b"\n"


def parameters(query: Query, path: str, allowed: Collection[str] = ()) -> dict[str, str]:
    """The one value of each parameter given; an unknown or repeated one is a ``BadQuery``."""
    for name, values in query.items():
        if name not in allowed:
            takes = ", ".join(allowed) or "no parameters"
            raise BadQuery(f"unknown parameter {name!r}: {path} takes {takes}")
        if len(values) > 1:
            raise BadQuery(f"parameter {name!r} given {len(values)} times: once at most")
    return {name: values[0] for name, values in query.items()}


def routes(settings: Settings, latest: Callable[[], Snapshot | None]) -> dict[str, Route]:
    """The JSON routes of a worker whose newest snapshot ``latest`` gives."""

    def status(query: Query) -> tuple[int, object]:
        parameters(query, "/status")
        return 200, gather_status(settings, None, _store_error(latest()), datetime.now(UTC))

    def history_of(query: Query) -> tuple[int, object]:
        return history_route(settings, parameters(query, "/history", HISTORY_PARAMETERS))

    return {"/status": status, "/history": history_of}


HISTORY_PARAMETERS: Final = ("number", "file", "since", "limit")


def history_route(settings: Settings, given: Mapping[str, str]) -> tuple[int, object]:
    """``/history?number=N`` or ``?file=NAME`` (with ``since``, ``limit``): what ``watcher
    history --json`` says; 404 when nothing is recorded, 503 when the store does not answer."""
    query = history_query(given)
    try:
        entries = read_history(settings, query)
    except UnreadableEntry as exc:  # a foreign document in the journal: not the query's fault
        return 500, {"error": str(exc)}
    except CommandFailed as exc:  # the journal is off
        return 404, {"error": str(exc)}
    except StoreUnavailable as exc:
        return 503, {"error": f"store unavailable: {exc}"}
    if not entries:
        return 404, {"error": f"nothing recorded for {history.subject(query)}"}
    return 200, msgspec.Raw(history.as_json(entries))


def history_query(given: Mapping[str, str]) -> HistoryQuery:
    """The query the parameters ask for; a ``BadQuery`` saying why not."""
    if ("number" in given) == ("file" in given):
        raise BadQuery("/history takes number=N or file=NAME (one of them)")
    try:
        number = _whole(given["number"], 0, INT64_MAX) if "number" in given else None
        limit = _whole(given.get("limit", "1000"), 1, MAX_LIMIT)
        since = history.since(given["since"], datetime.now(UTC)) if "since" in given else None
    except ValueError as exc:
        raise BadQuery(str(exc)) from None
    return HistoryQuery(number, given.get("file"), since, limit)


MAX_LIMIT: Final = 100_000


def _whole(raw: str, low: int, high: int) -> int:
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ValueError(f"not a whole number from {low} to {high}: {raw[:40]!r}")
    return int(raw)


def _store_error(snapshot: Snapshot | None) -> str | None:
    """None while the worker reaches its store; otherwise why it does not."""
    if snapshot is not None and snapshot.store.connected:
        return None
    error = snapshot.store.error if snapshot is not None else ""
    return " ".join(error.split()) or "not reached yet (connecting)"
