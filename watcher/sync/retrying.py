"""Calls to the store that wait out an outage: exponential back-off with jitter (stamina).

The retry library is imported only once a call has failed: the first attempt of every
call is made here, and a failure is handed to stamina as its own first attempt, so the
waits, the attempts counted and the outage noted are the same as if stamina had made it.
A start-up with nothing to retry (``watcher once`` with nothing to do) never loads it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TypeVar

from watcher.core.errors import StoreUnavailable
from watcher.sync.stats import Count, Stats, StoreState

T = TypeVar("T")
log = logging.getLogger(__name__)
Failed = Callable[[Exception, float], None]  # (the error, seconds until the next attempt)


def _nothing(exc: Exception, wait: float) -> None:
    """No note of a failed attempt."""


async def attempted(
    call: Callable[[], Awaitable[T]],
    on: type[Exception],
    attempts: int | None,
    wait_max: float,
    failed: Failed = _nothing,
) -> T:
    """``call()``, again with stamina's back-off while it raises ``on`` (``attempts=None``:
    for as long as it does); ``failed`` hears of each failure and the wait after it."""
    first: Exception | None
    try:
        return await call()
    except on as exc:
        first = exc
    import stamina  # only a failure loads it: ~8 ms of every start otherwise

    stamina.instrumentation.set_on_retry_hooks([])  # our own log lines say more
    async for attempt in stamina.retry_context(
        on=on, attempts=attempts, timeout=None, wait_initial=0.1, wait_max=wait_max
    ):
        with attempt:
            try:
                if first is not None:  # stamina's first attempt is the one made above
                    raised, first = first, None
                    raise raised
                return await call()
            except on as exc:
                failed(exc, attempt.next_wait)
                raise
    raise AssertionError("unreachable: stamina re-raises the last error")  # pragma: no cover


class StoreRetry:
    """Retry policy for store calls; ``attempts=None`` waits as long as the outage lasts."""

    __slots__ = ("attempts", "max_wait", "stats")

    def __init__(self, stats: Stats, max_wait: float, attempts: int | None = None) -> None:
        self.stats = stats
        self.max_wait = max_wait
        self.attempts = attempts

    async def __call__(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run ``operation`` until the store answers; the outage shows in ``stats.store``."""
        result = await attempted(
            partial(self._asked, operation),
            StoreUnavailable,
            self.attempts,
            self.max_wait,
            self._note_outage,
        )
        self.answered()
        return result

    def answered(self) -> None:
        """A call went through: the store shows connected again (said, after an outage)."""
        if not self.stats.store.connected:
            if self.stats.store.error:  # not at the first answer after start-up
                log.warning("store is reachable again; work resumes", extra={"store_up": True})
            self.stats.store = StoreState()

    def noticed(self, reason: str, wait: float) -> None:
        """An outage met by a write these retries did not make (the journal's own, or its
        entries taken along after a write that answered): the store shows unavailable, with
        the writer's next try, until a call goes through (``answered``). A step-down's
        first failing write may be the journal's: the driver then waits for the new primary
        and the next upsert never fails. The writer says it in its own words."""
        self._show_outage(reason, wait)

    async def _asked(self, operation: Callable[[], Awaitable[T]]) -> T:
        with self.stats.asking():
            return await operation()

    def _show_outage(self, reason: str, wait: float) -> None:
        retry_at = datetime.now(UTC) + timedelta(seconds=wait)
        self.stats.store = StoreState(connected=False, error=reason, next_attempt=retry_at)

    def _note_outage(self, exc: Exception, wait: float) -> None:
        self._show_outage(str(exc), wait)
        self.stats.count(Count.RETRIES)
        fields = {"store_up": False, "reason": str(exc), "retry_in_seconds": round(wait, 3)}
        log.warning("store unavailable (%s); next attempt in %.1f s", exc, wait, extra=fields)
