"""``watcher resend`` and ``watcher replay``: repairs that go through the worker.

``resend`` marks orders unsynced in the store, so the running worker (or ``watcher once``)
exports them with every guarantee an export has. ``replay`` puts archived ERP files back
into the inbound folder under a new name, so the worker applies them again, newer wins as
ever, with the journal, conflicts and outbound repair. ``--dry-run`` only says what would
happen (docs/agreement.md).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from watcher import fs as files
from watcher.core.errors import CommandFailed, RejectedInput
from watcher.core.printable import printable
from watcher.core.settings import Settings
from watcher.core.tracos import OrderUpsert, Outcome, clash, decide, stored_date
from watcher.erp import ErpFormat, load_format, scan
from watcher.store import Entry, Journal, JournalEvent, WorkOrderStore, build_journal, with_store

BATCH: Final = 1000
MAX_FILE: Final = 512 << 20


def cmd_resend(settings: Settings, args: argparse.Namespace) -> int:
    if not (args.numbers or args.since or args.all):
        raise CommandFailed("resend: name the orders (NUMBER ...), or give --since WHEN or --all")

    async def resend(store: WorkOrderStore) -> int:
        journal = build_journal(settings, store) if not args.dry_run else None
        if journal is not None:
            await journal.open()
        total = 0
        try:
            async with aclosing(_chosen(store, args)) as batches:
                async for numbers in batches:
                    total += await _resend_batch(store, journal, numbers, args.dry_run)
        finally:
            if journal is not None:
                await journal.close()
        return total

    total = with_store(settings, resend)
    verb = "would resend" if args.dry_run else "resent"
    print(f"{verb} {total} orders: the worker exports them again")
    return 0


async def _resend_batch(
    store: WorkOrderStore, journal: Journal | None, numbers: list[int], dry_run: bool
) -> int:
    if dry_run:
        for number in numbers:
            print(f"would resend order {number}")
        return len(numbers)
    done = await store.unsync(numbers)
    if journal is not None:
        now = datetime.now(UTC)
        reason = "marked unsynced by watcher resend: exported again"
        await journal.record(
            [
                Entry(at=now, direction="out", event=JournalEvent.RESEND, number=n, reason=reason)
                for n in numbers
            ]
        )
    return done


async def _chosen(
    store: WorkOrderStore, args: argparse.Namespace
) -> AsyncGenerator[list[int], None]:
    """The stored orders asked for, a batch of numbers at a time."""
    if args.numbers:
        found = {doc["number"] for doc in await store.find(args.numbers)}
        for number in args.numbers:
            if number not in found:
                print(f"watcher: no order {number} is stored")
        yield sorted(found)
        return
    async with aclosing(store.iter_documents(BATCH)) as batches:
        async for batch in batches:
            yield [
                doc["number"]
                for doc in batch
                if args.all or stored_date(doc.get("updatedAt")) >= args.since
            ]


def cmd_replay(settings: Settings, args: argparse.Namespace) -> int:
    if not (args.files or args.since):
        raise CommandFailed("replay: name archived files (FILE ...), or give --since WHEN")
    chosen = _archived(settings.archive_dir, args.files, args.since)
    if args.dry_run:
        erp = load_format(settings.erp_format)
        with_store(settings, lambda store: _foresee(store, erp, chosen))
        return 0
    settings.inbound_dir.mkdir(parents=True, exist_ok=True)
    for path in chosen:
        name = _put_back(path, settings.inbound_dir)
        print(f"replaying {printable(path.name)} as inbound/{printable(name)}")
    print(f"{len(chosen)} archived files back in the inbound folder: the worker applies them")
    return 0


def _archived(archive: Path, names: Sequence[str], since: datetime | None) -> list[Path]:
    if names:
        paths = [archive / os.path.basename(name) for name in names]
        missing = [p.name for p in paths if p.is_symlink() or not p.is_file()]
        if missing:
            raise CommandFailed(f"replay: not in {archive}: {printable(', '.join(missing))}")
        return paths
    assert since is not None
    cutoff = since.timestamp()
    return sorted(
        archive / name for name in scan(archive) if (archive / name).stat().st_mtime >= cutoff
    )


def _put_back(path: Path, inbound: Path) -> str:
    """A copy under a name not taken in the inbound folder, written then renamed in; never
    through a link (a link planted in the archive would copy what it points at)."""
    try:
        data = files.read_regular(path, MAX_FILE)[0]
    except OSError as exc:
        raise CommandFailed(f"replay: {printable(path.name)}: {exc.strerror or exc}") from None
    for name in files.candidate_names(*files.split_name(path.name)):
        temp = files.write_temp(inbound, name, data, durable=True)
        try:
            files.rename_no_replace(temp, inbound / name)
            return name
        except FileExistsError:
            files.remove_temp(temp)
    raise CommandFailed(f"replay: no free name for {printable(path.name)}")


async def _foresee(store: WorkOrderStore, erp: ErpFormat, chosen: list[Path]) -> None:
    """Per order of each file: what applying it now would do."""
    for path in chosen:
        try:
            orders = erp.judge(files.read_regular(path, MAX_FILE)[0]).orders
        except (OSError, RejectedInput) as exc:
            print(f"{printable(path.name)}: cannot be read as an ERP file: {exc}")
            continue
        stored = {d["number"]: d for d in await store.find([o.number for o in orders])}
        for order in orders:
            would = _would(order, stored.get(order.number))
            print(f"{printable(path.name)}: order {order.number}: {would}")


def _would(order: OrderUpsert, doc: dict[str, object] | None) -> str:
    if doc is None:
        return str(Outcome.INSERTED)
    outcome = decide(stored_date(doc.get("updatedAt")), order.updatedAt)
    found = clash(doc, order, outcome)
    if found is not None and found.kind == "conflict":
        return f"conflict ({outcome}): TracOS changed it since the last sync"
    return str(outcome)
