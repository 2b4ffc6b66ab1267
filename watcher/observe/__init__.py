"""What people and machines read: the console, metrics and the HTTP API, logs, the
history, each worker's heartbeat and the status report.

The face other rooms import from; every name loads its module on first use, so a command
imports only what it shows (``health`` never loads the live console).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from watcher.core.faces import lazy

if TYPE_CHECKING:
    from watcher.observe import history
    from watcher.observe.agreement import Finding, verify
    from watcher.observe.console import Header, LiveConsole, LogSummary, is_interactive
    from watcher.observe.heartbeat import health_problem, prune_stopped, worker_id
    from watcher.observe.logs import fatal, log_format_of, setup_logging
    from watcher.observe.status_report import StoreAnswer, ask_store, gather_status, status_lines
    from watcher.observe.tracing import tracing_from, tracing_wanted

__all__ = [
    "Finding",
    "Header",
    "LiveConsole",
    "LogSummary",
    "StoreAnswer",
    "ask_store",
    "fatal",
    "gather_status",
    "health_problem",
    "history",
    "is_interactive",
    "log_format_of",
    "prune_stopped",
    "setup_logging",
    "status_lines",
    "tracing_from",
    "tracing_wanted",
    "verify",
    "worker_id",
]
__getattr__ = lazy(
    __name__,
    {
        "Header": "console",
        "LiveConsole": "console",
        "LogSummary": "console",
        "StoreAnswer": "status_report",
        "ask_store": "status_report",
        "fatal": "logs",
        "health_problem": "heartbeat",
        "prune_stopped": "heartbeat",
        "worker_id": "heartbeat",
        "tracing_wanted": "tracing",
        "history": "history",
        "is_interactive": "console",
        "log_format_of": "logs",
        "setup_logging": "logs",
        "status_lines": "status_report",
        "tracing_from": "tracing",
        "verify": "agreement",
        "Finding": "agreement",
        "gather_status": "status_report",
    },
)
