"""Our own exception tree; adapters raise these ``from`` the driver's errors.

WatcherError
├── ConfigError            bad setting: start-up stops with a one-line message
│   └── StoreTooNew        the store was written by a newer release (one line, exit 2)
├── CommandFailed          a command cannot do what was asked (one line, exit 1)
├── RejectedInput          permanent problem with one input: quarantine and report
│   ├── MalformedFile      not JSON at all (may still be being written: wait to settle)
│   ├── InvalidOrder       JSON, but not a valid ERP work order
│   └── InvalidDocument    not a TracOS document (``watcher put``): nothing is written
├── Unexportable           a stored document that cannot become an ERP file
├── OrdersRefused          the store refused some orders of a write for good (a validator,
│                          a size limit): those are reported, the others are stored
├── OrdersHeld             numbers the store cannot write safely now (stored twice): their
│                          files wait, nothing of the call is written
└── StoreUnavailable       transient store trouble: retry with back-off
    ├── StoreDamaged       the store's file is damaged or gone: retried, but the operator
    │                      must act (the message says what to do)
    └── StoreMissing       no store where the settings point (an inspection command, which
                           never creates one, run from the wrong directory)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:  # a type only (tracos imports this module)
    from watcher.core.tracos import Outcome

_MISSING_FIELD: Final = re.compile(r"Object missing required field `(?P<field>[^`]+)`")
MAX_REASON_CHARS: Final = 300  # a reason may quote the input (a bad enum value): kept short


class WatcherError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(WatcherError):
    """A setting is missing or malformed; the message names the variable."""


class StoreTooNew(ConfigError):
    """The store's format is newer than this release reads: no retry can fix that."""


class CommandFailed(WatcherError):
    """A command cannot do what it was asked (an unreadable input file, say); nothing done."""


class RejectedInput(WatcherError):
    """An input that can never be used as it is; ``path`` is its JSON path, if known."""

    def __init__(self, reason: str, path: str = "$") -> None:
        super().__init__(reason)
        self.reason = reason
        self.path = path


class MalformedFile(RejectedInput):
    """The bytes are not one complete JSON document (maybe still being written)."""


class InvalidOrder(RejectedInput):
    """The JSON is well formed but breaks the ERP work-order contract."""


class InvalidDocument(RejectedInput):
    """A TracOS document given to ``watcher put`` breaks docs/spec.md §2.2 (its index in the
    message)."""


class Unexportable(WatcherError):
    """A TracOS document that cannot be translated to the ERP format."""


class OrdersRefused(WatcherError):
    """The store refused some orders of one upsert for good; the others are written.

    ``refused``: the server's reason by the order's index in the call; ``outcomes``: what
    became of each order, in the order given (None for a refused one).
    """

    def __init__(self, refused: Mapping[int, str], outcomes: Sequence[Outcome | None]) -> None:
        first = min(refused)
        super().__init__(f"{len(refused)} orders refused by the store; first: {refused[first]}")
        self.refused = dict(refused)
        self.outcomes = list(outcomes)


class OrdersHeld(WatcherError):
    """The store cannot write these numbers safely now (stored twice, so the unique index
    on ``number`` cannot be made): nothing of the call is written. The files holding them
    wait; the other orders may be written in a call of their own."""

    def __init__(self, numbers: Iterable[int], reason: str) -> None:
        self.numbers = frozenset(numbers)
        shown = ", ".join(map(str, sorted(self.numbers)[:HELD_LISTED]))
        more = ", …" if len(self.numbers) > HELD_LISTED else ""
        super().__init__(f"orders {shown}{more} wait: {reason}")


HELD_LISTED: Final = 5  # held numbers named in the message


class StoreUnavailable(WatcherError):
    """The store cannot be reached right now; the operation may be retried.

    ``hint``: what an operator could check, for the last line of a command that gives up.
    """

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


class StoreDamaged(StoreUnavailable):
    """The embedded store's file is damaged, deleted or replaced: nothing is acknowledged."""


class StoreMissing(StoreUnavailable):
    """There is no store where the settings point; the message says how to point elsewhere."""


def reason_and_path(message: str, prefix: str) -> tuple[str, str]:
    """Split msgspec's ``reason - at `$.path``` and name the field a missing-field error omits."""
    head, found, at = message.rpartition(" - at `")  # the last: a quoted value may hold one
    reason = head if found else message
    path = prefix + at.rstrip("`").removeprefix("$") if found else prefix
    missing = _MISSING_FIELD.fullmatch(reason)
    if missing:
        return f"missing required field `{missing['field']}`", f"{path}.{missing['field']}"
    return capped(reason), capped(path)


def capped(text: str, limit: int = MAX_REASON_CHARS) -> str:
    """``text``, cut to ``limit`` characters with an ellipsis when longer."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
