"""What the live console costs: the same drop handled by ``watcher run`` with its console
open and with ``--no-console``, both on a pseudo-terminal read as fast as it is written
(``scripts/console_cost.py``'s mechanism), in alternating pairs, the medians deciding."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Final

import console_cost

from ..report import Row
from ..scales import Sizes

CONSOLE_TARGET: Final = 1.1  # console on / off


def bench_console(sizes: Sizes, root: Path) -> list[Row]:
    """``sizes.console_bad`` files of the bad-input corpus and ``sizes.console_good``
    one-order files, shuffled, renamed in at once; from the first rename to the last file
    filed away (archived or quarantined), by the files' ctimes; and the worker's CPU."""
    files = console_cost.payloads(sizes.console_bad, sizes.console_good)
    seconds: dict[bool, list[float]] = {True: [], False: []}
    cpu: dict[bool, list[float]] = {True: [], False: []}
    written = []
    for pair in range(sizes.console_pairs):
        for console in (True, False) if pair % 2 == 0 else (False, True):
            taken, used, wrote = console_cost.one_run(files, console, on_pty=True)
            seconds[console].append(taken)
            cpu[console].append(used)
            if console:
                written.append(wrote)
    on, off = (statistics.median(seconds[side]) for side in (True, False))
    count = len(files)
    rate = Row("console", "throughput", count / on, "files/s", "", None)
    rate.floor, rate.ratio = count / off, on / off
    rate.target, rate.passed = f"ratio <= {CONSOLE_TARGET:g}", on / off <= CONSOLE_TARGET
    rate.note = (
        f"{sizes.console_bad:,} bad + {sizes.console_good:,} good files renamed in at once;"
        " watcher run with the console open (floor column: --no-console), both on a"
        f" pseudo-terminal; median of {sizes.console_pairs} alternating pairs; until all"
        f" filed away; the console wrote {statistics.median(written) / 1024:,.0f} KiB"
    )
    on_cpu, off_cpu = (statistics.median(cpu[side]) for side in (True, False))
    busy = Row("console", "worker CPU", on_cpu, "s", "", None, off_cpu, on_cpu / off_cpu)
    busy.note = rate.note
    return [rate, busy]
