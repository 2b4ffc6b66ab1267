"""The .env file: read literally, next to the real environment; a broken one stops start-up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.stores import make_settings
from tests.helpers.workers import env_for
from watcher.cli.environment import environment, read_env_file
from watcher.core.errors import ConfigError


def test_the_real_environment_wins_and_origins_are_kept(tmp_path: Path) -> None:
    """Values from the file are marked as such; the real environment overrides them."""
    path = tmp_path / ".env"
    path.write_text("MONGO_DATABASE=ops\nLOG_LEVEL=debug\n")
    values, origins = environment(path, {"LOG_LEVEL": "warning"})
    assert values == {"MONGO_DATABASE": "ops", "LOG_LEVEL": "warning"}
    assert origins == {"MONGO_DATABASE": f"from {path}"}


def test_dollar_braces_are_not_expanded(tmp_path: Path) -> None:
    """A password holding ``${HOME}`` stays that password."""
    path = tmp_path / ".env"
    path.write_text('MONGO_URI="mongodb://u:pa${HOME}ss@h/"\nPLAIN=a$b\n')
    assert read_env_file(path) == {"MONGO_URI": "mongodb://u:pa${HOME}ss@h/", "PLAIN": "a$b"}


def test_a_line_that_cannot_be_parsed_stops_start_up(tmp_path: Path) -> None:
    """The file and the line are named; the value (maybe a secret) is not."""
    path = tmp_path / ".env"
    path.write_text("A=1\nMONGO_URI mongodb://u:s3cret@h/\n")
    with pytest.raises(ConfigError) as caught:
        read_env_file(path)
    assert str(caught.value) == f"{path} line 2: not KEY=value (fix or remove the line)"


def test_a_file_that_is_not_utf8_stops_start_up(tmp_path: Path) -> None:
    """Latin-1 bytes: one line naming the file."""
    path = tmp_path / ".env"
    path.write_bytes(b"MONGO_DATABASE=caf\xe9\n")
    with pytest.raises(ConfigError, match=r"\.env is not UTF-8 text \(byte 18\)"):
        read_env_file(path)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"INBOUND_BATCH_SIZE=lots\n", "INBOUND_BATCH_SIZE (from .env): not a number: 'lots'"),
        (b"not a setting\n", ".env line 1: not KEY=value (fix or remove the line)"),
        (b"LOG_LEVEL=\xff\n", ".env is not UTF-8 text (byte 10): save it as UTF-8"),
    ],
)
@pytest.mark.system
def test_the_worker_does_not_start_on_a_broken_env_file(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    """`watcher run` stops at once with exit 2 and one line."""
    (tmp_path / ".env").write_bytes(content)
    env = env_for(make_settings(tmp_path))
    env.pop("INBOUND_BATCH_SIZE", None)
    result = subprocess.run(
        [sys.executable, "-m", "watcher", "run", "--no-console"],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"watcher: configuration error: {expected}"]


@pytest.mark.parametrize("name", ["MONGO_URI", "HTTP_TOKEN"])
def test_a_secret_can_come_from_a_file(tmp_path: Path, name: str) -> None:
    """``<NAME>_FILE`` (a Docker or Kubernetes secret) gives the value, its newline dropped."""
    secret = tmp_path / "secret"
    secret.write_text("mongodb://u:s3cret@h/\n")
    values, origins = environment(tmp_path / ".env", {f"{name}_FILE": str(secret)})
    assert values[name] == "mongodb://u:s3cret@h/"
    assert origins[name] == f"from {name}_FILE {secret}"


@pytest.mark.parametrize(
    ("content", "also", "message"),
    [
        (None, {}, "HTTP_TOKEN_FILE: cannot read {path}: No such file or directory"),
        ("\n", {}, "HTTP_TOKEN_FILE: {path} is empty"),
        ("t0ken-t0ken-t0ken", {"HTTP_TOKEN": "x"}, "HTTP_TOKEN and HTTP_TOKEN_FILE are both set"),
    ],
)
def test_a_secret_file_that_cannot_be_used_is_one_line(
    tmp_path: Path, content: str | None, also: dict[str, str], message: str
) -> None:
    """Missing, empty, or set twice: start-up stops naming the variable, never the value."""
    path = tmp_path / "token"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as caught:
        environment(tmp_path / ".env", {"HTTP_TOKEN_FILE": str(path), **also})
    assert str(caught.value).startswith(message.format(path=path))
