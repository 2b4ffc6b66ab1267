"""The worker in a process of its own, and how the bench watches it from outside: its
folders, its ``/proc`` figures, and whole ``watcher`` commands timed from spawn to exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from watcher.core.settings import Settings
from watcher.observe.heartbeat import read_worker_status

FOLDERS: Final = ("inbound", "outbound", "archive", "failed", "state")
DEADLINE: Final = 300.0  # no scenario may take longer than this
SWEEP_DEADLINE: Final = 3600.0  # a million files, each fsynced, on a slow disk
TICKS: Final = os.sysconf("SC_CLK_TCK")
# Started by the benchmark, it starts the command and reports the command's own peak RSS
# (wait4): a process forked from this one would count the benchmark's memory too.
LAUNCHER: Final = """
import os, subprocess, sys
with open(sys.argv[1], "wb") as log:
    child = subprocess.Popen(sys.argv[2:], stdout=log, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(child.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss * 1024)
"""


class BenchError(Exception):
    """The benchmark itself could not run (worker died, timed out, lost a file)."""


def folder_env(root: Path) -> dict[str, str]:
    """The environment of a ``watcher`` command on the embedded store in ``root``."""
    env = {**os.environ, "MONGO_URI": "", "LOG_LEVEL": "INFO", "LOG_FORMAT": "text"}
    env.update({f"DATA_{name.upper()}_DIR": str(root / name) for name in FOLDERS})
    env["METRICS_PORT"] = ""
    return env


def started(args: Sequence[str], env: dict[str, str], cwd: Path, log: Path | None = None) -> float:
    """Wall time of one ``python ARGS`` process, from spawn to exit; it must exit 0. Its
    output goes to ``log``, or is kept to be shown if it fails."""
    command = [sys.executable, *args]
    errors = subprocess.STDOUT if log else subprocess.PIPE
    with open(log, "wb") if log else nullcontext(subprocess.PIPE) as out:
        begin = time.perf_counter()
        done = subprocess.run(command, check=False, env=env, cwd=cwd, stdout=out, stderr=errors)
        seconds = time.perf_counter() - begin
    if done.returncode != 0:
        output: bytes = log.read_bytes() if log else done.stdout + done.stderr
        text = output.decode(errors="replace")[-2000:]
        raise BenchError(f"{' '.join(args)} exited {done.returncode}:\n{text}")
    return seconds


def launched(args: Sequence[str], env: dict[str, str], cwd: Path, log: Path) -> tuple[float, int]:
    """Wall time and peak RSS (bytes) of one ``python ARGS`` process; it must exit 0."""
    command = [sys.executable, "-c", LAUNCHER, str(log), sys.executable, *args]
    begin = time.perf_counter()
    done = subprocess.run(
        command, check=False, env=env, cwd=cwd, capture_output=True, timeout=SWEEP_DEADLINE
    )
    seconds = time.perf_counter() - begin
    code, peak = map(int, done.stdout.split())
    if code != 0:
        raise BenchError(f"{' '.join(args)} exited {code}:\n{log.read_text()[-2000:]}")
    return seconds, peak


def wait_until(condition: Callable[[], bool], what: str, interval: float) -> float:
    """Poll ``condition`` every ``interval`` s; the perf_counter time it first held."""
    end = time.perf_counter() + DEADLINE
    while not condition():
        if time.perf_counter() > end:
            raise BenchError(f"timed out waiting for {what}")
        time.sleep(interval)
    return time.perf_counter()


def count_files(folder: Path) -> int:
    """Visible files in ``folder`` (temporary ``.name.tmp`` files not counted)."""
    with os.scandir(folder) as entries:
        return sum(1 for entry in entries if not entry.name.startswith("."))


def stage(folder: Path, payloads: Sequence[bytes]) -> list[Path]:
    """Write the files where the worker does not look, ready to be renamed in."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{i}.json" for i in range(1, len(payloads) + 1)]
    for path, data in zip(paths, payloads, strict=True):
        path.write_bytes(data)
    return paths


def drop(paths: Sequence[Path], folder: Path) -> float:
    """Rename every staged file into ``folder`` as fast as possible; the start (epoch s)."""
    start = time.time()
    for path in paths:
        os.rename(path, folder / path.name)
    return start


@dataclass
class WorkerProcess:
    """``watcher run`` on the embedded store in ``root``; stopped with SIGTERM, exit 0 checked."""

    root: Path
    process: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)  # more variables for the worker

    def dir(self, name: str) -> Path:
        return self.root / name

    @property
    def settings(self) -> Settings:
        return Settings(state_dir=self.dir("state"))

    @property
    def sqlite_path(self) -> Path:
        return self.dir("state") / "tracos.sqlite3"

    def environment(self, settle: float) -> dict[str, str]:
        return {**folder_env(self.root), "INBOUND_SETTLE_SECONDS": str(settle), **self.env}

    def start(self, settle: float) -> None:
        command = [sys.executable, "-m", "watcher", "run", "--no-console"]
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "worker.log", "wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=self.root,
                env=self.environment(settle),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(self._ready, "the worker to start", 0.02)

    def once(self) -> float:
        """``watcher once`` in a process of its own, on the files already waiting; its time."""
        env, log = self.environment(1.0), self.root / "worker.log"
        return started(("-m", "watcher", "once"), env, self.root, log)

    def archived(self) -> int:
        """Files archived so far; a quarantined file means the benchmark's own data was
        refused."""
        if count_files(self.dir("failed")):
            raise BenchError(f"the worker quarantined benchmark files:\n{self.log_tail()}")
        return count_files(self.dir("archive"))

    def archived_at(self, count: int, what: str) -> float:
        """When the ``count``-th file reached the archive (epoch s): its rename's ctime, so
        the figure does not depend on how often it is looked for, and the looks can be rare
        (a listing of 10,000 names costs ~10 ms, which would be taken from the worker)."""
        wait_until(lambda: self.archived() >= count, what, 0.25)
        with os.scandir(self.dir("archive")) as entries:
            return max(entry.stat(follow_symlinks=False).st_ctime for entry in entries)

    def _ready(self) -> bool:
        """Serving once its status file says it has reached its store."""
        if self._proc.poll() is not None:
            raise BenchError(f"the worker exited at start-up:\n{self.log_tail()}")
        status = read_worker_status(self.settings, self.pid)
        return status is not None and status.store_connected

    @property
    def _proc(self) -> subprocess.Popen[bytes]:
        if self.process is None:
            raise BenchError("the worker is not running")
        return self.process

    @property
    def pid(self) -> int:
        return self._proc.pid

    def log_tail(self) -> str:
        lines = (self.root / "worker.log").read_text(errors="replace").splitlines()
        return "\n".join(lines[-20:])

    def peak_memory(self) -> int:
        """VmHWM: the most resident memory the process has had, in bytes."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise BenchError("no VmHWM in /proc status")

    def cpu_seconds(self) -> float:
        """utime + stime so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        self._proc.send_signal(signal.SIGTERM)
        try:
            code = self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            raise BenchError("the worker did not stop within 30 s of SIGTERM") from None
        if code != 0:
            raise BenchError(f"the worker exited with {code}:\n{self.log_tail()}")


@contextmanager
def running_worker(
    root: Path, settle: float = 1.0, env: dict[str, str] | None = None
) -> Iterator[WorkerProcess]:
    """A started worker, stopped by SIGTERM at the end (killed if the benchmark fails)."""
    worker = WorkerProcess(root, env=env or {})
    try:
        worker.start(settle)
        yield worker
    except BaseException:
        worker.kill()
        raise
    worker.stop()
