"""The field-drift ledger (``field-drift.json`` in the state folder): the unknown ERP keys
seen in the product's life, with when each was first and last seen and an example.

Apart from ``watcher.sync.drift`` (which fills it) so that ``watcher status``, which only
reads it, does not load the worker's stats, the ERP port or the store with it.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Final

import msgspec

from watcher import fs as files

log = logging.getLogger("watcher.sync.drift")  # its lines are the drift watch's
LEDGER_FILE: Final = "field-drift.json"  # in the state folder


class KeySeen(msgspec.Struct, frozen=True):
    """An ERP key the format does not know (field drift): in how many files checked it was,
    when first and last, and an order and the name of a file that carried it."""

    files: int
    first: datetime
    last: datetime
    example_order: int | None = None
    example_file: str | None = None  # the name the ERP gave a file that carried it


class DriftLedger:
    """The unknown keys seen in the product's life, in one small JSON file rewritten
    atomically (not synced: losing it announces a key once more, nothing more)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def read(self) -> dict[str, KeySeen]:
        if self.path is None:
            return {}
        try:
            return _decode_ledger(self.path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, msgspec.DecodeError) as exc:  # announced again, no harm
            log.warning("cannot read %s (%s): starting afresh", self.path, exc)
            return {}

    def write(self, keys: dict[str, KeySeen]) -> None:
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temp = files.write_temp(self.path.parent, self.path.name, msgspec.json.encode(keys))
            files.replace_with(temp, os.fspath(self.path))
        except OSError as exc:  # a full disk: a later start announces the key once more
            log.warning("cannot write %s: %s", self.path, exc.strerror or exc)


_decode_ledger = msgspec.json.Decoder(dict[str, KeySeen]).decode
