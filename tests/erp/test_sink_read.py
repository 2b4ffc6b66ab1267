"""The outbound folder read back (what convergence compares with the store)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers.stores import make_settings
from watcher.core.settings import Settings
from watcher.erp.folders.sink import LISTING_FROM, FolderSink

pytestmark = pytest.mark.anyio


def noted(subject: str, reason: str) -> None:
    raise AssertionError(f"{subject}: {reason}")


@pytest.mark.parametrize("extra", [0, LISTING_FROM], ids=["few names", "many names"])
async def test_read_gives_each_file_or_none(settings: Settings, extra: int) -> None:
    """Present files with their bytes, absent ones None, a link planted under a name as
    something to replace; a long list of names the same (listed first, then opened)."""
    settings.outbound_dir.mkdir(parents=True)
    (settings.outbound_dir / "1.json").write_bytes(b"one")
    os.symlink("/etc/hostname", settings.outbound_dir / "3.json")
    names = ["1.json", "2.json", "3.json", *(f"{n}.json" for n in range(10, 10 + extra))]
    found = await FolderSink(settings, noted).read(names)
    assert found[:3] == [b"one", None, b""]
    assert set(found[3:]) <= {None}


async def test_the_outbound_folder_holds_no_lock(tmp_path: Path) -> None:
    """Claims are taken in the state folder: the ERP's folder holds only its files."""
    settings = make_settings(tmp_path)
    settings.outbound_dir.mkdir(parents=True)
    sink = FolderSink(settings, noted)
    async with sink.claim([]) as held:
        assert held == set()
        assert os.listdir(settings.outbound_dir) == []
        assert os.listdir(settings.state_dir) == ["outbound-claims.lock"]
