"""Waiting on a condition with a deadline: never a sleep-and-hope."""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio

DEADLINE = 20.0


async def wait_for(condition: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    """Wait until ``condition()`` holds, or fail after ``deadline`` seconds saying ``what``."""
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {deadline:.0f} s waiting for {what}")
        await anyio.sleep(0.02)


def wait_until(condition: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    """Blocking ``wait_for`` for tests that drive subprocesses."""
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {deadline:.0f} s waiting for {what}")
        time.sleep(0.02)
