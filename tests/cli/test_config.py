"""`watcher config`: the effective settings, where each came from, secrets masked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

SECRET = "s3cret-pa55word"


def config(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    plain = {k: v for k, v in os.environ.items() if not k.startswith(("MONGO_", "HTTP_"))}
    return subprocess.run(
        [sys.executable, "-m", "watcher", "config", *args],
        cwd=cwd,
        env={**plain, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )


def test_each_setting_says_where_it_came_from(tmp_path: Path) -> None:
    """default, the .env file, the environment (which wins) and a *_FILE secret."""
    (tmp_path / ".env").write_text(
        f"MONGO_URI=mongodb://u:{SECRET}@db:27017/?replicaSet=rs0\nLOG_LEVEL=debug\n"
        "INBOUND_BATCH_SIZE=50\n"
    )
    (tmp_path / "token").write_text(f"{SECRET}-token\n")
    shown = json.loads(
        config(
            tmp_path, "--json", INBOUND_BATCH_SIZE="70", HTTP_TOKEN_FILE=str(tmp_path / "token")
        ).stdout
    )
    rows: dict[str, Any] = shown
    assert rows["MONGO_URI"] == {
        "value": "mongodb://u:***@db:27017/?replicaSet=rs0",
        "source": ".env",
    }
    assert rows["LOG_LEVEL"] == {"value": "DEBUG", "source": ".env"}
    assert rows["INBOUND_BATCH_SIZE"] == {"value": 70, "source": "environment"}
    assert rows["HTTP_TOKEN"] == {"value": "***", "source": f"HTTP_TOKEN_FILE {tmp_path / 'token'}"}
    assert rows["MONGO_COLLECTION"] == {"value": "workorders", "source": "default"}
    assert rows["METRICS_PORT"] == {"value": None, "source": "default"}


def test_the_text_form_masks_secrets_too(tmp_path: Path) -> None:
    """One line a setting; neither the password nor the token appears anywhere."""
    out = config(
        tmp_path,
        MONGO_URI=f"mongodb://u:{SECRET}@db/?replicaSet=rs0",
        HTTP_TOKEN=f"{SECRET}-token",
    ).stdout
    assert SECRET not in out
    lines = out.splitlines()
    assert "MONGO_URI                 mongodb://u:***@db/?replicaSet=rs0  (environment)" in lines
    assert any(line.startswith("HTTP_TOKEN ") and "***  (environment)" in line for line in lines)
    assert any(line.startswith("METRICS_PORT ") and "(unset)  (default)" in line for line in lines)
