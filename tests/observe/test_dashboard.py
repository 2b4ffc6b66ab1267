"""The shipped dashboard and alert rules ask only for metrics a live worker really exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.helpers.conditions import wait_until
from tests.helpers.prometheus import RULES
from tests.helpers.workers import free_port, http_get, worker
from watcher.core.settings import Settings

DASHBOARD = RULES.parents[1] / "grafana" / "watcher-dashboard.json"
NAME = re.compile(r"\bwatcher_[a-z_]+\b")


def queries() -> dict[str, str]:
    """Every PromQL expression shipped: the dashboard's targets and the alert rules."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    found = {f"panel {p['title']!r}": t["expr"] for p in panels for t in p["targets"]}
    for number, expr in enumerate(re.findall(r"expr: (.+(?:\n {10}.+)*)", RULES.read_text())):
        found[f"rule {number}"] = expr
    return found


def test_every_shipped_query_names_an_exported_metric(settings: Settings, tmp_path: Path) -> None:
    """A live worker's /metrics holds every series the dashboard and the rules name."""
    port, log = free_port(), tmp_path / "worker.log"
    with worker(settings, log, METRICS_PORT=str(port)):
        ready = ("watcher_sweeps_total 1.0", "watcher_folder_free_bytes{", "progress_timestamp")
        wait_until(
            lambda: all(part in http_get(port, "/metrics")[1] for part in ready),
            "a full scrape",
        )
        scraped = http_get(port, "/metrics")[1]
    series = {line.split("{")[0].split(" ")[0] for line in scraped.splitlines() if line[:1] != "#"}
    asked = {name: where for where, expr in queries().items() for name in NAME.findall(expr)}
    assert len(asked) >= 20
    missing = {name: where for name, where in asked.items() if name not in series}
    assert not missing, f"not exported by the worker: {missing}"
