"""The outbound file name repair looks for, per order: the one the format's own render
gives, without rendering each order where the format names files ``prefix + number +
suffix`` (a 100,000-order inbound batch rendered each order twice just for its name)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers.tiny_format import TinyFormat
from watcher.core.tracos import TracosWorkOrder
from watcher.erp import OutboundFile, load_format
from watcher.sync import repair


class Padded:
    """Names ``WO-000042.json``: no single prefix and suffix around the number."""

    name = "padded"

    def render(self, order: TracosWorkOrder) -> OutboundFile:
        return OutboundFile(f"WO-{order.number:06d}.json", b"{}")

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(name)


def names_of(format: Any, numbers: range) -> list[str | None]:
    fixer = repair.Repair(format, None, None, None, None, None)  # type: ignore[arg-type]
    return [fixer._name(n) for n in numbers]


@pytest.mark.parametrize(
    "format", [load_format("challenge"), load_format("status"), TinyFormat(), Padded()]
)
def test_each_name_is_the_formats_own(format: Any) -> None:
    numbers = range(1, 2001, 37)
    assert names_of(format, numbers) == [repair._probe_name(format, n) for n in numbers]


def test_a_format_named_by_prefix_number_suffix_is_not_rendered_per_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    format = load_format("challenge")
    rendered = 0
    real = format.render

    def counting(order: TracosWorkOrder) -> OutboundFile:
        nonlocal rendered
        rendered += 1
        return real(order)

    monkeypatch.setattr(format, "render", counting)
    names_of(format, range(1, 10_001))
    assert rendered == len(repair._PROBES)
    assert repair._name_pattern(Padded()) is None
