"""How big each scenario is: the full run (the service levels' sizes), a quick smoke run,
and a tiny run that only proves every scenario still works (CI runs it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Sizes:
    burst_files: int = 10_000
    batch_orders: int = 100_000
    steady_seconds: float = 20.0
    steady_rate: float = 100.0
    out_seconds: float = 10.0
    out_rate: float = 10.0
    out_burst: int = 10_000
    idle_seconds: float = 10.0
    warmup_seconds: float = 3.0
    startup_runs: int = 20
    startup_documents: int = 1_000  # beside the worker that `status` and `health` look at
    sweep_small: int = 100_000
    sweep_large: int = 1_000_000
    journal_pairs: int = 3
    console_bad: int = 2_000  # files of the bad-input corpus, beside
    console_good: int = 10_000  # one-order files, in the console's drop
    console_pairs: int = 3  # alternating console on/off runs
    judged: bool = True  # False: too small for a ratio to mean anything; shown, not judged


SCALES: Final = {
    "full": Sizes(),
    "quick": Sizes(
        burst_files=1_000,
        batch_orders=10_000,
        steady_seconds=5.0,
        out_seconds=3.0,
        out_burst=1_000,
        idle_seconds=3.0,
        warmup_seconds=1.0,
        startup_runs=7,
        sweep_small=5_000,
        sweep_large=50_000,
        journal_pairs=1,
        console_bad=200,
        console_good=1_000,
        console_pairs=1,
    ),
    "tiny": Sizes(
        burst_files=50,
        batch_orders=500,
        steady_seconds=0.25,
        steady_rate=40.0,
        out_seconds=0.5,
        out_rate=20.0,
        out_burst=50,
        idle_seconds=0.3,
        warmup_seconds=0.2,
        startup_runs=1,
        startup_documents=50,
        sweep_small=50,
        sweep_large=200,
        journal_pairs=1,
        console_bad=10,
        console_good=20,
        console_pairs=1,
        judged=False,
    ),
}
