"""Commands for operating a deployment: ``pause`` and ``resume`` one direction, and
``config``, the effective settings with where each came from."""

from __future__ import annotations

import argparse

from watcher.core.settings import Settings
from watcher.sync.pausing import pause, resume


def cmd_pause(settings: Settings, args: argparse.Namespace) -> int:
    direction = args.direction
    if pause(settings.state_dir, direction):
        print(
            f"{direction} paused: running workers take no new {direction} work within a"
            f" second (the batch in flight finishes); `watcher resume {direction}` ends it"
        )
    else:
        print(f"{direction} was already paused")
    return 0


def cmd_resume(settings: Settings, args: argparse.Namespace) -> int:
    direction = args.direction
    if resume(settings.state_dir, direction):
        print(f"{direction} resumed: running workers take {direction} work again")
    else:
        print(f"{direction} was not paused")
    return 0
