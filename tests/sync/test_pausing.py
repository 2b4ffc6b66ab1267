"""``watcher pause|resume inbound|outbound``: one direction takes no new work, the other
goes on; the pause is a marker in the state folder, so it outlives restarts."""

from __future__ import annotations

import json

import pytest

from tests.helpers.builders import tracos_doc
from tests.helpers.conditions import wait_for
from tests.helpers.workers import challenge_files, cli, drop, names, opened_store, running
from watcher.core.settings import Settings
from watcher.sync.pausing import marker, pause, resume
from watcher.sync.stats import Count

pytestmark = pytest.mark.anyio


async def put_tracos(settings: Settings, number: int) -> None:
    async with opened_store(settings) as store:
        await store.put_documents([tracos_doc(number)])


async def test_paused_inbound_leaves_files_while_outbound_goes_on(settings: Settings) -> None:
    """Inbound paused: a file waits while an order is exported; resumed, the file is taken."""
    pause(settings.state_dir, "inbound")
    name, data = next(iter(challenge_files(1).items()))
    drop(settings.inbound_dir, name, data)
    await put_tracos(settings, 900)
    async with running(settings) as worker:
        await wait_for(lambda: names(settings.outbound_dir, ".json") != [], "the export")
        assert names(settings.inbound_dir) == [name]
        assert worker.stats.counters[Count.FILES_SEEN] == 0
        assert worker.stats.snapshot(worker.stats.started).paused == {"inbound"}
        resume(settings.state_dir, "inbound")
        await wait_for(lambda: names(settings.inbound_dir) == [], "the file taken after resume")
        await wait_for(lambda: not worker.stats.pauses.held, "the resume seen")


async def test_paused_outbound_holds_exports_while_inbound_goes_on(settings: Settings) -> None:
    """Outbound paused (while running): a change waits while files are taken; resumed, it
    is exported."""
    async with running(settings) as worker:
        pause(settings.state_dir, "outbound")
        await wait_for(lambda: worker.stats.pauses.holds("outbound"), "the pause seen")
        await put_tracos(settings, 901)
        for name, data in challenge_files(2).items():
            drop(settings.inbound_dir, name, data)
        await wait_for(lambda: worker.stats.counters[Count.FILES_SEEN] == 2, "files taken")
        taken = worker.stats.counts_at
        # the store's counts, asked every 2 s, still show the change unsynced long after
        # the trigger (which wakes at the inbound commit) would have exported it
        await wait_for(
            lambda: worker.stats.counts_at != taken and worker.stats.unsynced == 1,
            "the change counted as unsynced",
        )
        assert names(settings.outbound_dir, ".json") == []
        resume(settings.state_dir, "outbound")
        await wait_for(lambda: names(settings.outbound_dir, ".json") != [], "the export")


def test_a_pause_outlives_restarts_until_resumed(settings: Settings) -> None:
    """``pause`` → ``status`` says so and ``once`` leaves the files; ``resume`` → taken."""
    name, data = next(iter(challenge_files(1).items()))
    drop(settings.inbound_dir, name, data)
    assert "inbound paused" in cli(settings, "pause", "inbound").stdout
    assert marker(settings.state_dir, "inbound").exists()
    assert json.loads(cli(settings, "status", "--json").stdout)["paused"] == ["inbound"]
    cli(settings, "once")
    assert names(settings.inbound_dir) == [name]
    assert "was already paused" in cli(settings, "pause", "inbound").stdout
    assert "inbound resumed" in cli(settings, "resume", "inbound").stdout
    assert json.loads(cli(settings, "status", "--json").stdout)["paused"] == []
    cli(settings, "once")
    assert names(settings.inbound_dir) == []


def test_a_direction_must_be_named(settings: Settings) -> None:
    """``pause`` without a known direction is a usage error."""
    assert cli(settings, "pause", "sideways", check=False).returncode == 2
