"""Field drift: keys the ERP sends that the format does not know are reported (not stored)."""

from __future__ import annotations

import json
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
        assert any("ERP key 'priority' not in the format" in line for line in lines)
        await wait_for(lambda: "field_drift" in cli(settings, "history", "4").stdout, "journalled")
    [doc] = json.loads(cli(settings, "show", "4").stdout)
    assert "priority" not in doc
