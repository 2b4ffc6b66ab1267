"""A format from another installed package: found by its entry point, run end to end."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from tests.helpers.builders import tracos_doc
from tests.helpers.conditions import wait_for
from tests.helpers.stores import make_settings
from tests.helpers.tiny_format import install
from tests.helpers.workers import cli, drop, names, running
from watcher.core.errors import ConfigError
from watcher.erp.registry import format_names, load_format
from watcher.sync.stats import Count

ROOT = Path(__file__).resolve().parents[2]
TINY = {"id": 5, "title": "Fix the pump", "changed": "2025-10-01T10:00:00Z", "done": True}


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The tiny format's distribution metadata on ``sys.path``, as after ``pip install``."""
    site = install(tmp_path / "site")
    monkeypatch.syspath_prepend(str(site))
    return site


def test_an_installed_format_is_listed_and_loaded(installed: Path) -> None:
    """The entry point makes ``tiny`` a format name beside the built-ins."""
    assert format_names() == ["challenge", "status", "tiny"]
    assert load_format("tiny").name == "tiny"


def test_an_unknown_format_is_a_configuration_error() -> None:
    """An unknown ERP_FORMAT names the known ones."""
    with pytest.raises(ConfigError, match=r"unknown format 'xml'; known formats: challenge, st"):
        load_format("xml")


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("tests.no_such_module:FORMAT", "format 'broken' cannot be loaded: No module named"),
        ("tests.helpers.tiny_format:NOTHING", "format 'broken' cannot be loaded: module"),
        ("tests.helpers.tiny_format:TinyOrder", "'broken' is not an ERP format"),
    ],
)
def test_a_broken_installed_format_is_a_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str, reason: str
) -> None:
    """An entry point that cannot be imported, or is no format, stops start-up in one line."""
    info = tmp_path / "broken-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[tracos_sync.erp_formats]\nbroken = {target}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match=reason):
        load_format("broken")


@pytest.mark.anyio
@pytest.mark.system
@pytest.mark.usefixtures("installed")
async def test_an_installed_format_runs_end_to_end(tmp_path: Path) -> None:
    """ERP_FORMAT=tiny: a tiny file is stored and archived; a TracOS order goes out as tiny."""
    settings = make_settings(tmp_path, erp_format="tiny")
    async with running(settings) as worker:
        drop(settings.inbound_dir, "in.json", msgspec.json.encode(TINY))
        await wait_for(lambda: names(settings.archive_dir) == ["in.json"], "the file archived")
        [stored] = await worker.store.find([5])
        assert (stored["title"], stored["status"], stored["isSynced"]) == (
            "Fix the pump",
            "completed",
            True,
        )
        await worker.store.put_documents([tracos_doc(6, status="on_hold")])
        await wait_for(lambda: worker.stats.counters[Count.EXPORTED] == 1, "order 6 exported")
    sent = json.loads((settings.outbound_dir / "wo-6.json").read_bytes())
    assert sent == {
        "id": 6,
        "title": "Example workorder #6",
        "changed": "2025-10-01T01:04:29.045000+00:00",
        "done": False,
    }
    assert names(settings.outbound_dir) == ["wo-6.json"]


@pytest.mark.system
def test_the_command_finds_an_installed_format(installed: Path, tmp_path: Path) -> None:
    """`watcher once` in a fresh process with the package installed: the file is taken."""
    settings = make_settings(tmp_path)
    drop(settings.inbound_dir, "in.json", msgspec.json.encode(TINY))
    env = {"ERP_FORMAT": "tiny", "PYTHONPATH": f"{installed}:{ROOT}"}
    cli(settings, "once", env=env)
    assert names(settings.archive_dir) == ["in.json"]
    shown = json.loads(cli(settings, "show", "5", env=env).stdout)
    assert [(d["number"], d["status"]) for d in shown] == [(5, "completed")]


@pytest.mark.system
def test_an_unknown_format_stops_the_command_in_one_line(tmp_path: Path) -> None:
    """ERP_FORMAT=xml: exit 2 and one line naming the known formats."""
    result = cli(make_settings(tmp_path), "run", check=False, env={"ERP_FORMAT": "xml"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "watcher: configuration error: ERP_FORMAT: unknown format 'xml';"
        " known formats: challenge, status"
    ]
