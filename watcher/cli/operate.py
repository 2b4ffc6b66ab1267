"""Commands for operating a deployment: ``pause`` and ``resume`` one direction, and
``config``, the effective settings with where each came from."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from watcher.cli.environment import environment
from watcher.core.errors import CommandFailed
from watcher.core.printable import printable
from watcher.core.settings import VARIABLES, Settings, mask_uri
from watcher.sync import pause, resume

DEFAULTS = Settings()


def _workers_state(settings: Settings) -> Path:
    """The state folder the workers read their pauses from. With neither it nor an inbound
    folder here, this is most likely the wrong directory, and a marker made there would
    hold nothing: nothing is created. (A deployment not started yet may be paused ahead.)"""
    if not settings.state_dir.is_dir() and not settings.inbound_dir.is_dir():
        raise CommandFailed(
            f"no state folder at {settings.state_dir}: run this in the worker's directory,"
            " or set DATA_STATE_DIR"
        )
    return settings.state_dir


def cmd_pause(settings: Settings, args: argparse.Namespace) -> int:
    direction = args.direction
    if pause(_workers_state(settings), direction):
        print(
            f"{direction} paused: running workers take no new {direction} work within a"
            f" second (the batch in flight finishes); `watcher resume {direction}` ends it"
        )
    else:
        print(f"{direction} was already paused")
    return 0


def cmd_resume(settings: Settings, args: argparse.Namespace) -> int:
    direction = args.direction
    if resume(_workers_state(settings), direction):
        when = "within INBOUND_RESCAN_SECONDS" if direction == "inbound" else "within a second"
        print(f"{direction} resumed: running workers take {direction} work again {when}")
    else:
        print(f"{direction} was not paused")
    return 0


def cmd_config(settings: Settings, args: argparse.Namespace) -> int:
    """The effective settings, each with where it came from; secrets masked."""
    env, origins = environment()
    rows = effective(settings, env, origins)
    if args.json:
        print(msgspec.json.encode(rows).decode())
        return 0
    width = max(map(len, rows))
    for variable, row in rows.items():
        print(printable(f"{variable:<{width}}  {_text(row['value'])}  ({row['source']})"))
    return 0


def effective(
    settings: Settings, env: Mapping[str, str], origins: Mapping[str, str]
) -> dict[str, dict[str, Any]]:
    """Variable → its value as the worker uses it (secrets masked) and its source: default,
    environment, the .env file, a ``*_FILE``, or derived (the database named in the URI)."""
    rows = {}
    for variable, (field, _) in VARIABLES.items():
        value = getattr(settings, field)
        if variable in origins:
            source = origins[variable].removeprefix("from ")
        elif env.get(variable, "").strip():
            source = "environment"
        else:
            source = "default" if value == getattr(DEFAULTS, field) else "derived"
        rows[variable] = {"value": _shown(variable, value), "source": source}
    return rows


def _shown(variable: str, value: object) -> object:
    if value is None or isinstance(value, bool | int | float):
        return value
    if variable == "MONGO_URI":
        return mask_uri(str(value))
    if variable == "HTTP_TOKEN":
        return "***"
    return str(value)


def _text(value: object) -> str:
    if value is None or value == "":
        return "(unset)"
    return str(value).lower() if isinstance(value, bool) else str(value)
