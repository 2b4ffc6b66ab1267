"""A status file planted in the state folder (a FIFO, a link to an endless device) is named
as unreadable, never read through: status, health and /status stay answering."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from watcher.core.settings import Settings
from watcher.observe.heartbeat import Found, read_status_files


def plant(path: Path, kind: str) -> None:
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")


@pytest.mark.parametrize("kind", ["fifo", "link to /dev/zero"])
def test_a_planted_status_file_is_named_and_never_read_through(
    settings: Settings, kind: str
) -> None:
    """Read within a second (a FIFO would block for ever, /dev/zero fill the memory)."""
    settings.state_dir.mkdir(parents=True)
    plant(settings.state_dir / "worker-planted.json", kind)
    found: list[list[Found]] = []
    reader = threading.Thread(target=lambda: found.append(read_status_files(settings)), daemon=True)
    reader.start()
    reader.join(5)
    assert found, "reading the status files did not return"
    [planted] = found[0]
    assert planted.status is None
    assert "not a regular file" in planted.error
