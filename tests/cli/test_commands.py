"""Commands that must not surprise: seed and put never replace what they should not, and
argument or input errors are one line (subprocesses, real folders, both stores)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.builders import T0, erp, tracos_doc
from tests.helpers.workers import cli, drop, env_for, names
from watcher.core.settings import Settings
from watcher.erp.registry import load_format

pytestmark = pytest.mark.system


def show(settings: Settings) -> dict[int, dict[str, Any]]:
    return {doc["number"]: doc for doc in json.loads(cli(settings, "show").stdout)}


def put(settings: Settings, docs: object, *args: str) -> subprocess.CompletedProcess[str]:
    """``watcher put -`` with ``docs`` as JSON on stdin."""
    return subprocess.run(
        [sys.executable, "-m", "watcher", "put", "-", *args],
        check=False,
        input=json.dumps(docs, default=lambda value: value.isoformat()),
        env=env_for(settings),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_seed_keeps_real_orders_unless_forced(any_settings: Settings) -> None:
    """Seed writes only numbers not stored yet; ``--force`` replaces and says how many."""
    settings = any_settings
    put(settings, [tracos_doc(2, title="Real order", updatedAt=T0.isoformat())])
    real = show(settings)[2]
    result = cli(settings, "seed", "--tracos", "3", "--erp", "0")
    assert "seeded 2 TracOS documents" in result.stdout
    assert "kept 1 stored orders with those numbers (--force replaces them)" in result.stdout
    assert show(settings)[2] == real
    forced = cli(settings, "seed", "--tracos", "3", "--erp", "0", "--force")
    assert "seeded 3 TracOS documents (3 replaced)" in forced.stdout
    assert show(settings)[2]["title"] == "Example workorder #2"


def test_seed_keeps_waiting_erp_files_unless_forced(settings: Settings) -> None:
    """An ERP file of the same name already waiting in inbound is not overwritten."""
    settings.inbound_dir.mkdir(parents=True)
    (settings.inbound_dir / "1.json").write_text("the ERP's own")
    result = cli(settings, "seed", "--tracos", "0", "--erp", "2")
    assert "1 ERP files" in result.stdout and "kept 1 waiting ERP files" in result.stdout
    assert (settings.inbound_dir / "1.json").read_text() == "the ERP's own"
    cli(settings, "seed", "--tracos", "0", "--erp", "2", "--force")
    assert (settings.inbound_dir / "1.json").read_text() != "the ERP's own"


@pytest.mark.parametrize("option", ["--tracos", "--erp"])
def test_seed_refuses_a_negative_count_in_one_line(settings: Settings, option: str) -> None:
    """``--erp -1`` is one line and exit 2, and nothing is written."""
    result = cli(settings, "seed", option, "-1", check=False)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"watcher seed: error: argument {option}: must be 0 or more, not -1"
        " (see watcher seed --help)"
    ]
    assert not settings.state_dir.exists() and not settings.inbound_dir.exists()


def test_put_is_newer_wins_unless_forced(any_settings: Settings) -> None:
    """put inserts, replaces older documents, skips the not newer; --force replaces all."""
    settings = any_settings
    first = [tracos_doc(n, updatedAt="2025-10-01T01:00:00Z") for n in (1, 2)]
    assert "put 2 TracOS documents" in put(settings, first).stdout
    second = [
        tracos_doc(1, title="Newer", updatedAt="2025-10-01T02:00:00+02:00"),  # 00:00 UTC: older
        tracos_doc(2, title="Newer", updatedAt="2025-10-01T01:00:00.001Z"),
        tracos_doc(3, title="New", updatedAt="2025-10-01T01:00:00Z", isSynced=True),
    ]
    result = put(settings, second)
    assert result.stdout.strip().endswith(": 1 inserted, 1 replaced, 1 skipped as not newer")
    docs = show(settings)
    assert [docs[n]["title"] for n in (1, 2, 3)] == ["Example workorder #1", "Newer", "New"]
    assert docs[2]["updatedAt"] in ("2025-10-01T01:00:00.001000Z", "2025-10-01T01:00:00.001Z")
    assert "isSynced" not in docs[2] and docs[3]["isSynced"] is True
    assert "1 replaced" in put(settings, second[:1], "--force").stdout
    assert show(settings)[1]["title"] == "Newer"


def test_a_bad_document_is_one_line_and_nothing_is_written(settings: Settings) -> None:
    """A bad document: one line naming its index and field, exit 1; no store is made."""
    result = put(settings, [tracos_doc(1), tracos_doc(2, updatedAt="2025-10-01")])
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "watcher: put: document 1, field updatedAt: Invalid RFC3339 encoded datetime;"
        " nothing written"
    ]
    assert not settings.sqlite_path.exists()


def test_put_reads_a_file_and_says_when_it_cannot(settings: Settings, tmp_path: Path) -> None:
    """``watcher put FILE`` reads the file; a missing one is one line, exit 1."""
    given = tmp_path / "docs.json"
    given.write_text(
        json.dumps(
            [tracos_doc(5, createdAt="2025-10-01T00:00:00Z", updatedAt="2025-10-01T01:00:00Z")]
        )
    )
    assert "1 inserted" in cli(settings, "put", str(given)).stdout
    assert list(show(settings)) == [5]
    missing = cli(settings, "put", str(tmp_path / "nope.json"), check=False)
    assert missing.returncode == 1
    assert missing.stderr.splitlines() == [
        f"watcher: put: cannot read {tmp_path / 'nope.json'}: No such file or directory"
    ]


def test_put_documents_are_exported_by_once(any_settings: Settings) -> None:
    """What put writes without ``isSynced`` goes out like any TracOS change."""
    put(any_settings, [tracos_doc(8, updatedAt="2025-10-01T01:00:00Z", createdAt=T0.isoformat())])
    cli(any_settings, "once")
    assert names(any_settings.outbound_dir) == ["8.json"]


def test_once_ends_with_one_summary_line(any_settings: Settings) -> None:
    """Files archived / failed, orders by outcome, exported, unexportable; no "watching"."""
    settings = any_settings
    for number in (1, 2):
        drop(settings.inbound_dir, f"{number}.json", json.dumps(erp(orderNo=number)).encode())
    drop(settings.inbound_dir, "batch.json", json.dumps([erp(orderNo=3), {"orderNo": 4}]).encode())
    drop(settings.inbound_dir, "bad.json", b"12")
    dated = {"createdAt": T0, "updatedAt": T0}
    put(settings, [tracos_doc(n, **dated) for n in (5, 6)] + [tracos_doc(7, status="x", **dated)])
    result = cli(settings, "once", env={"LOG_LEVEL": "DEBUG"})
    lines = result.stderr.strip().splitlines()
    orders = "0 updated, 0 unchanged, 0 stale"
    assert lines[-1].endswith(
        f" INFO    once: files 3 archived, 2 failed; orders 3 inserted, {orders};"
        " 2 exported, 1 unexportable"
    )
    assert "watching" not in result.stderr
    assert any(line.endswith("DEBUG   exported orders 5, 6") for line in lines)
    again = cli(settings, "once").stderr.strip().splitlines()
    assert again[-1].endswith(
        f" once: files 0 archived, 0 failed; orders 0 inserted, {orders};"
        " 0 exported, 1 unexportable"
    )


def test_once_with_nothing_waiting_says_so(settings: Settings) -> None:
    """A cron user can tell "nothing to do" from "did nothing"."""
    line = cli(settings, "once").stderr.strip().splitlines()[-1]
    assert " once: nothing to do; files 0 archived, 0 failed;" in line


@pytest.mark.parametrize("erp_format", ["challenge", "status"])
def test_schema_prints_the_configured_formats_json_schema(
    settings: Settings, erp_format: str
) -> None:
    """`watcher schema` is the ERP_FORMAT's inbound schema; --outbound the files written."""
    env = {"ERP_FORMAT": erp_format}
    inbound = json.loads(cli(settings, "schema", env=env).stdout)
    assert inbound == load_format(erp_format).schema("inbound")
    [order] = inbound["$defs"].values()
    assert order["properties"]["lastUpdateDate"] == {"type": "string", "format": "date-time"}
    outbound = json.loads(cli(settings, "schema", "--outbound", env=env).stdout)
    assert outbound == load_format(erp_format).schema("outbound")
    if erp_format == "status":
        assert "IN_PROGRESS" in order["properties"]["status"]["enum"]
    assert not settings.state_dir.exists()
