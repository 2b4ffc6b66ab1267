"""Convergence (docs/spec.md §3, Outbound 5): once both sides are quiet, every outbound file still
there holds exactly the stored version of its order, whatever the interleaving of ERP
files, TracOS writes and exports, by one worker or two, on both stores.

The interleavings are drawn by hypothesis; a step may also run *inside* an export or a
repair, just before or just after its files are written (the windows where the check
"still unsynced at the version read" has passed but the mark has not yet been tried).
"""

from __future__ import annotations

import json
import tempfile
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from itertools import count
from pathlib import Path
from typing import Any, Literal

import anyio
import msgspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.helpers.builders import T0, erp, tracos_doc
from tests.helpers.conditions import wait_for, wait_until
from tests.helpers.stores import make_settings, unique_collection
from tests.helpers.workers import cli, drop, names, opened_store, running
from tests.helpers.workers import worker as worker_process
from watcher.app import Worker, build_worker
from watcher.core.settings import Settings
from watcher.core.tracos import read_tracos
from watcher.erp.formats.challenge import FORMAT as CHALLENGE
from watcher.erp.port import OutboundFile, OutboundSink
from watcher.store.configured import build_store
from watcher.store.mongo import MongoStore

Kind = Literal["erp", "tracos", "export"]
When = Literal["now", "before_write", "after_write"]


class Step(msgspec.Struct, frozen=True):
    kind: Kind
    worker: int
    number: int
    hours: int
    when: When


steps = st.lists(
    st.builds(
        Step,
        kind=st.sampled_from(["erp", "tracos", "export"]),
        worker=st.integers(0, 1),
        number=st.integers(1, 2),
        hours=st.integers(0, 12),
        # mostly inside a write: that is where the races are
        when=st.sampled_from(["now", "before_write", "before_write", "after_write"]),
    ),
    min_size=1,
    max_size=16,
)


@dataclass
class Meddling:
    """A worker's sink that lets the scenario's next step happen around its writes."""

    sink: OutboundSink
    scenario: Scenario

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sink, name)

    async def write(self, files: Sequence[OutboundFile]) -> set[int]:
        await self.scenario.inside("before_write")
        failed = await self.sink.write(files)
        await self.scenario.inside("after_write")
        return failed


@dataclass
class Scenario:
    root: Path
    workers: list[Worker]
    queue: deque[Step]
    busy: set[tuple[int, str]] = field(default_factory=set)
    names: count[int] = field(default_factory=count)

    async def play(self) -> None:
        while self.queue:
            await self.run(self.queue.popleft())

    async def inside(self, when: When) -> None:
        if self.queue and self.queue[0].when == when:
            await self.run(self.queue.popleft())

    async def run(self, step: Step) -> None:
        index = step.worker % len(self.workers)
        worker = self.workers[index]
        when = T0 + timedelta(hours=step.hours)
        if step.kind == "tracos":
            doc = tracos_doc(step.number, title=f"tracos {step.hours}", updatedAt=when)
            await worker.store.put_documents([doc])
        elif step.kind == "erp":
            order = erp(orderNo=step.number, summary=f"erp {step.hours}")
            order["lastUpdateDate"] = when.isoformat()
            name = f"{next(self.names)}.json"
            drop(worker.settings.inbound_dir, name, json.dumps(order).encode())
            await self._in(index, "in", worker.inbound.drain)
        else:
            await self._in(index, "out", worker.outbound.sweep)

    async def _in(self, index: int, side: str, work: Any) -> None:
        """A pipeline already working in this worker lets the step go (it is not re-entrant)."""
        if (index, side) in self.busy:
            return
        self.busy.add((index, side))
        try:
            await work()
        finally:
            self.busy.discard((index, side))

    async def quiesce(self) -> None:
        """Both sides quiet: every file taken, every unsynced order exported."""
        self.queue.clear()
        for _ in range(5):
            for worker in self.workers:
                await worker.inbound.drain()
                await worker.outbound.sweep()
            if (await self.workers[0].store.counts())[1] == 0:
                return
        raise AssertionError("orders still unsynced after five rounds")


async def disagreements(worker: Worker) -> list[str]:
    """Outbound files that hold anything but their order's stored version."""
    docs = {doc["number"]: doc for doc in await worker.store.find()}
    found = []
    for path in sorted(worker.settings.outbound_dir.glob("*.json")):
        try:
            held = path.read_bytes()
        except FileNotFoundError:
            continue  # withdrawn by a running worker since the listing: nothing to disagree
        doc = docs[int(path.stem)]
        wanted = worker.integration.format.render(read_tracos(doc)).data
        if held != wanted:
            found.append(f"{path.name}: {held!r} but stored {doc['title']!r}")
    return found


async def play(base: Settings, root: Path, how_many: int, plan: list[Step]) -> list[str]:
    chosen = make_settings(root)
    if base.mongo_uri is not None:
        overrides = {"mongo_database": base.mongo_database, "mongo_collection": unique_collection()}
        chosen = make_settings(root, mongo_uri=base.mongo_uri, **overrides)
    chosen.inbound_dir.mkdir(parents=True)
    workers = [build_worker(chosen, build_store(chosen)) for _ in range(how_many)]
    scenario = Scenario(root, workers, deque(plan))
    for worker in workers:
        await worker.open()
        meddling = Meddling(worker.outbound.sink, scenario)
        worker.outbound.sink = worker.outbound.repair.sink = meddling
    try:
        await scenario.play()
        await scenario.quiesce()
        return await disagreements(workers[0])
    finally:
        if isinstance(workers[0].store, MongoStore):
            await workers[0].store.collection.drop()
        for worker in workers:
            await worker.close()


@pytest.mark.parametrize("how_many", [1, 2], ids=["one worker", "two workers"])
@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=steps)
# the case: an ERP version lands between the export's check and its write
@example(
    plan=[
        Step("tracos", 0, 1, 1, "now"),
        Step("export", 0, 1, 0, "now"),
        Step("erp", 1, 1, 5, "before_write"),
    ]
)
def test_outbound_files_end_as_the_stored_versions(
    any_settings: Settings, how_many: int, plan: list[Step]
) -> None:
    """Whatever the interleaving, no outbound file is left holding another version."""
    with tempfile.TemporaryDirectory(dir=any_settings.state_dir.parent) as temp:
        found = anyio.run(play, any_settings, Path(temp), how_many, plan, backend="asyncio")
    assert found == []


def outbound_agrees(settings: Settings) -> bool:
    return anyio.run(_outbound_agrees, settings, backend="asyncio")


async def _outbound_agrees(settings: Settings) -> bool:
    worker = build_worker(settings)
    await worker.store.open(create=False)
    try:
        unsynced = (await worker.store.counts())[1]
        return unsynced == 0 and await disagreements(worker) == []
    finally:
        await worker.store.close()


@pytest.mark.system
@pytest.mark.parametrize("run", range(10))
def test_the_quick_start_beside_a_running_worker_converges(
    any_settings: Settings, tmp_path: Path, run: int
) -> None:
    """`watcher seed --tracos 15 --erp 10` beside a running worker: the ERP's ten versions
    (newer) land while the TracOS ones are exported, before or after them; every run
    leaves the same folders: the ERP's own versions are not sent back, and an older TracOS
    file of those orders exported first is withdrawn (docs/erp-contract-returns.md)."""
    settings = any_settings
    with worker_process(settings, tmp_path / "worker.log"):
        wait_until(lambda: "watching" in (tmp_path / "worker.log").read_text(), "started")
        cli(settings, "seed", "--tracos", "15", "--erp", "10")
        wait_until(lambda: not any(settings.inbound_dir.glob("*.json")), "inbound taken")
        wait_until(lambda: outbound_agrees(settings), "outbound files as stored", 30)
        wait_until(lambda: len(names(settings.archive_dir)) == 10, "ten files archived")
    assert names(settings.outbound_dir, ".json") == sorted(f"{n}.json" for n in range(11, 16))
    assert names(settings.archive_dir) == sorted(f"{n}.json" for n in range(1, 11))
    assert names(settings.failed_dir) == []
    assert names(settings.inbound_dir) == []


@pytest.mark.anyio
async def test_a_file_a_crash_left_behind_is_repaired_at_the_next_start(
    any_settings: Settings,
) -> None:
    """A worker killed between an export's write and its check left v1 in 1.json while
    the store holds v2, synced (the ERP's): the next start rewrites it."""
    settings = any_settings
    v1 = tracos_doc(1, title="v1", updatedAt=T0)
    v2 = tracos_doc(1, title="v2", updatedAt=T0 + timedelta(hours=1), isSynced=True)
    render = CHALLENGE.render
    settings.outbound_dir.mkdir(parents=True)
    file = settings.outbound_dir / "1.json"
    file.write_bytes(render(read_tracos(v1)).data)
    async with opened_store(settings) as store:
        await store.put_documents([v2])
        wanted = render(read_tracos((await store.find([1]))[0])).data
    async with running(settings):
        await wait_for(lambda: file.read_bytes() == wanted, "1.json repaired")
