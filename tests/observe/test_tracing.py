"""Opt-in OpenTelemetry tracing: a span per inbound batch and per export, MongoDB commands
as children, the trace id in log records; nothing at all while the OTEL_* variables are unset."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, cast

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.helpers.builders import tracos_doc
from tests.helpers.conditions import wait_for
from tests.helpers.workers import challenge_files, cli, drop, env_for, names, opened_store, running
from watcher.core.settings import Settings
from watcher.observe.logs import JsonFormatter
from watcher.observe.tracing import disable, enable, wanted
from watcher.sync.tracing import current_tracer

ONCE_AND_SAY_IF_LOADED = (
    "import sys; from watcher.cli.main import main; code = main(['once']);"
    " print('otel loaded' if 'opentelemetry' in sys.modules else 'otel not loaded')"
)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = enable(exporter, batch=False)
    yield exporter
    disable(provider)


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.name == name]


@pytest.mark.anyio
async def test_a_span_per_inbound_batch_and_per_export(
    settings: Settings, spans: InMemorySpanExporter
) -> None:
    """A file → an "inbound batch" span naming it, and its journal entries name the trace;
    a TracOS change → an "outbound export" span naming the order."""
    name, data = next(iter(challenge_files(1).items()))
    async with running(settings):
        drop(settings.inbound_dir, name, data)
        await wait_for(lambda: bool(named(spans, "inbound batch")), "the inbound span")
        async with opened_store(settings) as store:
            await store.put_documents([tracos_doc(77)])
        await wait_for(lambda: names(settings.outbound_dir, ".json") != [], "the export")
        await wait_for(lambda: bool(named(spans, "outbound export")), "the export span")
    (batch,) = named(spans, "inbound batch")
    assert batch.attributes is not None
    assert batch.attributes["watcher.files"] == (name,)
    assert batch.attributes["watcher.files.count"] == 1
    print(batch.to_json())
    exported = [s.attributes for s in named(spans, "outbound export") if s.attributes]
    assert any(77 in cast(tuple[int, ...], a["watcher.orders"]) for a in exported)
    assert batch.context is not None
    story = json.loads(cli(settings, "history", "--file", name, "--json").stdout)
    assert story
    assert {entry["trace"] for entry in story} == {f"{batch.context.trace_id:032x}"}


@pytest.mark.system
@pytest.mark.anyio
async def test_mongodb_commands_are_children_of_the_batch(
    mongo_settings: Settings, spans: InMemorySpanExporter
) -> None:
    """The batch's MongoDB calls are CLIENT spans under the batch's span, in its trace."""
    name, data = next(iter(challenge_files(1).items()))
    async with running(mongo_settings):
        drop(mongo_settings.inbound_dir, name, data)
        await wait_for(lambda: bool(named(spans, "inbound batch")), "the inbound span")
    (batch,) = named(spans, "inbound batch")
    assert batch.context is not None
    children = [
        s
        for s in spans.get_finished_spans()
        if s.parent and s.parent.span_id == batch.context.span_id
    ]
    assert any(s.name.startswith("mongodb ") for s in children), [s.name for s in children]
    assert {s.context.trace_id for s in children if s.context} == {batch.context.trace_id}


class Keeper(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__()
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_log_lines_inside_a_span_carry_its_trace_id(spans: InMemorySpanExporter) -> None:
    """A JSON log line written inside a span names the span's trace and span ids."""
    records: list[logging.LogRecord] = []
    handler = Keeper(records)
    logger = logging.getLogger("watcher.test_tracing")
    logger.addHandler(handler)
    try:
        with current_tracer().start_as_current_span("work") as span:
            logger.warning("inside")
        logger.warning("outside")
    finally:
        logger.removeHandler(handler)
    inside, outside = (json.loads(JsonFormatter().format(r)) for r in records)
    assert inside["trace_id"] == f"{span.get_span_context().trace_id:032x}"
    assert inside["span_id"] == f"{span.get_span_context().span_id:016x}"
    assert "trace_id" not in outside


@pytest.mark.parametrize(
    ("env", "on"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, False),
    ],
)
def test_tracing_is_on_only_when_the_variables_ask(env: dict[str, str], on: bool) -> None:
    """The standard variables decide; unset, tracing is off."""
    assert wanted(env) == on


def test_unset_means_not_even_imported(settings: Settings) -> None:
    """Without OTEL_* a `once` that stores a file never imports OpenTelemetry."""
    name, data = next(iter(challenge_files(1).items()))
    drop(settings.inbound_dir, name, data)
    plain = {k: v for k, v in env_for(settings).items() if not k.startswith("OTEL_")}
    ran = subprocess.run(
        [sys.executable, "-c", ONCE_AND_SAY_IF_LOADED],
        env=plain, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert ran.stdout.splitlines()[-1] == "otel not loaded"
    assert names(settings.archive_dir) == [name]


class Receiver(BaseHTTPRequestHandler):
    """An OTLP/HTTP endpoint that keeps what it is sent."""

    received: ClassVar[list[tuple[str, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_spans_reach_an_otlp_http_receiver(settings: Settings) -> None:
    """`watcher once` with OTEL_EXPORTER_OTLP_ENDPOINT posts its spans to /v1/traces."""
    Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        name, data = next(iter(challenge_files(1).items()))
        drop(settings.inbound_dir, name, data)
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        env = {**env_for(settings), "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}
        ran = subprocess.run(
            [sys.executable, "-c", ONCE_AND_SAY_IF_LOADED],
            env=env, capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    assert ran.stdout.splitlines()[-1] == "otel loaded"
    posted = [body for path, body in Receiver.received if path == "/v1/traces"]
    assert any(b"inbound batch" in body and name.encode() in body for body in posted)
