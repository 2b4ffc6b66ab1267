"""PyMongo's errors as ours, at the MongoDB adapter's edge.

Three kinds, by what the worker does next: an outage (``StoreUnavailable``: wait, retry),
a setting to fix (``ConfigError``: one line, exit 2), or one document the server refuses
for good (a validator, a size limit, a shard key: that order is reported, the others go
on). A write the server applied but could not make durable (a ``writeConcernError``) is
an outage: nothing is taken as done until the write concern is met.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    NetworkTimeout,
    NotPrimaryError,
    PyMongoError,
    ServerSelectionTimeoutError,
)

from watcher.core.errors import ConfigError, StoreUnavailable, WatcherError
from watcher.store.port import Document

# With directConnection and replicaSet, pymongo hides why a server did not answer (refused,
# TLS) behind this; the store looks at the address itself (``MongoStore.ping``).
NO_ANSWER_AS_MEMBER: Final = "but this node belongs to a set named 'None'"
NOT_A_MEMBER: Final = "no answer from the server as a member of its replica set"
DUPLICATE_KEY: Final = 11000
BAD_VALUE: Final = 2
DUPLICATES_LISTED: Final = 5  # duplicate numbers named in the message
# A setting or a permission to fix: waiting does not help. What to fix, by code.
REFUSED: Final = {
    13: "the MongoDB user lacks a privilege the worker needs (readWrite on the database)",
    18: "MongoDB authentication failed: check the user, password and authSource in MONGO_URI",
    20: "MongoDB refused an operation",  # retryable writes where the server has none: below
    67: (
        "MongoDB cannot make the unique index on number (a sharded collection must be"
        " sharded on number, or on a key that starts with it)"
    ),
    85: "an index on number with other options exists: drop it (the worker makes its own)",
    86: "an index on number with other options exists: drop it (the worker makes its own)",
    8000: (
        "MongoDB Atlas refused us: a bad user or password in MONGO_URI, or a limit of"
        " the cluster's tier"
    ),
}
# Timeouts, shutdowns, interruptions, write conflicts, a write concern not met: retried.
TRANSIENT: Final = frozenset({6, 7, 43, 50, 64, 89, 91, 112, 262, 9001, 11600, 11601})
NOT_PRIMARY: Final = frozenset({189, 10107, 11602, 13435, 13436})  # step-downs, elections
UNREACHABLE_HINT: Final = (
    "check that MongoDB is running and that MONGO_URI names it"
    " (with docker compose: docker compose ps mongo)"
)
TIMED_OUT_HINT: Final = (
    "the server or the network is slow or stuck; MONGO_TIMEOUT_SECONDS bounds each call"
)


@contextmanager
def translated(passing: type[Exception] = BulkWriteError) -> Iterator[None]:
    """Map PyMongo's errors to ours (the adapter's edge): an outage, or a setting to fix.

    ``passing``: driver errors the caller handles itself, unless they are one of those.
    """
    try:
        yield
    except PyMongoError as exc:
        known = known_error(exc)
        if known is None and isinstance(exc, passing):
            raise
        if isinstance(known, ConfigError):
            raise known from None  # its message is the whole story
        raise known or StoreUnavailable(f"MongoDB error: {first_line(exc)}") from exc


def known_error(exc: PyMongoError) -> WatcherError | None:
    """Ours for a driver error whose kind is known; None for any other."""
    code = getattr(exc, "code", None)
    no_primary = isinstance(exc, ConnectionFailure) and "RSSecondary" in str(exc)
    if isinstance(exc, NotPrimaryError) or code in NOT_PRIMARY or no_primary:
        return StoreUnavailable(f"MongoDB: {_not_primary(exc)}")
    if isinstance(exc, ConnectionFailure):
        return _connection_failure(exc)
    if code in REFUSED:
        return ConfigError(_refusal(exc, REFUSED[code]))
    if code in TRANSIENT:
        return StoreUnavailable(f"MongoDB: {first_line(exc)}")
    return None


class Unconfirmed(StoreUnavailable):
    """Applied, but not confirmed durable (a write concern not met): retried. ``details``:
    what the attempt did, so that the retry can tell its own earlier writes."""

    def __init__(self, message: str, details: Document) -> None:
        super().__init__(message)
        self.details = details


def write_concern_failure(details: Document) -> Unconfirmed | None:
    """A bulk's write-concern error as an outage (applied, not durable: retried), if any."""
    errors = details.get("writeConcernErrors") or []
    if not errors:
        return None
    first = errors[0]
    return Unconfirmed(
        "MongoDB did not confirm the write as durable (write concern not met:"
        f" {first.get('errmsg', '?')}, code {first.get('code', '?')}); retried",
        details,
    )


def is_refusal(error: dict[str, Any]) -> bool:
    """A bulk's write error that is about that one document (a validator, a size limit, a
    shard key, an update the document cannot take), not the server's state."""
    code = error.get("code")
    transient = code in TRANSIENT or code in NOT_PRIMARY or is_missing_index(error)
    return code != DUPLICATE_KEY and not transient


def is_missing_index(error: dict[str, Any]) -> bool:
    """A write refused because the index it was told to use is gone (BadValue on the hint)."""
    return error.get("code") == BAD_VALUE and "hint" in str(error.get("errmsg", ""))


def refusal_reason(error: dict[str, Any]) -> str:
    """The server's reason for refusing one document, on one line."""
    text = str(error.get("errmsg") or "refused").splitlines()[0][:200]
    return f"MongoDB refused it: {text} (code {error.get('code', '?')})"


def _connection_failure(exc: ConnectionFailure) -> StoreUnavailable:
    """Refused, TLS, timed out: named as such, whatever the URI form (a replica set's
    topology description is no reason)."""
    text = str(exc)
    if isinstance(exc, NetworkTimeout) or (
        not isinstance(exc, ServerSelectionTimeoutError) and "timed out" in text
    ):
        said = f"MongoDB did not answer in time: {first_line(exc)}"
        return StoreUnavailable(said, TIMED_OUT_HINT)
    if NO_ANSWER_AS_MEMBER in text:  # pymongo's words for a seed that never answered
        return unreachable(NOT_A_MEMBER)
    if "SSL" in text or "TLS" in text or "certificate" in text:
        return unreachable(f"TLS failure ({first_line(exc)})")
    if "refused" in text.lower() or f"[Errno {errno.ECONNREFUSED}]" in text:
        return unreachable(f"connection refused ({first_line(exc)})")
    return unreachable(first_line(exc))


def unreachable(why: str) -> StoreUnavailable:
    """The server could not be reached, and why (refused, TLS, no answer): one line."""
    return StoreUnavailable(f"MongoDB unreachable: {why}", UNREACHABLE_HINT)


def _refusal(exc: PyMongoError, what: str) -> str:
    if "retryWrites" in str(exc):
        return "this MongoDB server has no retryable writes: add retryWrites=false to MONGO_URI"
    return f"{what} ({first_line(exc)})"


def duplicate_numbers(duplicates: list[Document]) -> ConfigError:
    """The unique index on ``number`` cannot be made: these numbers are stored twice or more."""
    listed = ", ".join(f"{d['_id']} ({d['count']} documents)" for d in duplicates)
    return ConfigError(
        f"duplicate numbers stop the unique index on number: {listed or '?'}"
        f"{', …' if len(duplicates) >= DUPLICATES_LISTED else ''};"
        " keep one document per number (newer wins needs the index)"
    )


def _not_primary(exc: PyMongoError) -> str:
    return f"not primary (a step-down or an election; waiting for a primary): {first_line(exc)}"


def first_line(exc: BaseException) -> str:
    """The driver's message without its long topology description or error document."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    text = text.split(", full error: ")[0]
    return text.split(" (configured timeouts")[0].split(", Timeout:")[0][:200]


class UniqueIndexMissing(StoreUnavailable):
    """A write refused because the unique index on ``number`` is gone."""


def transient_write_error(details: Document) -> StoreUnavailable | None:
    """A bulk's write error that is about the server's state, not a document: an outage."""
    for error in details.get("writeErrors", []):
        if error["code"] != DUPLICATE_KEY and not is_refusal(error):
            return StoreUnavailable(f"MongoDB: {error.get('errmsg')} (code {error['code']})")
    return None
