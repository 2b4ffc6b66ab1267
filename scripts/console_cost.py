"""What the live console costs: the same drop handled by ``watcher run`` with the console
and with ``--no-console``, both in a terminal (a tmux window, as an operator would run it,
or a bare pseudo-terminal read as fast as it is written), alternated, with the median of
each and their ratio. Target: ≤ 1.1x.

    .venv/bin/python scripts/console_cost.py [--bad 2000] [--good 10000] [--rounds 3] [--pty]

The bad files are the bad-input corpus (tests/data/bad) over and over: refused elements,
broken JSON, truncated files that are judged once they have settled. A drop is timed from
the first file renamed into the inbound folder to the last one filed away (archived or
quarantined), by the files' own ctimes.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import random
import shlex
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import msgspec

import watcher
from watcher.cli.samples import erp_orders
from watcher.core.settings import Settings
from watcher.observe.heartbeat import read_worker_status

FOLDERS: Final = ("inbound", "outbound", "archive", "failed", "state")
COLUMNS, LINES = 120, 40
DEADLINE: Final = 600.0
BAD: Final = Path(__file__).resolve().parent.parent / "tests" / "data" / "bad"


def payloads(bad: int, good: int) -> list[bytes]:
    """``bad`` files of the bad-input corpus and ``good`` one-order files, shuffled."""
    orders = erp_orders(good, datetime.now(UTC), random.Random(7))
    files = [msgspec.json.encode(order) for order in orders]
    corpus = [p.read_bytes() for p in sorted(BAD.glob("*.json")) if p.name != "expected.json"]
    files += [corpus[i % len(corpus)] for i in range(bad)]
    random.Random(8).shuffle(files)
    return files


def environment(root: Path) -> dict[str, str]:
    env = {**os.environ, "MONGO_URI": "", "METRICS_PORT": "", "LOG_LEVEL": "INFO"}
    env.update({f"DATA_{name.upper()}_DIR": str(root / name) for name in FOLDERS})
    return env


def command(console: bool) -> list[str]:
    return [sys.executable, "-m", "watcher", "run", *([] if console else ["--no-console"])]


class TmuxWorker:
    """``watcher run`` in ``root``, alone in a detached tmux window of the usual size."""

    def __init__(self, root: Path, console: bool) -> None:
        self.root, self.session = root, f"console-cost-{os.getpid()}"
        variables = [f"{k}={v}" for k, v in environment(root).items()]
        shell = shlex.join(["env", *variables, *command(console)])
        size = ["-x", str(COLUMNS), "-y", str(LINES)]
        tmux = ["tmux", "new-session", "-d", "-s", self.session, *size, "-c", str(root)]
        subprocess.run([*tmux, f"exec {shell}"], check=True)
        pane = ["tmux", "display-message", "-p", "-t", self.session, "#{pane_pid}"]
        self.pid = int(subprocess.run(pane, check=True, capture_output=True).stdout)
        self.written = 0  # not known: tmux reads it

    def wait_ready(self) -> None:
        settings = Settings(state_dir=self.root / "state")
        until(lambda: _connected(settings, self.pid), "the worker to start")

    def stop(self) -> None:
        os.kill(self.pid, signal.SIGTERM)
        until(lambda: not _alive(self.pid), "the worker to stop")
        subprocess.run(
            ["tmux", "kill-session", "-t", self.session], check=False, capture_output=True
        )


def cpu_seconds(pid: int) -> float:
    """The worker's user and system time so far (steadier than wall time on a busy machine)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class PtyWorker:
    """``watcher run`` in ``root`` with its output on a pseudo-terminal drained by a thread."""

    def __init__(self, root: Path, console: bool) -> None:
        self.root = root
        env = environment(root)
        env.update(TERM="xterm-256color", COLUMNS=str(COLUMNS), LINES=str(LINES))
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", LINES, COLUMNS, 0, 0))
        self.process = subprocess.Popen(
            command(console),
            cwd=root,
            env=env,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            close_fds=True,
        )
        os.close(slave)
        self.pid, self.master, self.written = self.process.pid, master, 0
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 1 << 16)
            except OSError:
                return
            if not chunk:
                return
            self.written += len(chunk)

    def wait_ready(self) -> None:
        settings = Settings(state_dir=self.root / "state")
        until(lambda: _connected(settings, self.pid), "the worker to start")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)
        os.close(self.master)


def _connected(settings: Settings, pid: int) -> bool:
    status = read_worker_status(settings, pid)
    return status is not None and status.store_connected


def until(condition: object, what: str, interval: float = 0.1) -> None:
    end = time.monotonic() + DEADLINE
    while not condition():  # type: ignore[operator]
        if time.monotonic() > end:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(interval)


def filed(root: Path) -> list[float]:
    """The ctimes of the files filed away (not the reports, nor a file's refused elements)."""
    times = []
    for name in ("archive", "failed"):
        with os.scandir(root / name) as entries:
            times += [e.stat(follow_symlinks=False).st_ctime for e in entries if _dropped(e.name)]
    return times


def _dropped(name: str) -> bool:
    return name[0].isdigit() and not name.endswith((".error.json", ".rejected.json"))


def one_run(files: Sequence[bytes], console: bool, on_pty: bool) -> tuple[float, float, int]:
    """Seconds from the drop to the last file filed away, the worker's CPU seconds over
    them, and the bytes written to the terminal (pseudo-terminal only)."""
    with tempfile.TemporaryDirectory(prefix="console-cost-") as tmp:
        root = Path(tmp)
        staged = root / "staged"
        staged.mkdir()
        paths = [staged / f"{i}.json" for i in range(len(files))]
        for path, data in zip(paths, files, strict=True):
            path.write_bytes(data)
        for name in FOLDERS:
            (root / name).mkdir()
        worker = (PtyWorker if on_pty else TmuxWorker)(root, console)
        try:
            worker.wait_ready()
            cpu = cpu_seconds(worker.pid)
            start = time.time()
            for path in paths:
                os.rename(path, root / "inbound" / path.name)
            until(lambda: len(filed(root)) >= len(files), "the drop to be filed away", 0.25)
            seconds = max(filed(root)) - start
            cpu = cpu_seconds(worker.pid) - cpu
        finally:
            worker.stop()
        shutil.rmtree(root, ignore_errors=True)
        return seconds, cpu, worker.written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bad", type=int, default=2000)
    parser.add_argument("--good", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pty", action="store_true", help="a bare pseudo-terminal, not tmux")
    args = parser.parse_args()
    files = payloads(args.bad, args.good)
    times: dict[bool, list[float]] = {True: [], False: []}
    cpus: dict[bool, list[float]] = {True: [], False: []}
    tree = Path(watcher.__file__).parent.parent
    print(f"{args.bad} bad + {args.good} good files; watcher from {tree}; load", end=" ")
    print(f"{os.getloadavg()[0]:.2f}")
    for round_ in range(args.rounds):
        for console in (True, False) if round_ % 2 == 0 else (False, True):
            seconds, cpu, written = one_run(files, console, args.pty)
            times[console].append(seconds)
            cpus[console].append(cpu)
            label = "console" if console else "no-console"
            wrote = f"  ({written:,} bytes to the terminal)" if written else ""
            print(f"  {label:<10} {seconds:7.2f} s, CPU {cpu:6.2f} s{wrote}", flush=True)
    for name, values in (("time", times), ("CPU", cpus)):
        on, off = statistics.median(values[True]), statistics.median(values[False])
        print(f"median {name}: console {on:.2f} s, no-console {off:.2f} s: {on / off:.2f}x")
    print(f"(target ≤ 1.1x); load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
