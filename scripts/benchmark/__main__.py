"""``python -m benchmark`` (with ``scripts/`` on the path, as ``./scripts/bench`` runs it).

Exit status: 0 all targets met (a tiny run: every scenario ran), 1 a target failed, 2 the
benchmark itself could not run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from functools import partial
from pathlib import Path

import msgspec

from . import __doc__ as summary
from .machine import Conditions, describe, observed
from .report import Row, exit_status, print_report
from .scales import SCALES, Sizes
from .scenarios import SCENARIOS
from .worker import BenchError


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/bench", description=summary.splitlines()[0] if summary else None
    )
    parser.add_argument(
        "--scale",
        choices=SCALES,
        default="full",
        help="full: the service levels' sizes (default); quick: a smoke check (~30 s quiet);"
        " tiny: every scenario at a few dozen files, shown but not judged (what CI runs)",
    )
    parser.add_argument(
        "--quick", action="store_const", const="quick", dest="scale", help="--scale quick"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    parser.add_argument(
        "--only",
        action="append",
        choices=SCENARIOS,
        metavar="NAME",
        help=f"run only this scenario (again for more): {', '.join(SCENARIOS)}",
    )
    return parser.parse_args(argv)


def run(names: Sequence[str], sizes: Sizes, temp: Path) -> tuple[list[Row], list[Conditions]]:
    """Every scenario named, in turn, each in its own folder under ``temp``."""
    rows: list[Row] = []
    conditions: list[Conditions] = []
    for name in names:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        scenario = partial(SCENARIOS[name], sizes, temp / name)
        found, under = observed(name, temp / ".probe", scenario)
        rows += found
        conditions.append(under)
    return rows, conditions


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    names = [name for name in SCENARIOS if not args.only or name in args.only]
    sizes = SCALES[args.scale]
    try:
        with tempfile.TemporaryDirectory(prefix="watcher-bench-") as temp:
            info = describe(Path(temp))
            rows, conditions = run(names, sizes, Path(temp))
            info["load_end"] = [round(load, 2) for load in os.getloadavg()]
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    print_report(info, rows, conditions, args.scale, sizes.judged)
    if args.json:
        result = {
            "machine": info,
            "scale": args.scale,
            "sizes": asdict(sizes),
            "conditions": [asdict(c) for c in conditions],
            "rows": [asdict(r) for r in rows],
        }
        args.json.write_bytes(msgspec.json.format(msgspec.json.encode(result), indent=2))
    return exit_status(rows, sizes.judged)


if __name__ == "__main__":
    raise SystemExit(main())
