"""Calls to the store that wait out an outage: exponential back-off with jitter (stamina)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import stamina

from watcher.core.errors import StoreUnavailable
from watcher.sync.stats import Count, Stats, StoreState

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoreRetry:
    """Retry policy for store calls; ``attempts=None`` waits as long as the outage lasts."""

    stats: Stats
    max_wait: float
    attempts: int | None = None

    async def __call__(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run ``operation`` until the store answers; the outage shows in ``stats.store``."""
        async for attempt in stamina.retry_context(
            on=StoreUnavailable,
            attempts=self.attempts,
            timeout=None,
            wait_initial=0.1,
            wait_max=self.max_wait,
        ):
            with attempt:
                try:
                    with self.stats.asking():
                        result = await operation()
                except StoreUnavailable as exc:
                    self._note_outage(exc, attempt.next_wait)
                    raise
                if not self.stats.store.connected:
                    if self.stats.store.error:  # not at the first answer after start-up
                        log.warning(
                            "store is reachable again; work resumes", extra={"store_up": True}
                        )
                    self.stats.store = StoreState()
                return result
        raise AssertionError("unreachable: stamina re-raises the last error")  # pragma: no cover

    def _note_outage(self, exc: StoreUnavailable, wait: float) -> None:
        retry_at = datetime.now(UTC) + timedelta(seconds=wait)
        self.stats.store = StoreState(connected=False, error=str(exc), next_attempt=retry_at)
        self.stats.count(Count.RETRIES)
        fields = {"store_up": False, "reason": str(exc), "retry_in_seconds": round(wait, 3)}
        log.warning("store unavailable (%s); next attempt in %.1f s", exc, wait, extra=fields)
