"""Field drift: keys the ERP sends that the format does not know are reported (not stored)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from tests.helpers.builders import erp
from tests.helpers.conditions import wait_for
from tests.helpers.workers import cli, drop, running
from watcher.core.settings import Settings
from watcher.erp.formats.challenge import FORMAT as CHALLENGE
from watcher.observe.status_report import gather_status, status_lines
from watcher.sync.drift import known_keys, unknown_keys

pytestmark = pytest.mark.anyio


def test_unknown_keys_are_those_the_formats_schema_does_not_name() -> None:
    """A single order and a batch alike; broken JSON has none."""
    known = known_keys(CHALLENGE.schema("inbound"))
    assert {"orderNo", "lastUpdateDate", "isActive"} <= known
    single = json.dumps(erp(priority=2)).encode()
    batch = json.dumps([erp(), erp(priority=1, site="B")]).encode()
    assert unknown_keys(single, known) == {"priority"}
    assert unknown_keys(batch, known) == {"priority", "site"}
    assert unknown_keys(b"{broken", known) == set()


async def test_a_new_key_is_counted_shown_in_status_and_journalled(settings: Settings) -> None:
    """The ERP starts sending `priority`: stored as before, and visible with when and where."""
    async with running(settings) as worker:
        drop(settings.inbound_dir, "4.json", json.dumps(erp(orderNo=4, priority="high")).encode())
        await wait_for(lambda: "priority" in worker.stats.drift, "priority noticed")
        seen = worker.stats.drift["priority"]
        assert (seen.files, seen.example_order) == (1, 4)

        def shown() -> bool:
            report = gather_status(settings, None, None, datetime.now(UTC))
            return "priority" in report["field_drift"]

        await wait_for(shown, "in watcher status")
        lines = status_lines(gather_status(settings, None, None, datetime.now(UTC)))
        [said] = [line for line in lines if "ERP key 'priority' not in the format" in line]
        moment = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"  # as every command prints one
        assert re.search(f"first {moment}, last {moment},", said), said
        await wait_for(lambda: "field_drift" in cli(settings, "history", "4").stdout, "journalled")
    [doc] = json.loads(cli(settings, "show", "4").stdout)
    assert "priority" not in doc


def drift_events(settings: Settings, *numbers: int) -> list[dict[str, object]]:
    story = [
        e for n in numbers for e in json.loads(cli(settings, "history", str(n), "--json").stdout)
    ]
    return [entry for entry in story if entry["event"] == "field_drift"]


def ledger_files(settings: Settings, key: str) -> int:
    report = gather_status(settings, None, None, datetime.now(UTC))
    seen = report["field_drift"].get(key)
    return int(seen["files"]) if seen else 0


async def test_a_key_first_seen_is_announced_once_across_restarts(settings: Settings) -> None:
    """The first time `priority` comes in the product's life: one journal event; a restart
    that sees it again announces nothing, and status (no worker running) still shows when
    it was first and last seen and in which file."""
    first_file = json.dumps(erp(orderNo=4, priority="high")).encode()
    async with running(settings) as worker:
        drop(settings.inbound_dir, "4.json", first_file)
        await wait_for(lambda: ledger_files(settings, "priority") == 1, "kept in the ledger")
        first = worker.stats.drift["priority"].first
    async with running(settings) as worker:
        drop(settings.inbound_dir, "5.json", json.dumps(erp(orderNo=5, priority=1)).encode())
        await wait_for(lambda: ledger_files(settings, "priority") == 2, "seen again")
        assert worker.stats.drift["priority"].first == first  # as first seen, in any run
    [event] = drift_events(settings, 4, 5)
    assert (event["number"], event["file"]) == (4, "4.json")
    seen = gather_status(settings, None, None, datetime.now(UTC))["field_drift"]["priority"]
    assert (seen["first"], seen["example_order"], seen["example_file"]) == (first, 4, "4.json")
    assert seen["last"] > first
    lines = status_lines(gather_status(settings, None, None, datetime.now(UTC)))
    assert any("e.g. order 4 in 4.json" in line for line in lines)
