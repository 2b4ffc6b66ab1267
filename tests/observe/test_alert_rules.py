"""The shipped alert rules are valid and fire when they should (``promtool test rules``)."""

from __future__ import annotations

import subprocess

import yaml

from tests.helpers.prometheus import RULES, prometheus_tool

WANTED = {
    "WatcherDown",
    "WatcherHeartbeatStale",
    "WatcherStoreUnreachable",
    "WatcherStreamNotProgressing",
    "WatcherInboundLagRising",
    "WatcherOutboundLagRising",
    "WatcherFailuresRising",
    "WatcherUnexportableOrders",
    "WatcherDiskNearlyFull",
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [prometheus_tool("promtool"), *args],
        cwd=RULES.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_rules_pass_promtool_check() -> None:
    """promtool accepts the rule file."""
    checked = promtool("check", "rules", RULES.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(WANTED)} rules found" in checked.stdout


def test_every_alert_has_a_unit_test_that_passes() -> None:
    """Each alert is named in the promtool unit tests, which all pass."""
    tests = RULES.with_name("watcher-alerts.test.yml")
    rules = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    assert {rule["alert"] for rule in rules} == WANTED
    cases = yaml.safe_load(tests.read_text())["tests"]
    tested = {check["alertname"] for case in cases for check in case["alert_rule_test"]}
    assert tested == WANTED
    ran = promtool("test", "rules", tests.name)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "SUCCESS" in ran.stdout


def test_ci_installs_prometheus_and_may_not_skip() -> None:
    """scripts/test installs the prometheus package (as the MongoDB test server), and
    .ci/run turns a missing promtool or Prometheus into a failure."""
    root = RULES.parents[2]
    assert "source scripts/_prometheus.sh" in (root / "scripts" / "test").read_text()
    assert "apt-get install" in (root / "scripts" / "_prometheus.sh").read_text()
    assert "WATCHER_TEST_REQUIRE_PROMETHEUS=1" in (root / ".ci" / "run").read_text()
