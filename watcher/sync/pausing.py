"""Holding one direction for maintenance (``watcher pause inbound|outbound``).

A pause is a marker file in the state folder, so it outlives restarts until ``watcher
resume`` removes it, and every worker sharing the folder obeys it. A running worker looks
at the markers every second; a paused direction takes no new work (the batch in flight
finishes): inbound leaves files in the inbound folder, outbound holds the changes it is
handed until the resume. A resumed inbound direction takes files again at its next look
(a file event, or ``INBOUND_RESCAN_SECONDS`` at most); a resumed outbound one at once.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

if TYPE_CHECKING:
    import anyio

log = logging.getLogger(__name__)
Direction = Literal["inbound", "outbound"]
DIRECTIONS: Final[tuple[Direction, ...]] = ("inbound", "outbound")
LOOK_SECONDS: Final = 1.0


def marker(state_dir: Path, direction: Direction) -> Path:
    return state_dir / f"paused-{direction}"


def read_paused(state_dir: Path) -> frozenset[Direction]:
    """The directions paused now (a marker that cannot be read counts as there)."""
    return frozenset(d for d in DIRECTIONS if marker(state_dir, d).exists())


def pause(state_dir: Path, direction: Direction) -> bool:
    """Leave the marker; False when the direction was already paused."""
    path = marker(state_dir, direction)
    if path.exists():
        return False
    state_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(f"paused by `watcher pause`; `watcher resume {direction}` ends it\n")
    return True


def resume(state_dir: Path, direction: Direction) -> bool:
    """Remove the marker; False when the direction was not paused."""
    try:
        marker(state_dir, direction).unlink()
    except FileNotFoundError:
        return False
    return True


class Pauses:
    """The directions a worker holds, as last read from the markers."""

    def __init__(self) -> None:
        self.held: frozenset[Direction] = frozenset()
        self._resumed: anyio.Event | None = None  # made in the event loop, when first awaited

    def holds(self, direction: Direction) -> bool:
        return direction in self.held

    def update(self, held: frozenset[Direction]) -> None:
        for direction in sorted(held - self.held):
            log.warning("%s paused: no new work until `watcher resume %s`", direction, direction)
        for direction in sorted(self.held - held):
            log.warning("%s resumed", direction)
        if self.held - held and self._resumed is not None:
            self._resumed.set()
            self._resumed = None
        self.held = held

    async def wait(self, direction: Direction) -> None:
        """Return at once unless ``direction`` is paused; then when it is resumed."""
        while direction in self.held:
            if self._resumed is None:
                import anyio  # here, not at import: ``status`` reads the markers without it

                self._resumed = anyio.Event()
            await self._resumed.wait()

    async def follow(self, state_dir: Path) -> None:
        """Read the markers every ``LOOK_SECONDS`` for as long as the worker runs."""
        import anyio

        while True:
            self.update(await anyio.to_thread.run_sync(read_paused, state_dir))
            await anyio.sleep(LOOK_SECONDS)
