"""The commands that use the store or an ERP format, not the worker: ``seed``, ``put``,
``show``, ``status``, ``prune`` and ``schema`` (``cli.py`` parses their arguments, and
imports this module only to run one of them; ``run`` and ``once`` are in
``watcher.cli.worker``)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from contextlib import aclosing
from datetime import UTC, datetime
from functools import cache, partial
from pathlib import Path
from typing import BinaryIO, Final

import msgspec

from watcher.core.errors import CommandFailed, StoreUnavailable
from watcher.core.printable import printable
from watcher.core.settings import Settings
from watcher.core.tracos import decode_tracos
from watcher.erp import load_format, prune
from watcher.observe import StoreAnswer, ask_store, gather_status, status_lines
from watcher.store import Document, PutResult, Replace, WorkOrderStore, with_store

SHOW_BATCH: Final = 1000  # documents read and written at a time by ``show``
STATUS_PATIENCE_SECONDS: Final = 0.3  # ``status`` waits this long for a lock, then says so


def cmd_show(settings: Settings, args: argparse.Namespace) -> int:
    async def show(store: WorkOrderStore) -> None:
        array = JsonArray(sys.stdout.buffer)
        if args.numbers:
            array.write(await store.find(args.numbers))
        else:
            async with aclosing(store.iter_documents(SHOW_BATCH)) as batches:
                async for batch in batches:
                    array.write(batch)
        array.close()

    with_store(settings, show)
    return 0


class JsonArray:
    """Documents written to ``out`` as one indented JSON array, batch by batch: the very
    bytes ``msgspec.json.format`` gives for the whole list, without ever holding it."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.empty = True

    def write(self, docs: Sequence[Document]) -> None:
        if not docs:
            return
        formatted = msgspec.json.format(msgspec.json.encode(docs, enc_hook=_plain), indent=2)
        self.out.write(b"[\n" if self.empty else b",\n")
        self.out.write(formatted[2:-2])  # the elements, already indented as in the array
        self.empty = False

    def close(self) -> None:
        self.out.write(b"[]\n" if self.empty else b"\n]\n")


def _plain(value: object) -> object:
    """ObjectId and the like as strings; dates in ``show`` keep their offset."""
    return str(value)


def _store_now(settings: Settings) -> tuple[StoreAnswer | None, str | None]:
    """The store's answer from one attempt, or None and why it did not answer."""
    erp_format = cache(partial(load_format, settings.erp_format))  # if a document needs it
    try:
        # a store locked by another process: the worker's last counts, within a second
        ask = partial(ask_store, erp_format=erp_format)
        return with_store(settings, ask, busy_seconds=STATUS_PATIENCE_SECONDS), None
    except StoreUnavailable as exc:  # status tells what it knows, and that the store is down
        return None, str(exc)


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    answer, store_error = _store_now(settings)
    report = gather_status(settings, answer, store_error, datetime.now(UTC))
    if args.json:
        print(msgspec.json.encode(report).decode())
        return 0
    print("\n".join(status_lines(report)))
    return 0


def cmd_seed(settings: Settings, args: argparse.Namespace) -> int:
    import random  # here: the other commands here never pay for seed's imports

    from watcher.cli.samples import erp_files, tracos_documents, write_erp_files
    from watcher.observe import setup_logging

    erp_format = load_format(settings.erp_format)
    setup_logging(settings, sys.stderr)
    rng, now = random.Random(args.seed), datetime.now(UTC)
    docs = tracos_documents(args.tracos, now, rng)
    replace = Replace.ALWAYS if args.force else Replace.NEVER
    put = PutResult()
    if docs:  # ERP files alone need no store (nor a reachable one)
        put = with_store(settings, lambda store: store.put_documents(docs, replace), create=True)
    files = erp_files(erp_format, args.erp, now, rng)
    wrote = write_erp_files(settings.inbound_dir, files, replace=args.force)
    line = (
        f"seeded {_seeded('TracOS documents', put)} ({settings.store_label})"
        f" and {_seeded('ERP files', wrote)} in {settings.inbound_dir}"
    )
    kept = [f"{put.skipped} stored orders"] * bool(put.skipped)
    kept += [f"{wrote.skipped} waiting ERP files"] * bool(wrote.skipped)
    if kept:
        line += f"; kept {' and '.join(kept)} with those numbers (--force replaces them)"
    print(line)
    return 0


def _seeded(what: str, result: PutResult) -> str:
    replaced = f" ({result.replaced} replaced)" if result.replaced else ""
    return f"{result.inserted + result.replaced} {what}{replaced}"


def cmd_put(settings: Settings, args: argparse.Namespace) -> int:
    docs = decode_tracos(_read_input(args.file), need_version=not args.force)
    replace = Replace.ALWAYS if args.force else Replace.IF_NEWER
    put = with_store(settings, lambda store: store.put_documents(docs, replace), create=True)
    skipped = f", {put.skipped} skipped as not newer" if put.skipped else ""
    print(
        f"put {put.inserted + put.replaced} TracOS documents ({settings.store_label}):"
        f" {put.inserted} inserted, {put.replaced} replaced{skipped}"
    )
    return 0


def _read_input(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(name).read_bytes()
    except OSError as exc:
        raise CommandFailed(f"put: cannot read {name}: {exc.strerror or exc}") from None


def cmd_schema(settings: Settings, args: argparse.Namespace) -> int:
    if args.receipts:
        from watcher.sync import receipt_schema

        schema = receipt_schema()
    else:
        schema = load_format(settings.erp_format).schema("outbound" if args.outbound else "inbound")
    sys.stdout.buffer.write(msgspec.json.format(msgspec.json.encode(schema), indent=2) + b"\n")
    return 0


def cmd_prune(settings: Settings, args: argparse.Namespace) -> int:
    pruned = prune(settings, time.time() - args.older_than * 86400, args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    if args.dry_run:
        for path in (p for paths in pruned.removed.values() for p in paths):
            print(f"would remove {printable(str(path))}")
    where = ", ".join(f"{len(paths)} from {folder}" for folder, paths in pruned.removed.items())
    print(f"{verb} {pruned.count} files older than {args.older_than:g} days ({where})")
    for error in pruned.errors:
        print(f"watcher: {printable(error)}", file=sys.stderr)
    return 1 if pruned.errors else 0


def cmd_history(settings: Settings, args: argparse.Namespace) -> int:
    # here: the journal and its lines are this command's alone (``status`` reads the store)
    from watcher.observe import history
    from watcher.store import HistoryQuery, read_history

    query = HistoryQuery(args.number, args.file, args.since, args.limit)
    entries = read_history(settings, query)
    if args.json:
        sys.stdout.buffer.write(history.as_json(entries) + b"\n")
    elif entries:
        print("\n".join(history.lines(entries)))
    if not entries:
        print(f"watcher: nothing recorded for {history.subject(query)}", file=sys.stderr)
        return 1
    if len(entries) == query.limit:
        print(f"watcher: the newest {query.limit} shown; --limit for more", file=sys.stderr)
    return 0
