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

from watcher.http_server import Response
from watcher.inspection import status_report
from watcher.settings import Settings
from watcher.stats import Snapshot

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
        return 200, status_report(settings, None, _store_error(latest()), datetime.now(UTC))

    return {"/status": status}


def _store_error(snapshot: Snapshot | None) -> str | None:
    """None while the worker reaches its store; otherwise why it does not."""
    if snapshot is not None and snapshot.store.connected:
        return None
    error = snapshot.store.error if snapshot is not None else ""
    return " ".join(error.split()) or "not reached yet (connecting)"
