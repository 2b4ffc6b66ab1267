"""Which unexportable document versions have been reported, kept across restarts.

An order that cannot be exported stays unsynced, so every start (and every ``once``) finds
it again: it is reported (a log line, a journal entry, a count) once per version, not once
per process. Versions are kept as digests in a small file in the state folder, read at the
first use and rewritten once per batch that changed it (atomically, not synced: losing it
repeats a line, nothing more).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Hashable
from pathlib import Path

import msgspec

from watcher import fs as files

log = logging.getLogger(__name__)
_decode = msgspec.json.Decoder(dict[str, str]).decode


def _digest(version: Hashable) -> str:
    """The same for the same version in any process (a store's versions repr stably)."""
    return hashlib.blake2b(repr(version).encode(), digest_size=12).hexdigest()


class ReportedVersions:
    """Document key → digest of the version last reported; in memory only without a path."""

    def __init__(self, path: Path | None = None) -> None:
        self._path = path
        self._known: dict[str, str] | None = None if path else {}
        self._changed = False

    def first_time(self, key: str, version: Hashable) -> bool:
        """Whether ``version`` of ``key`` is reported now for the first time (then it is
        remembered as reported)."""
        known = self._loaded()
        digest = _digest(version)
        if known.get(key) == digest:
            return False
        known[key] = digest
        self._changed = True
        return True

    def forget(self, key: str) -> None:
        """``key`` exports again: a later failure is news."""
        known = self._loaded()
        if known.pop(key, None) is not None:
            self._changed = True

    def _loaded(self) -> dict[str, str]:
        if self._known is None:
            self._known = {}
            assert self._path is not None
            try:
                self._known = _decode(self._path.read_bytes())
            except FileNotFoundError:
                pass  # nothing reported yet
            except (OSError, msgspec.DecodeError) as exc:  # reported again, no harm
                log.warning("cannot read %s (%s): starting afresh", self._path, exc)
        return self._known

    def save(self) -> None:
        """Keep what changed since the last save (once per batch, not once per order)."""
        if self._path is None or self._known is None or not self._changed:
            return
        self._changed = False
        try:
            temp = files.write_temp(
                self._path.parent, self._path.name, msgspec.json.encode(self._known)
            )
            files.replace_with(temp, os.fspath(self._path))
        except OSError as exc:  # a full disk: a later start reports the order once more
            log.warning("cannot write %s: %s", self._path, exc.strerror or exc)
