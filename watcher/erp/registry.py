"""ERP formats by name: the built-ins, and any installed package's entry points.

A package adds a format without touching this one by declaring, in its own metadata::

    [project.entry-points."tracos_sync.erp_formats"]
    myformat = "mypackage.format:FORMAT"

where ``FORMAT`` is an ``ErpFormat``. Built-in names cannot be taken over.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Final

from watcher.core.errors import ConfigError

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    from watcher.erp.port import ErpFormat

GROUP: Final = "tracos_sync.erp_formats"
# Built-ins are known here rather than through our own metadata, so a plain checkout
# (no installed distribution) still has them.
BUILT_IN: Final = {
    "challenge": "watcher.erp.formats.challenge:FORMAT",
    "status": "watcher.erp.formats.status:FORMAT",
}


def _installed() -> dict[str, EntryPoint]:
    # Asked only for names that are not built in: reading every installed distribution's
    # metadata costs tens of milliseconds, and each command loads a format.
    from importlib.metadata import entry_points

    return {point.name: point for point in entry_points(group=GROUP)}


def format_names() -> list[str]:
    """Every format that ``ERP_FORMAT`` may name."""
    return sorted(BUILT_IN.keys() | _installed().keys())


def load_format(name: str) -> ErpFormat:
    """The format called ``name``; an unknown name is a setting to fix (``ERP_FORMAT``)."""
    from watcher.erp.port import ErpFormat  # not for `once` with nothing to do (BUILT_IN)

    installed = {} if name in BUILT_IN else _installed()
    if name not in BUILT_IN and name not in installed:
        known = ", ".join(sorted(BUILT_IN.keys() | installed.keys()))
        raise ConfigError(f"ERP_FORMAT: unknown format {name!r}; known formats: {known}")
    try:
        if name in BUILT_IN:
            module, _, attribute = BUILT_IN[name].partition(":")
            loaded = getattr(import_module(module), attribute)
        else:
            loaded = installed[name].load()
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"ERP_FORMAT: format {name!r} cannot be loaded: {exc}") from None
    if not isinstance(loaded, ErpFormat):
        raise ConfigError(
            f"ERP_FORMAT: {name!r} is not an ERP format (no name, judge, render, schema)"
        )
    return loaded
