"""Attacks on the inbound side (docs/guarantees.md): stray claim folders, long names, a full disk, a
clock ahead, hard links, re-drops and files written to while they are processed.

Every input ends in the archive or the failed folder exactly once, a failed file always
with its report; start-up copes or stops with one line.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path

import anyio
import msgspec
import pytest

from tests.helpers.builders import erp
from tests.helpers.conditions import wait_for
from tests.helpers.stores import make_settings
from tests.helpers.workers import cli, drop, env_for, names, reports, running
from watcher import fs as files
from watcher.core.settings import Settings
from watcher.core.tracos import Clash, OrderUpsert, Outcome
from watcher.erp.folders import claims
from watcher.store.sqlite import SqliteStore
from watcher.sync.stats import Count

pytestmark = [pytest.mark.anyio, pytest.mark.system]
NAME_MAX = 255


def order_file(number: int) -> bytes:
    return msgspec.json.encode(erp(orderNo=number))


def landed(settings: Settings) -> Counter[bytes]:
    """Contents of the inputs in the archive and failed folders (reports and refused
    elements left out)."""
    found: Counter[bytes] = Counter()
    for folder in (settings.archive_dir, settings.failed_dir):
        for path in folder.iterdir():
            refused = path.name.endswith(".error.json") or ".rejected." in path.name
            if path.is_file() and not refused:
                found[path.read_bytes()] += 1
    return found


def claimed(settings: Settings) -> list[Path]:
    root = settings.inbound_dir / claims.CLAIMED_DIR
    return (
        [p for p in root.rglob("*") if p.is_file() and p.name != ".lock"] if root.exists() else []
    )


def assert_every_failed_file_has_its_report(settings: Settings) -> None:
    for path in settings.failed_dir.iterdir():
        if path.is_file() and not path.name.endswith(".error.json"):
            assert (settings.failed_dir / (path.name + ".error.json")).is_file(), path.name


# --- #6 the claim folder ----------------------------------------------------------------


async def test_stray_entries_in_the_claim_folder_are_left_alone(settings: Settings) -> None:
    """A file and a link where claim folders live: start-up copes, work goes on."""
    root = settings.inbound_dir / claims.CLAIMED_DIR
    root.mkdir(parents=True)
    (root / "stray.json").write_bytes(b"{}")
    (root / "link").symlink_to(settings.inbound_dir)
    async with running(settings):
        drop(settings.inbound_dir, "1.json", order_file(1))
        await wait_for(lambda: names(settings.archive_dir) == ["1.json"], "the file archived")
    assert (root / "stray.json").read_bytes() == b"{}" and (root / "link").is_symlink()


def test_a_file_where_the_claim_folder_belongs_stops_start_up_in_one_line(
    settings: Settings,
) -> None:
    """``.processing`` is a file: exit 2 and one line saying what to do."""
    settings.inbound_dir.mkdir(parents=True)
    (settings.inbound_dir / claims.CLAIMED_DIR).write_bytes(b"")
    for command in (["once"], ["run", "--no-console"]):
        result = cli(settings, *command, check=False)
        assert result.returncode == 2, result.stderr
        [line] = result.stderr.strip().splitlines()
        assert line == (
            f"watcher: configuration error: DATA_INBOUND_DIR ({settings.inbound_dir}):"
            f" {settings.inbound_dir / claims.CLAIMED_DIR} is a file, not the claim folder:"
            " move it away"
        )


def as_another_user() -> list[str]:
    """A command prefix for a process that is not the owner of a folder made by this one's
    test: as root, root without its power to override file permissions."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot act as another user")
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}"]


def test_a_second_worker_of_another_user_stops_in_one_line(settings: Settings) -> None:
    """The claim folder belongs to another user's worker: exit 2 and one line."""
    for folder in (settings.inbound_dir, settings.archive_dir, settings.failed_dir):
        folder.mkdir(parents=True)
    root = settings.inbound_dir / claims.CLAIMED_DIR
    root.mkdir(mode=0o755)
    if os.geteuid() == 0:
        os.chown(root, 65534, 65534)  # the other worker's user: nobody
    else:
        root.chmod(0o555)
    command = [*as_another_user(), sys.executable, "-m", "watcher", "once"]
    result = subprocess.run(
        command, env=env_for(settings), capture_output=True, text=True, timeout=60, check=False
    )
    root.chmod(0o755)
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(
        f"watcher: configuration error: DATA_INBOUND_DIR ({settings.inbound_dir}):"
        f" cannot create the claim folder {root}/"
    )
    assert line.endswith(": Permission denied")


# --- #7 long names --------------------------------------------------------------------------


def long_name(size: int, letter: str, tag: str) -> str:
    """A name ``…{tag}.json`` of exactly ``size`` bytes, made of ``letter`` (1 or 2 bytes)."""
    width = len(letter.encode())
    body = size - len(tag) - len(".json")
    return "a" * (body % width) + letter * (body // width) + tag + ".json"


LONG = [(size, letter) for size in (231, 244, 245, 250, 255) for letter in "xé"]


async def test_long_names_end_archived_or_failed_once_with_their_reports(
    settings: Settings,
) -> None:
    """Names of 231 to 255 bytes, each a good file, a bad one and a batch with a bad
    element, each dropped twice: every derived name fits, every input lands once."""
    kinds: dict[str, Callable[[int], bytes]] = {
        "good": order_file,
        "bad": lambda n: b'{"orderNo": %d' % n,
        "batch": lambda n: msgspec.json.encode([erp(orderNo=n), {"orderNo": -n}]),
    }
    dropped: Counter[bytes] = Counter()
    staging = settings.inbound_dir.parent / "staging"
    staging.mkdir()
    async with running(settings) as worker:
        for round_ in range(2):
            for index, (size, letter) in enumerate(LONG):
                for offset, (kind, make) in enumerate(kinds.items()):
                    data = make(index * 10 + offset + 1)
                    (staging / "next").write_bytes(data)
                    name = long_name(size, letter, kind)
                    assert len(name.encode()) == size
                    os.rename(staging / "next", settings.inbound_dir / name)
                    dropped[data] += 1
            expected = len(LONG) * len(kinds) * (round_ + 1)
            await wait_for(
                lambda e=expected: sum(landed(settings).values()) == e,  # type: ignore[misc]
                "every file archived or failed",
            )
        # counted once the batch's renames are back from their thread: wait for that too
        failed = lambda: worker.stats.counters[Count.FILES_FAILED] == 4 * len(LONG)  # noqa: E731
        await wait_for(failed, "the failed files counted")
    assert landed(settings) == dropped
    assert claimed(settings) == [] and names(settings.inbound_dir) == []
    for folder in (settings.archive_dir, settings.failed_dir):
        assert all(len(os.fsencode(n)) <= NAME_MAX for n in os.listdir(folder))
    assert_every_failed_file_has_its_report(settings)
    refused = [n for n in names(settings.failed_dir) if ".rejected." in n and "error" not in n]
    assert len(refused) == 2 * len(LONG)
    written = [json.loads(p.read_bytes()) for p in settings.failed_dir.glob("*.error.json")]
    assert sorted(Counter(r["file"] for r in written).values()) == [2] * (2 * len(LONG))


def test_fitted_names_keep_their_tail_and_whole_characters() -> None:
    """A derived name is cut in its base, between two characters, never in its tail."""
    base = "é" * 200  # 400 bytes
    name = files.fitted(base, ".rejected.json", room=len(".error.json"))
    assert name.endswith(".rejected.json") and name.startswith("é")
    assert len(name.encode()) <= NAME_MAX - len(".error.json")
    assert "\ufffd" not in os.fsencode(name).decode("utf-8", "replace")
    assert files.fitted("short", ".json") == "short.json"


# --- #8 a full disk -----------------------------------------------------------------------


@contextlib.contextmanager
def small_disk(where: Path, size: str = "1m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``where`` (root only; skipped otherwise)."""
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(folder: Path) -> Path:
    """Fill the file system of ``folder`` to the last byte."""
    filler = folder / ".filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for size in (65536, 4096, 1):
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * size):
                    pass
    finally:
        os.close(fd)
    return filler


async def test_full_disk_never_leaves_a_failed_file_without_its_report(tmp_path: Path) -> None:
    """inbound, archive and failed on a full tmpfs: nothing is filed without its report;
    once space returns, everything is filed away within the same run."""
    with small_disk(tmp_path / "disk") as disk:
        settings = make_settings(
            tmp_path,
            inbound_dir=disk / "inbound",
            archive_dir=disk / "archive",
            failed_dir=disk / "failed",
        )
        inputs = {
            "bad.json": b'{"orderNo": 1,',
            "batch.json": msgspec.json.encode([erp(orderNo=2), {"orderNo": -2}]),
            "good.json": order_file(3),
        }
        for name, data in inputs.items():
            drop(settings.inbound_dir, name, data)
        old = time.time() - 60  # long quiet: the bad one is judged at once
        for name in inputs:
            os.utime(settings.inbound_dir / name, (old, old))
        settings.archive_dir.mkdir()
        settings.failed_dir.mkdir()
        filler = fill(disk)
        async with running(settings) as worker:
            await wait_for(lambda: names(settings.archive_dir) == ["good.json"], "good archived")
            await wait_for(lambda: len(claimed(settings)) == 2, "the others claimed")
            await wait_for(
                lambda: any("No space left" in f.reason for f in worker.stats.failures),
                "the full disk reported",
            )
            for _ in range(20):  # a second of looking: never a failed file alone
                assert_every_failed_file_has_its_report(settings)
                await anyio.sleep(0.05)
            filler.unlink()
            await wait_for(lambda: claimed(settings) == [], "filed away once space returned")
            assert_every_failed_file_has_its_report(settings)
        assert landed(settings) == Counter(inputs.values())
        assert set(reports(settings)) == {"bad.json", "batch.json"}
        assert names(settings.failed_dir, ".rejected.json") == ["batch.rejected.json"]


async def test_filing_that_fails_is_tried_again_within_the_run(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writing reports fails for a while (ENOSPC): the files stay claimed, the log says so,
    and they are filed away without a restart once writing works again."""
    real_write = files.write_new
    full = True

    def write(path: files.StrPath, chunks: Sequence[bytes]) -> None:
        if full:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_write(path, chunks)

    monkeypatch.setattr(files, "write_new", write)
    async with running(settings) as worker:
        drop(settings.inbound_dir, "batch.json", msgspec.json.encode([erp(), {"orderNo": -1}]))
        drop(settings.inbound_dir, "scalar.json", b"12")
        await wait_for(lambda: worker.stats.counters[Count.ORDERS_INSERTED] == 1, "stored")
        await wait_for(lambda: len(claimed(settings)) == 2, "both claimed")
        assert names(settings.failed_dir) == [] and names(settings.archive_dir) == []
        full = False
        await wait_for(lambda: claimed(settings) == [], "both filed away")
    assert names(settings.archive_dir) == ["batch.json"]
    assert names(settings.failed_dir) == [
        "batch.rejected.json",
        "batch.rejected.json.error.json",
        "scalar.json",
        "scalar.json.error.json",
    ]
    assert reports(settings)["batch.json"]["reason"] == "1 of 2 orders rejected"


# --- #9 a clock ahead -----------------------------------------------------------------------


def truncated_from_tomorrow(settings: Settings) -> Path:
    path = settings.inbound_dir / "tomorrow.json"
    settings.inbound_dir.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b'{"orderNo": 1, "summary": "cut sh')
    tomorrow = time.time() + 86_400
    os.utime(path, (tomorrow, tomorrow))
    return path


def test_once_does_not_wait_for_a_date_in_the_future(settings: Settings) -> None:
    """A truncated file dated tomorrow: ``once`` quarantines it after the settle time."""
    truncated_from_tomorrow(settings)
    started = time.monotonic()
    result = cli(settings, "once")
    assert time.monotonic() - started < 15
    assert result.returncode == 0
    assert "not valid JSON" in reports(settings)["tomorrow.json"]["reason"]


async def test_run_settles_a_file_dated_in_the_future(settings: Settings) -> None:
    """The same file under ``run``: quarantined once it has been quiet for the settle time."""
    async with running(settings):
        truncated_from_tomorrow(settings)
        await wait_for(lambda: "tomorrow.json" in reports(settings), "quarantined", 10)


def step_the_wall_clock(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """The wall clock steps by ``seconds`` (NTP after a suspend, an operator's ``date -s``);
    the monotonic clock, as in life, does not."""
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + seconds)


async def test_a_wall_clock_step_back_does_not_hold_up_a_half_written_file(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A truncated file seen, then the wall clock steps back a day: it is still judged
    (quarantined) once it has been quiet for the settle time, not a day later."""
    async with running(settings) as worker:
        drop(settings.inbound_dir, "half.json", b'{"orderNo": 1, "summary": "cut sh')
        source = worker.integration.source
        await wait_for(lambda: source.next_look() is not None, "the file left to settle")
        step_the_wall_clock(monkeypatch, -86_400)
        await wait_for(lambda: "half.json" in reports(settings), "quarantined", 10)


async def test_a_wall_clock_step_back_does_not_hold_up_filing_again(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Filing away fails (ENOSPC), the wall clock steps back a day, writing works again:
    the stored file is filed away within the run's next look, not a day later."""
    real_write = files.write_new
    full = True

    def write(path: files.StrPath, chunks: Sequence[bytes]) -> None:
        if full:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_write(path, chunks)

    monkeypatch.setattr(files, "write_new", write)
    async with running(settings):
        drop(settings.inbound_dir, "scalar.json", b"12")
        await wait_for(lambda: len(claimed(settings)) == 1, "claimed, not filed")
        step_the_wall_clock(monkeypatch, -86_400)
        full = False
        await wait_for(lambda: claimed(settings) == [], "filed away", 10)
    assert "scalar.json" in reports(settings)


# --- #11 hard links ------------------------------------------------------------------------


def renames_atomically(folder: Path) -> bool:
    probe = folder / ".probe"
    probe.write_bytes(b"")
    try:
        return files.renamed_exclusively(probe, folder / ".probe-moved")
    finally:
        for name in (".probe", ".probe-moved"):
            (folder / name).unlink(missing_ok=True)


async def test_hard_link_to_an_archived_file_left_claimed_is_filed_again(
    settings: Settings,
) -> None:
    """A claimed hard link of an archived file, its worker killed: resumed, not deleted."""
    settings.archive_dir.mkdir(parents=True)
    if not renames_atomically(settings.archive_dir):
        pytest.skip("this file system renames by link and unlink: two links are ambiguous")
    (settings.archive_dir / "7.json").write_bytes(order_file(7))
    dead = settings.inbound_dir / claims.CLAIMED_DIR / "1234-deadbeef"
    dead.mkdir(parents=True)
    (dead / claims.LOCK_FILE).touch()
    os.link(settings.archive_dir / "7.json", dead / "7.json")
    async with running(settings) as worker:
        await wait_for(lambda: len(names(settings.archive_dir)) == 2, "archived again")
        assert [d["number"] for d in await worker.store.find()] == [7]
    assert not dead.exists()


# --- #12 the same bad element twice ---------------------------------------------------------


async def test_redropped_batch_gets_its_own_rejected_file_and_report(settings: Settings) -> None:
    """The same batch with the same bad element, dropped twice: two of each."""
    data = msgspec.json.encode([erp(orderNo=1), {"orderNo": -1}])
    async with running(settings):
        drop(settings.inbound_dir, "batch.json", data)
        await wait_for(lambda: len(names(settings.archive_dir)) == 1, "first archived")
        drop(settings.inbound_dir, "batch.json", data)
        await wait_for(lambda: len(names(settings.archive_dir)) == 2, "second archived")
    refused = [n for n in names(settings.failed_dir) if not n.endswith(".error.json")]
    assert len(refused) == 2
    for name in refused:
        assert json.loads((settings.failed_dir / name).read_bytes()) == [{"orderNo": -1}]
        report = json.loads((settings.failed_dir / (name + ".error.json")).read_bytes())
        assert report["file"] == "batch.json"


# --- #13 written to while processed ---------------------------------------------------------


class HeldStore(SqliteStore):
    """The embedded store, its first upsert held until the test lets it go."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.holding = anyio.Event()
        self.release = anyio.Event()

    async def upsert(
        self, orders: Sequence[OrderUpsert], now: datetime, clashes: list[Clash] | None = None
    ) -> list[Outcome]:
        self.holding.set()
        await self.release.wait()
        return await super().upsert(orders, now, clashes)


@pytest.mark.parametrize(
    "later",
    [
        pytest.param(msgspec.json.encode([erp(orderNo=1), erp(orderNo=2)]), id="more-orders"),
        pytest.param(order_file(1) + b"\n" + order_file(2), id="now-malformed"),
    ],
)
async def test_file_written_to_while_processed_is_read_again(
    settings: Settings, later: bytes
) -> None:
    """Bytes added to a claimed file (same inode) before it is filed: never archived as it
    now is unless what it now holds was stored."""
    store = HeldStore(settings.sqlite_path)
    async with running(settings, store) as worker:
        drop(settings.inbound_dir, "v.json", msgspec.json.encode([erp(orderNo=1)]))
        await store.holding.wait()
        [path] = claimed(settings)
        with path.open("r+b") as handle:  # the same file, rewritten in place
            handle.write(later)
        store.release.set()
        await wait_for(
            lambda: (
                claimed(settings) == []
                and names(settings.inbound_dir) == []
                and len(names(settings.archive_dir) + names(settings.failed_dir)) >= 1
            ),
            "the file read again and filed away",
        )
        stored = {d["number"] for d in await worker.store.find()}
    for name in names(settings.archive_dir):
        kept = json.loads((settings.archive_dir / name).read_bytes())
        assert {order["orderNo"] for order in kept} <= stored
    assert landed(settings) == Counter([later])
