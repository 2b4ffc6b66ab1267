"""Bad input (docs/spec.md §2, §7): a corpus of malformed files, special files and huge files."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from random import Random

import anyio
import msgspec
import pytest

from tests.helpers.builders import erp
from tests.helpers.conditions import wait_for
from tests.helpers.workers import challenge_files, drop, names, reports, running
from watcher.app import Worker
from watcher.core.errors import InvalidOrder, MalformedFile
from watcher.core.settings import Settings
from watcher.erp.formats.challenge import FORMAT as CHALLENGE
from watcher.sync.stats import Count

CORPUS = Path(__file__).parents[1] / "data" / "bad"
MEGABYTE = 2**20


class ExpectedElement(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One refused element of a batch file, as its report lists it."""

    index: int
    path: str
    reason: str


class Expected(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What ``expected.json`` says of one corpus file (a batch has ``rejected`` elements)."""

    reason: str
    path: str | None = None
    rejected: list[ExpectedElement] = []


EXPECTED = msgspec.json.decode((CORPUS / "expected.json").read_bytes(), type=dict[str, Expected])


def corpus_cases(chosen: dict[str, Expected]) -> list[object]:
    return [pytest.param(name, expected, id=name) for name, expected in sorted(chosen.items())]


def test_corpus_and_expectations_match() -> None:
    """Every corpus file has an expectation and the other way round; all files are small."""
    on_disk = {p.name for p in CORPUS.iterdir()} - {"expected.json"}
    assert on_disk == set(EXPECTED)
    assert len(on_disk) >= 40
    assert all((CORPUS / name).stat().st_size <= 4096 for name in on_disk)


@pytest.mark.parametrize(("name", "expected"), corpus_cases(EXPECTED))
def test_corpus_file_is_refused_with_its_reason(name: str, expected: Expected) -> None:
    """Each corpus file (or each batch element) is refused with the expected reason."""
    data = (CORPUS / name).read_bytes()
    if expected.rejected:
        verdict = CHALLENGE.judge(data)
        assert verdict.is_batch and verdict.orders == []
        assert [(r.index, r.path) for r in verdict.rejected] == [
            (e.index, e.path) for e in expected.rejected
        ]
        for got, wanted in zip(verdict.rejected, expected.rejected, strict=True):
            assert wanted.reason in got.reason
        return
    with pytest.raises((MalformedFile, InvalidOrder)) as caught:
        CHALLENGE.judge(data)
    assert expected.reason in caught.value.reason
    assert expected.path is None or caught.value.path == expected.path


def test_utf8_error_names_the_bad_byte_offset_in_the_file() -> None:
    """The reason for invalid UTF-8 gives the offending byte's offset in the file."""
    data = (CORPUS / "invalid-utf8-overlong-slash.json").read_bytes()
    offset = data.index(b"\xc0")
    with pytest.raises(MalformedFile) as caught:
        CHALLENGE.judge(data)
    assert f"byte {offset} " in caught.value.reason


def ten_megabyte_string() -> bytes:
    return b'"' + b"x" * (10 * MEGABYTE) + b'"'


def garbage_100_megabytes() -> bytes:
    return b"\x00" + Random(7).randbytes(100 * MEGABYTE - 1)


def nested_100_000_deep() -> bytes:
    return b"[" * 100_000


GENERATED = [
    pytest.param(ten_megabyte_string, "expected a JSON object or array, got a string", id="10mb"),
    pytest.param(
        garbage_100_megabytes,
        "not valid UTF-8: byte 2 (invalid start byte)",
        id="garbage-100mb",
    ),
    pytest.param(
        nested_100_000_deep,
        "nest",
        id="nesting-100000",
    ),
]


@pytest.mark.parametrize(("make", "reason"), GENERATED)
def test_huge_input_is_refused_with_a_precise_reason(
    make: Callable[[], bytes], reason: str
) -> None:
    """A 10 MB string, 100 MB of garbage and 100,000 ``[`` are refused, not crashed on."""
    with pytest.raises((MalformedFile, InvalidOrder)) as caught:
        CHALLENGE.judge(make())
    assert reason in caught.value.reason


async def still_works(settings: Settings, worker: Worker) -> None:
    """One more valid file dropped now is stored and archived."""
    drop(settings.inbound_dir, "afterwards.json", msgspec.json.encode(erp(orderNo=999)))
    await wait_for(
        lambda: "afterwards.json" in names(settings.archive_dir), "a later file archived"
    )
    assert await worker.store.find([999])


@pytest.mark.anyio
@pytest.mark.system
async def test_worker_quarantines_the_whole_corpus_and_keeps_working(settings: Settings) -> None:
    """Corpus plus valid files: each bad one reported as expected, the valid ones stored."""
    valid = challenge_files(3)
    batches = [name for name, expected in EXPECTED.items() if expected.rejected]
    async with running(settings) as worker:
        for name in EXPECTED:
            drop(settings.inbound_dir, name, (CORPUS / name).read_bytes())
        for name, data in valid.items():
            drop(settings.inbound_dir, name, data)
        await wait_for(
            lambda: (
                worker.stats.counters[Count.FILES_FAILED] == len(EXPECTED)
                and len(names(settings.archive_dir)) == len(valid) + len(batches)
                and names(settings.inbound_dir) == []
            ),
            "every corpus file reported and every valid file archived",
        )
        assert sorted(d["number"] for d in await worker.store.find()) == [1, 2, 3]
        await still_works(settings, worker)
    found = reports(settings)
    assert set(found) == set(EXPECTED)
    for name, expected in EXPECTED.items():
        assert expected.reason in found[name]["reason"], name
        assert expected.path is None or found[name]["path"] == expected.path, name
        if expected.rejected:
            assert [(r["index"], r["path"]) for r in found[name]["rejected"]] == [
                (e.index, e.path) for e in expected.rejected
            ]
            assert (settings.failed_dir / f"{name.removesuffix('.json')}.rejected.json").is_file()
        kept = settings.archive_dir if expected.rejected else settings.failed_dir
        assert (kept / name).read_bytes() == (CORPUS / name).read_bytes(), name


# One file per distinct known problem (deep nesting has its own worker test below); a
# problem that stops the worker costs ~5 s here, awatch's shutdown time without stop_event.
@pytest.mark.anyio
@pytest.mark.system
async def test_directory_named_like_a_file_is_left_alone(settings: Settings) -> None:
    """A directory called x.json is ignored: not moved, not reported."""
    async with running(settings) as worker:
        (settings.inbound_dir / "x.json").mkdir()
        (settings.inbound_dir / "x.json" / "inner.json").write_bytes(b"{}")
        await still_works(settings, worker)
        assert worker.stats.counters[Count.FILES_FAILED] == 0
    assert (settings.inbound_dir / "x.json" / "inner.json").read_bytes() == b"{}"
    assert names(settings.failed_dir) == []


@pytest.mark.anyio
@pytest.mark.system
async def test_symlink_is_quarantined_and_never_followed(
    settings: Settings, tmp_path: Path
) -> None:
    """link.json → a valid file elsewhere: the link is quarantined, the target is untouched."""
    target = tmp_path / "elsewhere" / "order.json"
    target.parent.mkdir()
    data = msgspec.json.encode(erp(orderNo=5))
    target.write_bytes(data)
    before = target.stat()
    async with running(settings) as worker:
        (settings.inbound_dir / "link.json").symlink_to(target)
        await wait_for(
            lambda: worker.stats.counters[Count.FILES_FAILED] == 1, "the link quarantined"
        )
        await still_works(settings, worker)
        assert await worker.store.find([5]) == []
    assert "symbolic link" in reports(settings)["link.json"]["reason"]
    assert os.readlink(settings.failed_dir / "link.json") == str(target)
    assert target.read_bytes() == data and target.stat().st_mtime_ns == before.st_mtime_ns


@pytest.mark.anyio
@pytest.mark.system
async def test_fifo_is_quarantined_without_blocking_the_worker(settings: Settings) -> None:
    """A FIFO named pipe.json is never opened for a blocking read; it is quarantined."""
    async with running(settings) as worker:
        os.mkfifo(settings.inbound_dir / "pipe.json")
        drop(settings.inbound_dir, "1.json", msgspec.json.encode(erp(orderNo=1)))
        await wait_for(
            lambda: worker.stats.counters[Count.FILES_FAILED] == 1, "the FIFO quarantined"
        )
        await still_works(settings, worker)
    assert "not a regular file (FIFO)" in reports(settings)["pipe.json"]["reason"]
    assert stat.S_ISFIFO((settings.failed_dir / "pipe.json").lstat().st_mode)
    assert "1.json" in names(settings.archive_dir)


@pytest.mark.anyio
@pytest.mark.system
async def test_files_vanishing_right_after_their_event(settings: Settings) -> None:
    """Files created and deleted at once, 300 times among valid ones: no crash, no loss."""
    inbound = settings.inbound_dir

    def churn() -> None:
        for index in range(300):
            path = inbound / f"vanish-{index}.json"
            path.write_bytes(msgspec.json.encode(erp(orderNo=1000 + index)))
            path.unlink(missing_ok=True)  # the worker may have taken it already
            if index % 15 == 0:
                drop(inbound, f"{index}.json", msgspec.json.encode(erp(orderNo=index)))

    valid = [f"{index}.json" for index in range(0, 300, 15)]
    async with running(settings) as worker:
        await anyio.to_thread.run_sync(churn)
        await wait_for(
            lambda: set(valid) <= set(names(settings.archive_dir)) and names(inbound) == [],
            "every valid file archived",
        )
        stored = sorted(d["number"] for d in await worker.store.find())
        await still_works(settings, worker)
        assert worker.stats.counters[Count.FILES_FAILED] == 0
    taken = [n for n in names(settings.archive_dir) if n.startswith("vanish-")]
    expected = sorted([*range(0, 300, 15), *(1000 + int(n[7:-5]) for n in taken)])
    assert stored == expected


@pytest.mark.anyio
@pytest.mark.system
@pytest.mark.skipif(
    os.geteuid() == 0, reason="running as root: permission checks do not apply to root"
)
async def test_unreadable_file_is_quarantined(settings: Settings, tmp_path: Path) -> None:
    """A file without read permission is quarantined with "permission denied"."""
    staged = tmp_path / "secret.json"
    staged.write_bytes(msgspec.json.encode(erp(orderNo=8)))
    staged.chmod(0)
    async with running(settings) as worker:
        staged.rename(settings.inbound_dir / "secret.json")
        await wait_for(lambda: worker.stats.counters[Count.FILES_FAILED] == 1, "quarantined")
        await still_works(settings, worker)
    assert "permission denied" in reports(settings)["secret.json"]["reason"].lower()


@pytest.mark.anyio
@pytest.mark.system
async def test_file_name_that_is_not_utf8_is_quarantined(settings: Settings) -> None:
    """A bad file whose name is not valid UTF-8 is quarantined; the worker keeps working."""
    raw_name = b"caf\xe9.json"
    async with running(settings) as worker:
        try:
            fd = os.open(
                os.fsencode(settings.inbound_dir) + b"/" + raw_name, os.O_CREAT | os.O_WRONLY
            )
        except OSError as exc:
            pytest.skip(f"this file system refuses non-UTF-8 names: {exc}")
        os.write(fd, b"42")
        os.close(fd)
        await wait_for(lambda: worker.stats.counters[Count.FILES_FAILED] == 1, "quarantined")
        await still_works(settings, worker)
    assert raw_name in os.listdir(os.fsencode(settings.failed_dir))
    assert len(reports(settings)) == 1


@pytest.mark.anyio
@pytest.mark.system
@pytest.mark.parametrize(("make", "reason"), GENERATED)
async def test_worker_quarantines_huge_input_and_keeps_working(
    settings: Settings, tmp_path: Path, make: Callable[[], bytes], reason: str
) -> None:
    """A 10 MB string, 100 MB of garbage, 100,000 ``[``: quarantined, valid files still pass."""
    staged = tmp_path / "huge.json"
    staged.write_bytes(make())
    size = staged.stat().st_size
    async with running(settings) as worker:
        drop(settings.inbound_dir, "1.json", msgspec.json.encode(erp(orderNo=1)))
        staged.rename(settings.inbound_dir / "huge.json")
        drop(settings.inbound_dir, "2.json", msgspec.json.encode(erp(orderNo=2)))
        await wait_for(
            lambda: worker.stats.counters[Count.FILES_FAILED] == 1, "huge file quarantined"
        )
        await still_works(settings, worker)
    assert reason in reports(settings)["huge.json"]["reason"]
    assert (settings.failed_dir / "huge.json").stat().st_size == size
    assert {"1.json", "2.json"} <= set(names(settings.archive_dir))
