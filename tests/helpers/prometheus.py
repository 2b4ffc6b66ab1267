"""Prometheus and promtool for the tests (Debian's `prometheus` package, which
scripts/_prometheus.sh installs): found on PATH, or a skip that says how to get them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "watcher-alerts.yml"


def prometheus_tool(name: str) -> str:
    """The path of ``promtool`` or ``prometheus``; without it, a skip (a failure under
    ``.ci/run``, which sets WATCHER_TEST_REQUIRE_PROMETHEUS=1)."""
    found = shutil.which(name)
    if found:
        return found
    why = f"{name} is not installed: as root, apt-get install prometheus (scripts/test does)"
    if os.environ.get("WATCHER_TEST_REQUIRE_PROMETHEUS") == "1":
        pytest.fail(f"{why} (WATCHER_TEST_REQUIRE_PROMETHEUS=1: it may not skip)")
    pytest.skip(why)
