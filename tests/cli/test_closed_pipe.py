"""A reader that stops early (``watcher show | head``) ends the command quietly: no
BrokenPipe traceback on the operator's terminal."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import anyio
import pytest

from tests.helpers.builders import T0, tracos_doc
from tests.helpers.workers import env_for, opened_store
from watcher.core.settings import Settings
from watcher.erp.folders import layout
from watcher.store.configured import build_journal
from watcher.store.journal import Entry

pytestmark = pytest.mark.system
MANY = 4000  # well over a pipe's buffer (64 KiB) of output, whatever the command


async def _stored(settings: Settings) -> None:
    async with opened_store(settings) as store:
        await store.put_documents([tracos_doc(n) for n in range(MANY)])
        journal = build_journal(settings, store)
        assert journal is not None
        await journal.open()
        entries = [
            Entry(at=T0 + timedelta(seconds=n), direction="in", event="inserted", number=7)
            for n in range(MANY)
        ]
        await journal.record(entries)
        await journal.close()


def _failed_files(settings: Settings) -> None:
    settings.failed_dir.mkdir(parents=True)
    for n in range(MANY):
        name = f"{n}.json"
        (settings.failed_dir / name).write_bytes(b"{")
        report = layout.ErrorReport(name, "not JSON", "$", T0.isoformat())
        (settings.failed_dir / f"{name}.error.json").write_bytes(layout.report_bytes(report))


@pytest.mark.parametrize("command", [["show"], ["history", "7", "--limit", str(MANY)], ["failed"]])
def test_a_reader_that_stops_early_ends_the_command_quietly(
    settings: Settings, command: list[str]
) -> None:
    """The first line read, then the pipe closed: no traceback, nothing on stderr."""
    anyio.run(_stored, settings)
    _failed_files(settings)
    reader = subprocess.Popen(
        [sys.executable, "-m", "watcher", *command],
        env=env_for(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert reader.stdout is not None and reader.stderr is not None
    assert reader.stdout.readline()
    reader.stdout.close()  # what ``head -1`` does once it has its line
    said = reader.stderr.read().decode()
    reader.stderr.close()
    reader.wait(timeout=30)
    assert said == "", said
    assert reader.returncode == 141  # as a writer killed by SIGPIPE: the reader went away
