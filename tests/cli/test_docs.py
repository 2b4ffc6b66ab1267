"""The README and docs/ tell the truth: every `watcher` command they show exists with the
flags they give it, the runnable ones run, and every link and every file they name is
there. (The README's quick start runs beside a worker in ``test_cli.py``.)"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from contextlib import redirect_stderr
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any

import pytest

from watcher.cli.main import _parser

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# spec.md says what the product must do, commands still to be built among it; the other
# pages show how to use what there is, and are held to the real argument parser.
USAGE_PAGES = [page for page in PAGES if page.name != "spec.md"]

FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.M | re.S)
SPAN = re.compile(r"`([^`\n]+)`")
SHELL_BLOCKS = {"sh", "bash", "shell", "console"}
LONG_RUNNING = {"run"}  # shown with Ctrl-C or a container around it


@dataclass(frozen=True)
class Shown:
    """One `watcher` command as a page shows it."""

    where: str  # page:line
    args: tuple[str, ...]  # after the program name
    concrete: bool  # from a shell block: runnable as written (a table's usage is not)

    def __str__(self) -> str:
        return f"{self.where}: watcher {' '.join(self.args)}"


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _watcher_args(command: str) -> tuple[str, ...] | None:
    """The arguments of the `watcher` command in a shell line, or None if it runs none.

    ``watcher``, ``.venv/bin/watcher`` and ``docker compose exec [-T] watcher watcher``
    run it, also after a pipe; redirections and comments are left out."""
    try:
        tokens = shlex.split(command.removeprefix("$ "), comments=True)
    except ValueError:
        return None
    segment: list[str] = []
    for token in [*tokens, "|"]:
        if token not in {"|", "&&", ";"}:
            segment.append(token)
            continue
        args = _program_args(segment)
        if args is not None:
            return args
        segment = []
    return None


def _program_args(tokens: list[str]) -> tuple[str, ...] | None:
    while tokens and re.fullmatch(r"[A-Z_]+=.*", tokens[0]):
        tokens = tokens[1:]  # VAR=value before the command
    if tokens[:3] == ["docker", "compose", "exec"]:
        tokens = tokens[3:]
        while tokens and tokens[0].startswith("-"):
            tokens = tokens[1:]  # exec's own options
        tokens = tokens[1:]  # the service; then the command run in it
    if not tokens or tokens[0] not in {"watcher", ".venv/bin/watcher"}:
        return None
    args: list[str] = []
    for token in tokens[1:]:
        if token in {"<", ">", ">>", "2>&1"} or token.startswith((">", "<")):
            break
        args.append(token)
    if not args or not re.fullmatch(r"[a-z][a-z-]*", args[0]):
        return None  # "watcher 1.0.0 on …", a quoted output line
    return tuple(args)


def shown_commands(page: Path) -> Iterator[Shown]:
    """Every `watcher` command on ``page``: in its shell blocks (a console block's ``$``
    lines), on ``$`` lines of any other block, and in its inline code."""
    text = page.read_text()
    name = page.relative_to(ROOT)
    for block in FENCE.finditer(text):
        language, body = block.groups()
        first = _line_of(text, block.start(2))
        for number, line in enumerate(body.splitlines(), first):
            prompted = line.startswith("$ ")
            if not prompted and (language not in SHELL_BLOCKS or language == "console"):
                continue
            args = _watcher_args(line)
            if args is not None:
                yield Shown(f"{name}:{number}", args, concrete=True)
    prose = FENCE.sub(lambda block: "\n" * block.group(0).count("\n"), text)
    for span in SPAN.finditer(prose):
        args = _watcher_args(span.group(1).replace("[", " ").replace("]", " "))
        if args is not None:
            yield Shown(f"{name}:{_line_of(prose, span.start())}", args, concrete=False)


SHOWN = [shown for page in USAGE_PAGES for shown in shown_commands(page)]


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = _parser()
    [table] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(table.choices)


def test_the_readme_is_a_front_door() -> None:
    """The README stays short and leads to every page of docs/."""
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    for page in PAGES[1:]:
        assert f"(docs/{page.name})" in readme, f"the README does not link to docs/{page.name}"


def test_the_docs_show_commands() -> None:
    """The reader of the pages finds something: both kinds of command, on several pages."""
    assert {shown.concrete for shown in SHOWN} == {True, False}
    assert len({shown.where.split(":")[0] for shown in SHOWN}) >= 4
    assert len(SHOWN) > 50


@pytest.mark.parametrize("shown", SHOWN, ids=str)
def test_every_command_shown_exists_with_its_flags(shown: Shown) -> None:
    """A command or a flag the docs show is one the real argument parser knows; a command
    shown in a shell block parses, values and all."""
    commands = _subcommands()
    name, *rest = shown.args
    assert name in commands, f"{shown}: no command {name!r} (known: {', '.join(commands)})"
    known = commands[name]._option_string_actions
    for token in rest:
        flag = token.strip("(),").split("=")[0]
        if re.fullmatch(r"--?[a-z][a-z-]*", flag):
            assert flag in known, f"{shown}: `watcher {name}` has no option {flag}"
    if shown.concrete:
        errors = StringIO()
        try:
            with redirect_stderr(errors):
                _parser().parse_args(list(shown.args))
        except SystemExit:
            pytest.fail(f"{shown}: {errors.getvalue().strip()}")


LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    kept = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return kept.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    prose = FENCE.sub("", page.read_text())
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", prose, re.M)}


def test_the_slug_is_githubs() -> None:
    """Anchors are computed the way GitHub makes them."""
    assert slug("History: what happened to order 42?") == "history-what-happened-to-order-42"
    assert slug("The `status` dialect") == "the-status-dialect"
    assert slug("2.2 The TracOS work order") == "22-the-tracos-work-order"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_at_something_real(page: Path) -> None:
    """Each relative link names a file of the repository and, with a #, one of its headings."""
    for target in LINK.findall(FENCE.sub("", page.read_text())):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name} links to {target}: no such file"
        if anchor and linked.suffix == ".md":
            assert anchor in anchors(linked), f"{page.name} links to {target}: no such heading"


NAMED_PATH = re.compile(r"(?<![\w./-])((?:watcher|tests|scripts)/[\w/.-]*[\w/])(?:::(\w+))?")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_file_and_test_named_exists(page: Path) -> None:
    """A module, script or test the page names (``tests/x/test_y.py::test_z``) is there."""
    for path, test in NAMED_PATH.findall(page.read_text()):
        assert (ROOT / path).exists(), f"{page.name} names {path}, which does not exist"
        if test:
            source = (ROOT / path).read_text()
            assert re.search(rf"def {test}\b", source), f"{page.name}: no {test} in {path}"


# --- the runnable examples, run (subprocesses: the slow tier) ---------------------------


def _clean_env(home: Path) -> dict[str, str]:
    """The environment of an operator with the package installed and no settings made."""
    ours = ("MONGO_", "DATA_", "INBOUND_", "OUTBOUND_", "LOG_", "METRICS_", "HISTORY_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    env.pop("ERP_FORMAT", None)
    env.pop("WATCHER_ID", None)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(home)
    return env


@pytest.mark.system
def test_the_commands_shown_run(tmp_path: Path) -> None:
    """Every `watcher` command of a shell block runs in a worker's folder (the embedded
    store, sample data) and ends with exit 0 or 1, never a usage error or a traceback."""
    env = _clean_env(tmp_path)

    def watcher(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "watcher", *args],
            cwd=tmp_path,
            env=env,
            input="[]",
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )

    assert watcher("seed").returncode == 0
    assert watcher("once").returncode == 0
    concrete = [s for s in SHOWN if s.concrete and s.args[0] not in LONG_RUNNING]
    assert len(concrete) > 10
    for shown in concrete:
        result = watcher(*shown.args)
        assert result.returncode in {0, 1}, f"{shown}: exit {result.returncode}\n{result.stderr}"
        assert "Traceback" not in result.stderr, f"{shown}:\n{result.stderr}"


def transcripts(page: Path) -> Iterator[list[tuple[str, list[str]]]]:
    """Each console block of ``page``: its commands, each with the lines it shows after it."""
    for block in FENCE.finditer(page.read_text()):
        language, body = block.groups()
        if language != "console":
            continue
        steps: list[tuple[str, list[str]]] = []
        for line in body.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            elif steps:
                steps[-1][1].append(line)
        yield steps


TRANSCRIPTS = [(page, steps) for page in USAGE_PAGES for steps in transcripts(page)]
VOLATILE = {"_id", "syncedAt"}  # differ on every run


def _steady(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _steady(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_steady(v) for v in value]
    return value


def _assert_shows(command: str, shown: list[str], printed: str) -> None:
    """``printed`` is what ``shown`` says: the same JSON less its volatile fields, or the
    same lines, where ``… rest`` stands for a line that ends with ``rest``."""
    try:
        expected = json.loads("\n".join(shown))
    except ValueError:
        got = printed.splitlines()
        assert len(got) == len(shown), f"$ {command}\nshown:\n{shown}\nprinted:\n{printed}"
        for want, line in zip(shown, got, strict=True):
            if want.startswith("… "):
                assert line.endswith(want[2:]), f"$ {command}: {line!r} is not {want!r}"
            else:
                assert line == want, f"$ {command}: {line!r} is not {want!r}"
        return
    assert _steady(json.loads(printed)) == _steady(expected), f"$ {command}"


@pytest.mark.system
def test_there_are_transcripts() -> None:
    """The console blocks the next test runs are found."""
    assert TRANSCRIPTS


@pytest.mark.system
@pytest.mark.parametrize(
    ("page", "steps"),
    TRANSCRIPTS,
    ids=[f"{page.name}-{n}" for n, (page, _) in enumerate(TRANSCRIPTS)],
)
def test_each_transcript_prints_what_it_shows(
    page: Path, steps: list[tuple[str, list[str]]], tmp_path: Path
) -> None:
    """A console block, run line by line in a fresh folder (embedded store), prints what
    the page shows. A ``cat`` of a file not there yet is the block's input: it is written."""
    env = _clean_env(tmp_path)
    for command, shown in steps:
        words = shlex.split(command)
        if words[0] == "cat" and not (tmp_path / words[1]).exists():
            (tmp_path / words[1]).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / words[1]).write_text("\n".join(shown) + "\n")
        result = subprocess.run(
            ["bash", "-c", f"{command} 2>&1"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert result.returncode == 0, f"$ {command}: exit {result.returncode}\n{result.stdout}"
        _assert_shows(command, shown, result.stdout)
