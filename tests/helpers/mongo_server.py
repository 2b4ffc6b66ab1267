"""The real MongoDB-wire server the tests run against: SecantusDB in a process of its own.

``./scripts/test`` installs SecantusDB into an isolated tool environment and names its
interpreter in ``WATCHER_TEST_MONGO_PYTHON``; a test session (or a test that needs a server
it may kill) starts one here on a free loopback port. Where ``WATCHER_TEST_MONGO_URI``
names a server (mongod in CI, a developer's own), that one is used for the shared tests.
"""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final

import pytest

ROOT: Final = Path(__file__).resolve().parents[2]
LAUNCHER: Final = Path(__file__).with_name("mongo_server_main.py")
DEFAULT_PYTHON: Final = ROOT / ".tools" / "mongo-server" / "bin" / "python"


def server_python() -> Path | None:
    """The interpreter that has SecantusDB, or None when it is not installed."""
    chosen = Path(os.environ.get("WATCHER_TEST_MONGO_PYTHON") or DEFAULT_PYTHON)
    return chosen if chosen.is_file() else None


def missing_server(why: str) -> None:
    """Skip with the reason, or fail where a MongoDB test must not skip (``.ci/run``)."""
    if os.environ.get("WATCHER_TEST_REQUIRE_MONGO") == "1":
        pytest.fail(f"{why} (WATCHER_TEST_REQUIRE_MONGO=1: MongoDB tests may not skip)")
    pytest.skip(why)


NO_SERVER: Final = (
    "no MongoDB test server: ./scripts/test installs SecantusDB into .tools/mongo-server,"
    " or set WATCHER_TEST_MONGO_URI to a server of your own"
)


@dataclass
class MongoServer:
    """One SecantusDB process; ``kill`` and ``start`` again keep its port and data."""

    storage: str = ":memory:"
    sync_on_commit: bool = False
    standalone: bool = False
    test_commands: bool = False  # configureFailPoint (failCommand), as mongod's own tests use
    port: int = 0
    process: subprocess.Popen[str] | None = field(default=None, repr=False)

    @property
    def uri(self) -> str:
        options = "directConnection=true" + ("" if self.standalone else "&replicaSet=rs0")
        return f"mongodb://127.0.0.1:{self.port}/?{options}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> MongoServer:
        python = server_python()
        if python is None:
            missing_server(NO_SERVER)
            raise AssertionError("unreachable")  # pragma: no cover
        command = [str(python), str(LAUNCHER), "--port", str(self.port), "--storage", self.storage]
        command += ["--sync-on-commit"] * self.sync_on_commit + ["--standalone"] * self.standalone
        command += ["--test-commands"] * self.test_commands
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        self.port = _announced_port(self.process.stdout, self.process)
        return self

    def stop(self) -> None:
        """Stop by PID (SIGTERM, then SIGKILL if it will not go)."""
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._closed()

    def kill(self) -> None:
        """SIGKILL: the server is gone at once, as in a crash or an OOM kill."""
        if self.process is None:
            return
        self.process.kill()
        self.process.wait()
        self._closed()

    def _closed(self) -> None:
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None


def _announced_port(stdout: IO[str] | None, process: subprocess.Popen[str]) -> int:
    """Read the launcher's ``listening PORT`` line (it comes once the socket listens)."""
    assert stdout is not None
    line = stdout.readline()  # the launcher prints it at once, or exits
    if not line.startswith("listening "):
        process.kill()
        raise RuntimeError(f"the MongoDB test server did not start (said {line!r})")
    return int(line.split()[1])
