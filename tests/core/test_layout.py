"""The shape of the package, kept by a test: a pure core, adapters only in the roots,
every module in a room, and rooms that meet only through their faces.

Imports are read from the source (``if TYPE_CHECKING:`` blocks left out, imports inside
functions counted), and followed through the package: a pure module may not reach an
I/O library through another of ours either.
"""

from __future__ import annotations

import ast
import importlib
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
        "watcher.store.mongo_carry",  # the adapter's writes with its journal's entries
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


# The rooms, and the rooms each may import from (the core and fs.py: any room). The face of
# a room is its package: the names its ``__init__`` lists in ``__all__``.
ROOMS: dict[str, frozenset[str]] = {
    "core": frozenset(),
    "erp": frozenset(),
    "store": frozenset(),
    "sync": frozenset({"erp", "store"}),
    "observe": frozenset({"erp", "store", "sync"}),
    "cli": frozenset({"erp", "store", "sync", "observe", "app", "opening"}),
}
OPEN = frozenset({"core", "fs"})  # shared by every room
# The composition root: ``app``, and ``opening`` (the worker's opening steps, which
# ``once`` with nothing to do takes without loading the worker)
ROOT_MODULES = frozenset({"app", "opening"})
TOP = frozenset({"watcher", "watcher.__main__", "watcher.app", "watcher.opening", "watcher.fs"})


def room_of(module: str) -> str | None:
    """``erp`` for ``watcher.erp.folders.source``; ``app`` or ``fs`` for those; None above."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "watcher" else None


def imported_names(module: str, source: str | None = None) -> list[tuple[str, str | None]]:
    """Each of our modules ``module`` imports, with the name it takes from it (None for a
    plain ``import``); type-checking-only imports left out."""
    found: list[tuple[str, str | None]] = []
    pending: list[ast.AST] = [ast.parse(source or MODULES[module].read_text())]
    while pending:
        node = pending.pop()
        if _is_type_checking(node):
            continue
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names]
        pending.extend(ast.iter_child_nodes(node))
    return [(m, n) for m, n in found if m == "watcher" or m.startswith("watcher.")]


@cache
def face(room: str) -> frozenset[str]:
    """The names a room shows other rooms: its ``__init__``'s ``__all__``."""
    for node in ast.parse((PACKAGE / room / "__init__.py").read_text()).body:
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "__all__":
            return frozenset(ast.literal_eval(node.value))
    return frozenset()


def foreign_doors(module: str, source: str | None = None) -> list[str]:
    """Imports of ``module`` into another room that do not go through that room's face."""
    mine = room_of(module)
    wrong = []
    for target, name in imported_names(module, source):
        if target == "watcher" and f"watcher.{name}" not in MODULES:
            continue  # the package's own names (``__version__``)
        theirs = room_of(target) if target != "watcher" else room_of(f"watcher.{name}")
        if theirs in OPEN or theirs in {mine, None} | ROOT_MODULES:
            continue  # the root is a module, not a room: who may use it is checked below
        if target != f"watcher.{theirs}" or name not in face(theirs):
            wrong.append(f"{target}:{name}")
    return wrong


IN_ROOMS = sorted(set(MODULES) - TOP)


def test_the_top_holds_the_root_and_the_file_primitives_alone() -> None:
    """At most five modules at the top of the package; every other one is in a room."""
    top = {name for name in MODULES if name.count(".") <= 1 and room_of(name) not in ROOMS}
    assert top == TOP
    assert len(top) <= 5
    assert {room_of(name) for name in IN_ROOMS} == set(ROOMS)


@pytest.mark.parametrize("module", IN_ROOMS)
def test_rooms_meet_only_through_their_faces(module: str) -> None:
    """Another room's module is never imported, only the names its face shows."""
    assert foreign_doors(module) == []


@pytest.mark.parametrize("module", IN_ROOMS)
def test_each_room_imports_only_the_rooms_below_it(module: str) -> None:
    """The direction of the dependencies: core ← erp, store ← sync ← observe ← cli."""
    mine = room_of(module)
    assert mine is not None
    reached = {room_of(target) for target, _ in imported_names(module)} - {mine, None}
    assert reached - OPEN <= ROOMS[mine]


@pytest.mark.parametrize("room", sorted(set(ROOMS) - {"core", "cli"}))
def test_every_name_a_face_shows_exists(room: str) -> None:
    """A face's names all resolve (a lazy one loads its module on first use)."""
    package = importlib.import_module(f"watcher.{room}")
    assert face(room)
    for name in face(room):
        assert getattr(package, name) is not None


@pytest.mark.parametrize(
    ("source", "forced"),
    [
        ("from watcher.erp.folders.upkeep import prune", ["watcher.erp.folders.upkeep:prune"]),
        ("from watcher.erp import prune", []),
        ("from watcher.erp import claims", ["watcher.erp:claims"]),  # not on the face
        ("import watcher.observe.console", ["watcher.observe.console:None"]),
        ("from watcher.store.sqlite import SqliteStore", ["watcher.store.sqlite:SqliteStore"]),
        ("from watcher.sync.stats import age", []),  # its own room
        ("from watcher.core.tracos import decide", []),  # the core is open to all
    ],
)
def test_the_face_check_sees_a_door_forced(source: str, forced: list[str]) -> None:
    """The face check finds another room's module imported directly, and only that."""
    assert foreign_doors("watcher.sync.example", source) == forced


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
