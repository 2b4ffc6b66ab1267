"""What the worker is timed doing, each scenario beside its floor timed the same way; in
the order a run takes them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Final

from ..report import Row
from ..scales import Sizes
from .console import bench_console
from .inbound import bench_batch, bench_burst, bench_once, bench_steady
from .journal import bench_journal
from .outbound import bench_outbound
from .startup import bench_startup
from .sweep import bench_sweep

Scenario = Callable[[Sizes, Path], list[Row]]

SCENARIOS: Final[dict[str, Scenario]] = {
    "start-up": bench_startup,
    "burst (once)": bench_once,
    "burst": bench_burst,
    "batch": bench_batch,
    "steady": bench_steady,
    "outbound": bench_outbound,
    "sweep": bench_sweep,
    "journal": bench_journal,
    "console": bench_console,
}
