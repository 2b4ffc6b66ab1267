"""Hostile file names never forge a log line or drive the operator's terminal."""

from __future__ import annotations

import json
import signal
import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.helpers.conditions import wait_for, wait_until
from tests.helpers.harness import start_worker
from tests.helpers.workers import cli, names, reports, running
from tests.observe.test_console import HEADER, text
from watcher.core.printable import printable
from watcher.core.settings import Settings
from watcher.observe.console import render
from watcher.sync.stats import Stats

FORGED = "evil\n2026-01-01T00:00:00.000Z ERROR forged line.json"
CLIPBOARD = "\x1b]52;c;ZXZpbA==\x07clip.json"
CLEAR = "\x1b[2Jclear.json"
REVERSED = "invoice\u202enosj.exe.json"
HOSTILE = (FORGED, CLIPBOARD, CLEAR, REVERSED)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain café 日本.json", "plain café 日本.json"),
        ("a\nb", "a\\x0ab"),
        ("\x1b[2J", "\\x1b[2J"),
        ("x\u202ey", "x\\u202ey"),
        ("bad\udcffbyte", "bad\\udcffbyte"),
        ("del\x7f c1\x9b", "del\\x7f c1\\x9b"),
    ],
)
def test_printable_escapes_what_a_terminal_would_obey(raw: str, shown: str) -> None:
    """Controls, bidi overrides and undecodable bytes become escapes; the rest is untouched."""
    assert printable(raw) == shown


def test_the_console_shows_hostile_names_escaped() -> None:
    """A failure and an event named with escapes render as visible text, no ESC byte."""
    stats = Stats(started=datetime(2026, 1, 1, tzinfo=UTC))
    for name in HOSTILE:
        stats.failure(stats.started, "in", name, "broken JSON")
        stats.event(stats.started, "in", name, "failed")
    shown = text(render(stats.snapshot(stats.started), HEADER), 120)
    assert "\x1b" not in shown and "\u202e" not in shown
    assert "\\x1b[2Jclear.json" in shown


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_hostile_names_in_the_log_stay_on_their_own_line(
    settings: Settings, tmp_path: Path, log_format: str
) -> None:
    """Each log line is one event (text: starts with its time; json: parses); no raw escape."""
    settings.inbound_dir.mkdir(parents=True)
    for name in HOSTILE:
        (settings.inbound_dir / name).write_bytes(b"{ broken")
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log:
        worker = start_worker(settings, log, {"LOG_FORMAT": log_format})
        try:
            wait_until(lambda: len(names(settings.failed_dir, ".error.json")) == 4, "quarantined")
            wait_until(lambda: log_path.read_text().count("quarantined") >= 4, "logged")
        finally:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=20) == 0
    output = log_path.read_bytes()
    assert b"\x1b" not in output and "\u202e".encode() not in output
    lines = output.decode().splitlines()
    for line in lines:
        if log_format == "text":
            assert line[:4].isdigit() and line[23] == "Z", f"not a log line: {line!r}"
        assert not line.startswith("2026-01-01T00:00:00.000Z"), f"a forged line: {line!r}"
    messages = [json.loads(line)["message"] for line in lines] if log_format == "json" else lines
    assert any("evil\\x0a2026" in message for message in messages)


# --- JSON outputs, and a socket among the inputs ---------------------------------

BIDI_C1 = ("invoice\u202enosj.exe.json", "csi\x9b2Jclear.json", "del\x7f.json")
RAW_UNSAFE = ("\u202e", "\x9b", "\x7f")


@pytest.mark.system
def test_json_outputs_escape_bidi_overrides_and_c1_controls(settings: Settings) -> None:
    """``failed --json`` and ``history --json`` (``/history`` shares its encoder) write
    such characters as escapes: a reader of the JSON gets the names back whole."""
    settings.inbound_dir.mkdir(parents=True)
    for name in BIDI_C1:
        (settings.inbound_dir / name).write_bytes(b"12")
    cli(settings, "once")
    outputs = [cli(settings, "failed", "--json").stdout]
    outputs += [cli(settings, "history", "--file", name, "--json").stdout for name in BIDI_C1]
    for output in outputs:
        assert not any(c in output for c in RAW_UNSAFE), ascii(output)
    assert sorted(e["file"] for e in json.loads(outputs[0])) == sorted(BIDI_C1)
    assert [json.loads(o)[0]["file"] for o in outputs[1:]] == list(BIDI_C1)


@pytest.mark.anyio
async def test_a_unix_socket_named_like_an_input_is_quarantined_as_a_socket(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``x.json`` is a UNIX socket: quarantined with a reason that names a socket (not
    "No such device or address")."""
    settings.inbound_dir.mkdir(parents=True)
    monkeypatch.chdir(settings.inbound_dir)  # a socket's path is short: bind it by name
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind("x.json")
        async with running(settings):
            await wait_for(lambda: "x.json" in reports(settings), "quarantined")
    assert reports(settings)["x.json"]["reason"] == "not a regular file (socket): not read"
