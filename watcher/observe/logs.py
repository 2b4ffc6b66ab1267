"""Log lines as text or JSON (``LOG_FORMAT``), and the one fatal line a command ends with.

A JSON line carries the event's own fields (``file``, ``reason``, ``path``, ``outcome``,
counts…), given as ``extra=`` on the log call, beside the message, so that a log
pipeline can filter on them without parsing sentences.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final, TextIO

import msgspec

from watcher.core.printable import printable
from watcher.core.settings import Settings

# What every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD: Final = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_encode: Final = msgspec.json.Encoder(enc_hook=str).encode  # a Path, an enum: as text


def setup_logging(
    settings: Settings, stream: Any = None, handler: logging.Handler | None = None
) -> None:
    """Log lines to ``stream`` (or ``handler``), as text or JSON lines."""
    handler = handler or logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    logging.getLogger("watchfiles").setLevel(logging.WARNING)  # "N changes detected": noise


def _when(created: float) -> datetime:
    return datetime.fromtimestamp(created, UTC)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        when = _when(record.created).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return f"{when[:-4]}Z {record.levelname:<7} {printable(record.getMessage())}"


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, then the event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {
            k: printable(v) if isinstance(v, str) else v
            for k, v in vars(record).items()
            if k not in _STANDARD
        }
        entry: dict[str, Any] = {
            **fields,
            "time": _when(record.created).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": printable(record.getMessage()),
        }
        if record.exc_info:
            entry["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return _encode(entry).decode()


def log_format_of(env: Mapping[str, str]) -> str:
    """``json`` or ``text``, read from the environment itself: a fatal line follows
    ``LOG_FORMAT`` even when the settings could not be built."""
    return "json" if env.get("LOG_FORMAT", "").strip().lower() == "json" else "text"


def fatal(message: str, log_format: str, stream: TextIO | None = None, **fields: Any) -> None:
    """The last line of a command that could not do its work, on stderr."""
    out = stream or sys.stderr
    if log_format != "json":
        print(f"watcher: {printable(message)}", file=out)
        return
    record = logging.makeLogRecord(
        {"name": "watcher", "levelno": logging.CRITICAL, "levelname": "CRITICAL", "msg": message}
    )
    record.__dict__.update(fields)
    print(JsonFormatter().format(record), file=out)
