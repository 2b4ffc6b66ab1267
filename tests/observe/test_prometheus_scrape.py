"""A real Prometheus (Debian's package) scrapes a live worker on MongoDB and evaluates the
shipped alert rules: the store-outage alert fires while the server is down, clears after."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.conditions import wait_until
from tests.helpers.mongo_server import MongoServer
from tests.helpers.prometheus import RULES, prometheus_tool
from tests.helpers.stores import make_settings, unique_collection
from tests.helpers.workers import free_port, worker

pytestmark = pytest.mark.system
DEADLINE = 60.0


def api(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/{path}", timeout=5) as answer:
        return json.load(answer)["data"]


def alert_states(port: int) -> dict[str, str]:
    """Alert name → state (pending, firing) of the alerts Prometheus has now."""
    try:
        return {a["labels"]["alertname"]: a["state"] for a in api(port, "alerts")["alerts"]}
    except OSError:
        return {}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[MongoServer]:
    own = MongoServer(storage=str(tmp_path / "mongo-data"), sync_on_commit=True).start()
    yield own
    own.stop()


@contextmanager
def prometheus(folder: Path, target: int) -> Iterator[int]:
    """Prometheus on loopback scraping ``target`` every second with the shipped rules, their
    ``for:`` shortened so that the test waits seconds, not minutes; yields its port."""
    binary, port = prometheus_tool("prometheus"), free_port()
    rules, config = folder / "rules.yml", folder / "prometheus.yml"
    rules.write_text(re.sub(r"for: \d+m", "for: 2s", RULES.read_text()))
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: [{rules}]\n"
        "scrape_configs:\n"
        f"  - job_name: watcher\n    static_configs: [{{targets: ['127.0.0.1:{target}']}}]\n"
    )
    command = [binary, f"--config.file={config}", f"--storage.tsdb.path={folder / 'tsdb'}",
               f"--web.listen-address=127.0.0.1:{port}"]  # fmt: skip
    with (folder / "prometheus.log").open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield port
        finally:
            process.terminate()
            process.wait(timeout=30)


def test_a_store_outage_fires_the_alert_and_clears_it(tmp_path: Path, server: MongoServer) -> None:
    """Scraped by Prometheus: store up → no alert; server killed → WatcherStoreUnreachable
    fires; server back → it clears (Prometheus' own alerts API says so)."""
    settings = make_settings(
        tmp_path / "worker",
        mongo_uri=server.uri,
        mongo_database="watcher_tests",
        mongo_collection=unique_collection(),
    )
    metrics, log = free_port(), tmp_path / "worker.log"
    with (
        worker(settings, log, METRICS_PORT=str(metrics), STORE_RETRY_MAX_SECONDS="0.5"),
        prometheus(tmp_path, metrics) as port,
    ):
        wait_until(lambda: _value(port, "watcher_store_up") == "1", "scraped, store up", DEADLINE)
        assert "WatcherStoreUnreachable" not in alert_states(port)
        server.kill()
        wait_until(
            lambda: alert_states(port).get("WatcherStoreUnreachable") == "firing",
            "the alert firing",
            DEADLINE,
        )
        print("during the outage:", json.dumps(api(port, "alerts")))
        server.start()
        wait_until(
            lambda: "WatcherStoreUnreachable" not in alert_states(port),
            "the alert cleared",
            DEADLINE,
        )
        print("after it:", json.dumps(api(port, "alerts")))


def _value(port: int, query: str) -> str | None:
    try:
        result = api(port, f"query?query={query}")["result"]
    except OSError:
        return None
    return str(result[0]["value"][1]) if result else None
