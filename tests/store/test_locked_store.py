"""Another process holds the embedded store locked (a backup tool, a long report, a stuck
script): nothing waits for it longer than it must (issue 23 #3)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.helpers.workers import cli, opened_store
from watcher.core.settings import Settings

pytestmark = [pytest.mark.anyio, pytest.mark.system]

HOLD = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA locking_mode=EXCLUSIVE")  # no one else may even read
db.execute("BEGIN EXCLUSIVE")
db.execute("SELECT count(*) FROM workorders").fetchone()
print("held", flush=True)
sys.stdin.read()  # until the test lets go
"""


@contextmanager
def locked(settings: Settings) -> Iterator[None]:
    """The store locked by another process for as long as the block runs."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(settings.sqlite_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdin is not None
    try:
        assert holder.stdout.readline() == "held\n"
        yield
    finally:
        holder.stdin.close()
        holder.stdout.close()
        holder.wait(timeout=20)


async def test_status_answers_within_a_second_while_the_store_is_locked(
    settings: Settings,
) -> None:
    """``watcher status`` says the store could not be read (and why) instead of waiting."""
    async with opened_store(settings):
        pass
    with locked(settings):
        started = time.monotonic()
        told = cli(settings, "status", "--json")
        elapsed = time.monotonic() - started
    report = json.loads(told.stdout)
    assert report["store_reachable"] is False and "locked" in report["store_error"], report
    assert elapsed < 2.5, f"took {elapsed:.1f} s"  # a second of its own, plus Python's start
