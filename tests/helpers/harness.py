"""Inputs with known expected results, and invariant checks, for the crash and two-worker suites."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from random import Random
from typing import Any, TextIO

from tests.helpers.builders import erp
from tests.helpers.workers import env_for, stored_docs
from watcher.core.settings import Settings
from watcher.core.tracos import normalise_date, read_tracos
from watcher.erp.formats.challenge import FORMAT as CHALLENGE
from watcher.observe.heartbeat import read_worker_status

BASE = datetime(2025, 10, 1, tzinfo=UTC)
TRACOS_FIRST = 100_000  # TracOS-side numbers, apart from the ERP's so both can be checked


@dataclass
class Inputs:
    """Everything dropped so far and what the store must end up holding."""

    dropped: Counter[bytes] = field(default_factory=Counter)
    newest: dict[int, tuple[datetime, str]] = field(default_factory=dict)
    files: int = 0

    def order(self, rng: Random, number: int) -> dict[str, Any]:
        updated = BASE + timedelta(milliseconds=rng.randrange(10**9))
        summary = f"order {number} at {updated.isoformat()}"
        current = self.newest.get(number)
        if current is None or normalise_date(updated) > current[0]:
            self.newest[number] = (normalise_date(updated), summary)
        return erp(orderNo=number, summary=summary, lastUpdateDate=updated.isoformat())

    def drop(self, folder: Path, data: bytes) -> None:
        """Write beside the folder, then rename in (the ERP's way); names never repeat."""
        self.files += 1
        name = f"f{self.files:06d}.json"
        temp = folder.parent / f".{name}"
        temp.write_bytes(data)
        os.rename(temp, folder / name)
        self.dropped[data] += 1

    def burst(self, folder: Path, rng: Random, size: int) -> None:
        """Good single orders (some re-versioned), bad files, and batches with bad elements."""
        for _ in range(size):
            kind = rng.random()
            if kind < 0.75:
                data = json.dumps(self.order(rng, rng.randrange(400))).encode()
            elif kind < 0.85:
                data = rng.choice([b"{", b"", b"[1, 2", b'"text"', b'{"orderNo": true}'])
                data += str(self.files).encode() if data.startswith(b'"') else b""
            else:
                batch = [self.order(rng, rng.randrange(400)) for _ in range(rng.randrange(1, 8))]
                batch.insert(rng.randrange(len(batch) + 1), {"orderNo": -1, "n": self.files})
                data = json.dumps(batch).encode()
            self.drop(folder, data)


def start_worker(
    settings: Settings, log: TextIO, extra: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    env = {**env_for(settings), **(extra or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "watcher", "run", "--no-console"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )


def serving(settings: Settings, worker: subprocess.Popen[str]) -> bool:
    """True once this worker runs: its status file (rewritten every two seconds) names its pid
    and a store it has reached."""
    status = read_worker_status(settings, worker.pid)
    # the file is written from the first second; "connected" means it has opened too
    return status is not None and status.pid == worker.pid and status.store_connected


def landed(settings: Settings, rejected: bool = False) -> Counter[bytes]:
    """Contents of the input files in archive and failed (or of the rejected elements)."""
    found: Counter[bytes] = Counter()
    for folder in (settings.archive_dir, settings.failed_dir):
        for path in folder.iterdir():
            is_input = path.is_file() and not path.name.endswith(".error.json")
            if is_input and (".rejected." in path.name) == rejected:
                found[path.read_bytes()] += 1
    return found


def claimed_files(settings: Settings) -> list[Path]:
    root = settings.inbound_dir / ".processing"
    return (
        [p for p in root.rglob("*") if p.is_file() and p.name != ".lock"] if root.exists() else []
    )


def waiting_files(settings: Settings) -> list[str]:
    return [
        p.name for p in settings.inbound_dir.iterdir() if p.is_file() and not p.name.startswith(".")
    ]


async def stored(settings: Settings) -> dict[int, dict[str, Any]]:
    return {d["number"]: d for d in await stored_docs(settings)}


def check_invariants(
    settings: Settings, inputs: Inputs, docs: dict[int, dict[str, Any]], note: str
) -> None:
    """Nothing lost, nothing twice, newest wins, no mark without its file, nothing claimed."""
    found = landed(settings)
    missing, extra = inputs.dropped - found, found - inputs.dropped
    assert not missing and not extra, (
        f"archive+failed differ from the inputs: {sum(missing.values())} missing,"
        f" {sum(extra.values())} extra, e.g. {list((missing or extra).elements())[:2]} ({note})"
    )
    duplicated = [data for data, count in landed(settings, rejected=True).items() if count > 1]
    assert duplicated == [], f"rejected elements written twice ({note})"
    assert claimed_files(settings) == [], note
    assert waiting_files(settings) == [], note
    for number, (updated, summary) in inputs.newest.items():
        doc = docs.get(number)
        assert doc is not None, f"order {number} lost ({note})"
        assert (doc["updatedAt"], doc["title"]) == (updated, summary), note
    for number, doc in docs.items():
        if number < TRACOS_FIRST:
            continue
        assert doc.get("isSynced") is True, f"TracOS order {number} not synced ({note})"
        written = (settings.outbound_dir / f"{number}.json").read_bytes()
        assert written == CHALLENGE.render(read_tracos(doc)).data, note
    assert not list(settings.outbound_dir.glob(".*.tmp")), note
