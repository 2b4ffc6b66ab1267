"""Spans for the pipelines, when tracing is on: one per inbound batch, one per export.

Tracing is opt-in (``watcher.observe.tracing`` turns it on from the ``OTEL_*`` variables);
until then ``traced`` calls straight through and nothing of OpenTelemetry is imported.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, ParamSpec, TypeVar

import msgspec

from watcher.store import Entries, Entry, OrderEntries

P = ParamSpec("P")
R = TypeVar("R")
LISTED: Final = 100  # names and numbers kept in a span's attributes; the counts say all

_tracer: Any = None  # an OpenTelemetry tracer once tracing is on


def use_tracer(tracer: object | None) -> None:
    """Turn the pipelines' spans on (a tracer) or off (None)."""
    global _tracer  # noqa: PLW0603 (set once by the composition root)
    _tracer = tracer


def current_tracer() -> Any:
    """The tracer in use (None while tracing is off)."""
    return _tracer


def traced(
    name: str, describe: Callable[..., Mapping[str, Any]]
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Run the coroutine function in a span ``name`` whose attributes ``describe`` gives
    from the same arguments; without a tracer, a plain call."""

    def decorate(function: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(function)
        async def run(*args: P.args, **kwargs: P.kwargs) -> R:
            tracer = _tracer
            if tracer is None:
                return await function(*args, **kwargs)
            with tracer.start_as_current_span(name, attributes=describe(*args, **kwargs)):
                return await function(*args, **kwargs)

        return run

    return decorate


def listed(prefix: str, values: Sequence[Any]) -> dict[str, Any]:
    """``<prefix>.count`` and the first ``LISTED`` values as ``<prefix>`` (strings or ints)."""
    return {f"{prefix}.count": len(values), prefix: list(values[:LISTED])}


def current_trace_id() -> str | None:
    """The trace id (32 hex digits) of the span the caller is in; None when tracing is off
    or there is no span."""
    if _tracer is None:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    return trace.format_trace_id(context.trace_id) if context.is_valid else None


def traced_entries(entries: Sequence[Entry]) -> Sequence[Entry]:
    """The journal entries, each naming the current trace (as they are without one)."""
    trace_id = current_trace_id()
    if trace_id is None:
        return entries
    parts = entries.parts if isinstance(entries, Entries) else [entries]
    return Entries(map(functools.partial(_traced, trace_id), parts))


def _traced(trace_id: str, part: Sequence[Entry]) -> Sequence[Entry]:
    """A part of a batch's entries naming the trace (columns stay columns)."""
    if isinstance(part, OrderEntries):
        return part.traced(trace_id)
    return [msgspec.structs.replace(entry, trace=trace_id) for entry in part]
