"""MongoDB commands as OpenTelemetry spans, through PyMongo's command monitoring (imported
only when tracing is on)."""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from pymongo import monitoring

from watcher.sync import current_tracer


class CommandSpans(monitoring.CommandListener):
    """A CLIENT span per command started inside another span, ended by its reply; nothing
    while tracing is off (PyMongo keeps a listener for good: it is registered once)."""

    def __init__(self) -> None:
        self._open: dict[tuple[int, object], Any] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        tracer = current_tracer()
        if tracer is None or not trace.get_current_span().get_span_context().is_valid:
            return
        attributes = {
            "db.system": "mongodb",
            "db.name": event.database_name,
            "db.operation": event.command_name,
        }
        span = tracer.start_span(
            f"mongodb {event.command_name}", kind=SpanKind.CLIENT, attributes=attributes
        )
        self._open[(event.request_id, event.connection_id)] = span

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        span = self._open.pop((event.request_id, event.connection_id), None)
        if span is not None:
            span.end()

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        span = self._open.pop((event.request_id, event.connection_id), None)
        if span is not None:
            span.set_status(Status(StatusCode.ERROR, str(event.failure.get("errmsg", ""))))
            span.end()


_registered: list[CommandSpans] = []


def register() -> None:
    """Listen to the commands of every client made from now on (once per process)."""
    if not _registered:
        _registered.append(CommandSpans())
        monitoring.register(_registered[0])
