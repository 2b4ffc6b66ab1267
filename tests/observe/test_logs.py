"""Log lines: JSON lines carry the event's fields, and fatal lines follow LOG_FORMAT."""

from __future__ import annotations

import io
import json
import logging
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.builders import erp
from tests.helpers.workers import cli, drop
from watcher.core.settings import Settings
from watcher.observe.logs import JsonFormatter, fatal


def test_a_json_line_carries_the_fields_given_as_extra() -> None:
    """``extra=`` fields are written beside the message; values JSON lacks become text."""
    record = logging.makeLogRecord(
        {
            "name": "watcher.sync.inbound",
            "levelname": "WARNING",
            "msg": "%s quarantined",
            "args": ("x",),
        }
    )
    record.__dict__.update({"file": "x.json", "path": "$.orderNo", "to": Path("failed/x.json")})
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "x quarantined" and entry["level"] == "warning"
    assert (entry["file"], entry["path"], entry["to"]) == ("x.json", "$.orderNo", "failed/x.json")
    assert "msg" not in entry and "args" not in entry


def test_a_json_line_carries_the_exception() -> None:
    """An exception logged in JSON keeps its traceback, in a field of its own."""
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.makeLogRecord({"msg": "failed", "exc_info": sys.exc_info()})
    assert "ValueError: boom" in json.loads(JsonFormatter().format(record))["exception"]


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_fatal_line_follows_the_log_format(log_format: str) -> None:
    """Text: ``watcher: …``; JSON: one object with the message and the kind of error."""
    out = io.StringIO()
    fatal("configuration error: X: bad", log_format, out, error="configuration")
    if log_format == "text":
        assert out.getvalue() == "watcher: configuration error: X: bad\n"
        return
    entry = json.loads(out.getvalue())
    assert (entry["level"], entry["error"]) == ("critical", "configuration")
    assert entry["message"] == "configuration error: X: bad"


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.strip().splitlines()]


@pytest.mark.system
def test_the_events_of_a_run_carry_their_fields(settings: Settings) -> None:
    """Quarantine: file, reason, path, outcome; batches, exports and the summary: counts."""
    cli(settings, "seed", "--tracos", "1", "--erp", "0")  # order 1: unsynced, exported
    drop(settings.inbound_dir, "2.json", json.dumps(erp(orderNo=2)).encode())
    drop(settings.inbound_dir, "bad.json", json.dumps(erp(orderNo="7")).encode())
    entries = json_lines(cli(settings, "once", env={"LOG_FORMAT": "json"}).stderr)
    [quarantined] = [e for e in entries if e.get("outcome") == "quarantined"]
    assert quarantined["file"] == "bad.json" and quarantined["path"] == "$.orderNo"
    assert quarantined["reason"] == "Expected `int`, got `str`"
    [batch] = [e for e in entries if e["message"].startswith("2 files")]
    assert batch["counts"] == {"inserted": 1}
    [exported] = [e for e in entries if e.get("outcome") == "exported"]
    assert exported["counts"] == {"exported": 1, "changed_during_export": 0}
    assert entries[-1]["counts"]["files_failed"] == 1


@pytest.mark.system
def test_fatal_lines_of_commands_follow_log_format(settings: Settings) -> None:
    """A configuration error and an unreachable store, as JSON lines with LOG_FORMAT=json."""
    env = {"LOG_FORMAT": "json", "INBOUND_BATCH_SIZE": "lots"}
    bad_setting = cli(settings, "run", check=False, env=env)
    [entry] = json_lines(bad_setting.stderr)
    assert bad_setting.returncode == 2 and entry["error"] == "configuration"
    assert entry["message"] == "configuration error: INBOUND_BATCH_SIZE: not a number: 'lots'"
    down = {
        "LOG_FORMAT": "json",
        "MONGO_URI": "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200",
    }
    unreachable = cli(settings, "show", check=False, env=down)
    [entry] = json_lines(unreachable.stderr)
    assert unreachable.returncode == 1 and entry["error"] == "store unavailable"
    assert entry["message"].startswith("store unavailable: MongoDB unreachable")
