"""The commands that check and repair agreement between TracOS and the ERP: ``verify``,
``conflicts``, ``resend`` and ``replay`` (docs/agreement.md). Imported only to run one."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from typing import Final

import msgspec

from watcher.core.settings import Settings
from watcher.erp import load_format
from watcher.observe import Finding, history, verify
from watcher.store import HistoryQuery, JournalEvent, WorkOrderStore, read_history, with_store

UNSYNCED_GRACE: Final = timedelta(seconds=60)  # longer than this, waiting is a disagreement
_encode = msgspec.json.Encoder().encode


def cmd_verify(settings: Settings, args: argparse.Namespace) -> int:
    erp = load_format(settings.erp_format)
    archive = settings.archive_dir if args.archive else None

    async def check(store: WorkOrderStore) -> int:
        disagreements = 0
        now = datetime.now(UTC)
        findings = verify(
            store,
            erp,
            outbound=settings.outbound_dir,
            archive=archive,
            now=now,
            grace=UNSYNCED_GRACE,
        )
        async for finding in findings:
            disagreements += finding.counts
            _say(finding, args.json)
        return disagreements

    disagreements = with_store(settings, check)
    if args.json:
        print(_encode({"disagreements": disagreements}).decode())
    elif disagreements:
        print(f"{disagreements} disagreements between the store and the ERP's folders")
    else:
        print("the store and the ERP's folders agree")
    return 1 if disagreements else 0


def _say(finding: Finding, as_json: bool) -> None:
    if as_json:
        sys.stdout.buffer.write(_encode(finding) + b"\n")
    else:
        print(finding.line() if finding.counts else f"note: {finding.line()}")
    sys.stdout.flush()


def cmd_conflicts(settings: Settings, args: argparse.Namespace) -> int:
    query = HistoryQuery(since=args.since, limit=args.limit, event=JournalEvent.CONFLICT)
    entries = read_history(settings, query)
    if args.json:
        sys.stdout.buffer.write(history.as_json(entries) + b"\n")
    elif entries:
        print("\n".join(history.lines(entries)))
    else:
        print("no conflicts recorded")
    return 0
