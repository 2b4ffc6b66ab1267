"""What a run ran on and under: the machine, the load other processes put on it, and how
fast its disk made a small write durable, taken before each scenario, so that a row can be
trusted or rerun (the floors of the rows that sync swing with the disk)."""

from __future__ import annotations

import os
import platform
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TypeVar

TICKS: Final = os.sysconf("SC_CLK_TCK")
SYNC_PROBES: Final = 7
SYNC_SWING: Final = 2.0  # slowest / fastest sync over a run beyond which it "swung"
BUSY: Final = 0.25  # cores used by other processes beyond which a scenario was not alone
T = TypeVar("T")


@dataclass(frozen=True)
class Conditions:
    """Under what one scenario ran."""

    scenario: str
    seconds: float
    load: float  # the 1-minute load average as it began
    others: float  # cores busy with other processes meanwhile (the machine's less the bench's)
    sync_ms: float  # a 4 KiB write made durable in the bench's folder as it began (median)
    sync_after_ms: float  # and as it ended: a long scenario may see the disk change
    load_after: float = 0.0  # the 1-minute load average as it ended
    sync_spread: float = 1.0  # the slowest of the probes (before and after) / the fastest


def describe(folder: Path) -> dict[str, Any]:
    """The machine, and its load as the run begins."""
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": _cpuinfo("model name"),
        "memory_gib": round(_meminfo("MemTotal") / 1024**2, 1),
        "filesystem": filesystem(folder),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "load": [round(load, 2) for load in os.getloadavg()],
    }


def observed(scenario: str, folder: Path, run: Callable[[], T]) -> tuple[T, Conditions]:
    """``run()``'s result and the conditions it ran under."""
    load, probes = os.getloadavg()[0], sync_probes(folder)
    busy, own, start = machine_busy(), own_cpu(), time.perf_counter()
    result = run()
    seconds = time.perf_counter() - start
    others = max(0.0, (machine_busy() - busy - (own_cpu() - own)) / seconds)
    after, load_after = sync_probes(folder), os.getloadavg()[0]
    every = [*probes, *after]
    spread = max(every) / min(every) if min(every) > 0 else 1.0
    sync, sync_after = statistics.median(probes) * 1000, statistics.median(after) * 1000
    return result, Conditions(scenario, seconds, load, others, sync, sync_after, load_after, spread)


def sync_seconds(folder: Path) -> float:
    """Median time to write 4 KiB to a new file and fsync it, in ``folder``."""
    return statistics.median(sync_probes(folder))


def sync_probes(folder: Path) -> list[float]:
    """The times to write 4 KiB to a new file and fsync it, ``SYNC_PROBES`` times, in
    ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    path, data, times = folder / ".sync-probe", b"x" * 4096, []
    for _ in range(SYNC_PROBES):
        start = time.perf_counter()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        times.append(time.perf_counter() - start)
    path.unlink()
    return times


def sync_swing(conditions: Sequence[Conditions]) -> float:
    """How many times slower the slowest sync probe was than the fastest."""
    syncs = [ms for c in conditions for ms in (c.sync_ms, c.sync_after_ms)]
    return max(syncs) / min(syncs) if syncs and min(syncs) > 0 else 1.0


def machine_busy() -> float:
    """CPU seconds every core of the machine has spent busy since boot (``/proc/stat``)."""
    with open("/proc/stat") as stat:
        fields = [int(n) for n in stat.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / TICKS


def own_cpu() -> float:
    """CPU seconds of the bench and of every process it started and waited for."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def filesystem(folder: Path) -> str:
    """The type of the file system ``folder`` is on (the mount with the longest prefix)."""
    target, best, kind = str(folder.resolve()), "", "unknown"
    with open("/proc/mounts") as mounts:
        for line in mounts:
            _device, point, fstype, *_ = line.split()
            inside = target == point or target.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best, kind = point, fstype
    return kind


def _cpuinfo(key: str) -> str:
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith(key):
                return line.partition(":")[2].strip()
    return "unknown"


def _meminfo(key: str) -> int:
    """A ``/proc/meminfo`` figure, in KiB."""
    with open("/proc/meminfo") as info:
        for line in info:
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    return 0
