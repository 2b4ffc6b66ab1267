"""`watcher resend` and `watcher replay` repair through the worker (docs/agreement.md)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from tests.helpers.builders import T0, erp, tracos_doc
from tests.helpers.workers import cli, drop
from watcher.core.settings import Settings

pytestmark = pytest.mark.system


def test_resend_makes_the_worker_write_an_order_again(any_settings: Settings) -> None:
    """A tampered outbound file is repaired by resending its order; --dry-run changes
    nothing; no selection is a one-line error."""
    settings = any_settings
    cli(settings, "seed", "--tracos", "3", "--erp", "0")
    cli(settings, "once")
    file = settings.outbound_dir / "2.json"
    file.write_text(file.read_text().replace("Example workorder #2", "tampered"))
    assert cli(settings, "verify", check=False).returncode == 1
    dry = cli(settings, "resend", "--all", "--dry-run").stdout
    assert "would resend order 2" in dry and "would resend 3 orders" in dry
    assert cli(settings, "resend", "2").stdout.startswith("resent 1 orders")
    cli(settings, "once")
    assert cli(settings, "verify").returncode == 0
    assert "resend" in cli(settings, "history", "2").stdout
    refused = cli(settings, "resend", check=False)
    assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1


def test_replay_applies_an_archived_file_again_newer_wins(
    any_settings: Settings, tmp_path: Path
) -> None:
    """Order 5 from the ERP, then TracOS puts an older version over it: replay --dry-run
    says it would update (a conflict), replay brings the ERP's version back."""
    settings = any_settings
    sent = erp(orderNo=5, summary="the ERP's", lastUpdateDate=(T0 + timedelta(hours=2)).isoformat())
    drop(settings.inbound_dir, "5.json", json.dumps(sent).encode())
    cli(settings, "once")
    older = [tracos_doc(5, title="TracOS's", updatedAt=T0 + timedelta(hours=1))]
    (tmp_path / "older.json").write_text(json.dumps(older, default=lambda d: d.isoformat()))
    cli(settings, "put", str(tmp_path / "older.json"), "--force")
    dry = cli(settings, "replay", "5.json", "--dry-run").stdout
    assert "5.json: order 5: conflict (updated)" in dry
    cli(settings, "replay", "5.json")
    cli(settings, "once")
    [doc] = json.loads(cli(settings, "show", "5").stdout)
    assert doc["title"] == "the ERP's"
    assert "conflict" in cli(settings, "conflicts").stdout


def test_replay_never_copies_through_a_link_in_the_archive(settings: Settings) -> None:
    """A link planted in the archive is refused by name, whatever it points at."""
    secret = settings.archive_dir.parent / "outside.json"
    secret.write_text(json.dumps(erp(orderNo=9)))
    settings.archive_dir.mkdir(parents=True)
    (settings.archive_dir / "evil.json").symlink_to(secret)
    refused = cli(settings, "replay", "evil.json", check=False)
    assert refused.returncode == 1
    assert "evil.json" in refused.stderr
    assert not settings.inbound_dir.exists() or list(settings.inbound_dir.iterdir()) == []
