"""What a run ran on: the machine, as the report's header and the JSON record show it."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from typing import Any


def describe() -> dict[str, Any]:
    """The machine."""
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": _cpuinfo("model name"),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _cpuinfo(key: str) -> str:
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith(key):
                return line.partition(":")[2].strip()
    return "unknown"
