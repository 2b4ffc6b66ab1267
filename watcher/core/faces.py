"""A room's face: the names other rooms may import from it, loaded on first use.

A package's ``__init__`` lists its public names in ``__all__`` and maps the costly ones
to the module that defines them; ``lazy`` makes the module-level ``__getattr__`` (PEP 562)
that imports that module only when a name is first asked for. So ``watcher status`` never
loads the live console or the worker because a face mentions them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from importlib import import_module


def lazy(package: str, names: Mapping[str, str]) -> Callable[[str], object]:
    """``__getattr__`` for ``package``: ``names`` maps each public name to the submodule
    that defines it (the name of a submodule maps to itself: the module is the value)."""

    def __getattr__(name: str) -> object:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        loaded = import_module(f"{package}.{module}")
        value = loaded if module == name else getattr(loaded, name)
        setattr(sys.modules[package], name, value)  # asked once, then a plain attribute
        return value

    return __getattr__
