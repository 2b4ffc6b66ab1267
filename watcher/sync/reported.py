"""Which unexportable document versions have been reported, kept across restarts.

An order that cannot be exported stays unsynced, so every start (and every ``once``) finds
it again: it is reported (a log line, a journal entry, a count) once per version, not once
per process. Versions are kept as digests in a small file in the state folder, read at the
first use and rewritten (atomically, not synced: losing it repeats a line, nothing more)
when a version is first reported or its order no longer needs to be.
"""

from __future__ import annotations

import contextlib
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

    def first_time(self, key: str, version: Hashable) -> bool:
        """Whether ``version`` of ``key`` is reported now for the first time (then it is
        remembered as reported)."""
        known = self._loaded()
        digest = _digest(version)
        if known.get(key) == digest:
            return False
        known[key] = digest
        self._save()
        return True

    def forget(self, key: str) -> None:
        """``key`` exports again: a later failure is news."""
        known = self._loaded()
        if known.pop(key, None) is not None:
            self._save()

    def _loaded(self) -> dict[str, str]:
        if self._known is None:
            self._known = {}
            assert self._path is not None
            with contextlib.suppress(FileNotFoundError):
                try:
                    self._known = _decode(self._path.read_bytes())
                except (OSError, msgspec.DecodeError) as exc:  # reported again, no harm
                    log.warning("cannot read %s (%s): starting afresh", self._path, exc)
        return self._known

    def _save(self) -> None:
        if self._path is None or self._known is None:
            return
        try:
            temp = files.write_temp(
                self._path.parent, self._path.name, msgspec.json.encode(self._known)
            )
            files.replace_with(temp, os.fspath(self._path))
        except OSError as exc:  # a full disk: a later start reports the order once more
            log.warning("cannot write %s: %s", self._path, exc.strerror or exc)
