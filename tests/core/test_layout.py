"""The shape of the package, kept by a test: a pure core, adapters only in the roots.

Imports are read from the source (``if TYPE_CHECKING:`` blocks left out, imports inside
functions counted), and followed through the package: a pure module may not reach an
I/O library through another of ours either.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "watcher"
# Libraries that touch files, sockets, processes, the terminal or the clock of an event loop.
IO_LIBRARIES = frozenset(
    {
        "anyio", "asyncio", "ctypes", "fcntl", "glob", "http", "io", "os", "pathlib",
        "prometheus_client", "pymongo", "rich", "shutil", "socket", "sqlite3", "stamina",
        "subprocess", "tempfile", "threading", "urllib", "watchfiles",
    }
)  # fmt: skip
# Settings hold the folders as ``Path`` values; nothing there touches them.
ALLOWED = {"watcher.core.settings": {"pathlib"}}
ADAPTERS = frozenset(
    {
        "watcher.store.mongo",
        "watcher.store.mongo_journal",
        "watcher.store.sqlite",
        "watcher.store.sqlite_journal",
        "watcher.erp.folders.source",
        "watcher.erp.folders.sink",
    }
)
ROOT = "watcher.app"  # the worker's composition root (the ERP adapters)
STORE_ROOT = "watcher.store.configured"  # the store the settings name, for every command


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imported(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and not node.level:
        # ``from watcher.erp import files`` imports the module watcher.fs
        subs = [f"{node.module}.{a.name}" for a in node.names]
        return [node.module, *(s for s in subs if s in MODULES)]
    return []


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and ast.unparse(node.test) in {
        "TYPE_CHECKING",
        "typing.TYPE_CHECKING",
    }


@cache
def imports(module: str) -> frozenset[str]:
    """What ``module`` imports directly (type-checking-only imports left out)."""
    found: list[str] = []
    pending: list[ast.AST] = [ast.parse(MODULES[module].read_text())]
    while pending:
        node = pending.pop()
        if _is_type_checking(node):
            continue
        found.extend(_imported(node))
        pending.extend(ast.iter_child_nodes(node))
    return frozenset(found)


def reach(module: str) -> frozenset[str]:
    """Everything ``module`` imports, following our own modules through."""
    seen: set[str] = set()
    pending = [module]
    while pending:
        for name in imports(pending.pop()):
            if name not in seen:
                seen.add(name)
                if name in MODULES:
                    pending.append(name)
    return frozenset(seen)


def io_in(module: str) -> set[str]:
    return {name for name in reach(module) if name.split(".")[0] in IO_LIBRARIES}


PURE = sorted(
    name
    for name in MODULES
    if name.startswith(("watcher.core", "watcher.erp.formats"))
    or name
    in {
        "watcher.core.errors",
        "watcher.core.settings",
        "watcher.erp.port",
        "watcher.erp.formats.json.strict",
    }
)


def test_the_reader_sees_imports() -> None:
    """The checks below read real imports (a reader that finds nothing would pass them)."""
    assert "watcher.erp.folders.source" in imports(ROOT)
    assert {"watcher.store.mongo", "watcher.store.sqlite"} <= imports(STORE_ROOT)
    assert "sqlite3" in io_in("watcher.store.sqlite")
    assert "anyio" not in imports("watcher.erp.port")  # only under TYPE_CHECKING there


@pytest.mark.parametrize("module", PURE)
def test_the_core_and_the_formats_import_no_io_library(module: str) -> None:
    """The core, the settings and every ERP format are pure, through every import."""
    assert io_in(module) - ALLOWED.get(module, set()) == set()


@pytest.mark.parametrize("module", sorted(set(MODULES) - ADAPTERS - {ROOT, STORE_ROOT}))
def test_only_the_composition_root_imports_adapters(module: str) -> None:
    """Exchange adapters are chosen in app.py alone, the store in store/configured.py."""
    assert imports(module) & ADAPTERS == set()


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("watcher.store")))
def test_the_store_knows_nothing_of_the_erp(module: str) -> None:
    """store/ imports nothing from erp/."""
    assert {name for name in reach(module) if name.startswith("watcher.erp")} == set()


@pytest.mark.parametrize("module", ["watcher.sync.inbound", "watcher.sync.outbound"])
def test_the_pipelines_know_no_format_and_no_exchange(module: str) -> None:
    """inbound.py and outbound.py work between the two ports, whatever is behind them."""
    known = {n for n in reach(module) if n.startswith(("watcher.erp", "watcher.store."))}
    assert known <= {
        "watcher.erp",
        "watcher.erp.port",
        "watcher.store.port",
        "watcher.store.journal",
    }
