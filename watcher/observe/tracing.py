"""Opt-in OpenTelemetry tracing through the standard ``OTEL_*`` variables (off and free
when they are unset: nothing of OpenTelemetry is imported).

On when ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set,
or ``OTEL_TRACES_EXPORTER`` is ``otlp`` or ``console`` (``OTEL_SDK_DISABLED=true`` wins).
Spans: one per inbound batch and per export (``watcher.sync.tracing``), each MongoDB
command inside them as a child; every log record made inside a span carries its
``trace_id`` and ``span_id`` (fields of the JSON log lines).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from watcher import __version__
from watcher.core.errors import ConfigError
from watcher.sync import use_tracer

ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def wanted(env: Mapping[str, str]) -> bool:
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    return exporter in {"otlp", "console"} or any(env.get(name, "").strip() for name in ENDPOINTS)


tracing_wanted = wanted  # on the face: ``once`` with nothing to do asks before anything


@contextmanager
def tracing_from(env: Mapping[str, str]) -> Iterator[None]:
    """Tracing for the block when the variables ask for it; spans are flushed at the end."""
    if not wanted(env):
        yield
        return
    try:
        exporter = _exporter(env)
    except ImportError:
        raise ConfigError(
            "OTEL_* asks for tracing but OpenTelemetry is not installed:"
            " install the tracing extra (uv sync --extra tracing)"
        ) from None
    provider = enable(exporter)
    try:
        yield
    finally:
        disable(provider)


def _exporter(env: Mapping[str, str]) -> Any:
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()  # reads the OTEL_EXPORTER_OTLP_* variables itself


def enable(exporter: Any, batch: bool = True) -> Any:
    """A tracer provider exporting to ``exporter``, used by the pipelines, MongoDB commands
    and log records; returns it (for ``disable``)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    resource = Resource.create({"service.name": "tracos-sync-watcher"})  # OTEL_SERVICE_NAME wins
    provider = TracerProvider(resource=resource)
    processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("watcher", __version__)
    use_tracer(tracer)
    _watch_mongodb()
    _stamp_log_records()
    return provider


def disable(provider: Any) -> None:
    use_tracer(None)
    provider.shutdown()  # flushes what is left


def _stamp_log_records() -> None:
    """Every log record made inside a span gets ``trace_id`` and ``span_id``."""
    from opentelemetry import trace

    make = logging.getLogRecordFactory()
    if getattr(make, "stamps_traces", False):
        return

    def stamped(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = trace.format_trace_id(context.trace_id)
            record.span_id = trace.format_span_id(context.span_id)
        return record

    stamped.stamps_traces = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(stamped)


def _watch_mongodb() -> None:
    """MongoDB commands as child spans of the batch or export they serve (clients made
    from now on; commands outside a span, like the change stream's, are not traced)."""
    from watcher.observe.mongo_spans import register

    register()
