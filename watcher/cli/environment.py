"""Where the settings come from: the real environment over a ``.env`` file (docs/spec.md §4).

The file is read literally (``${…}`` is not expanded: a password ``pa${HOME}ss`` stays what
it says); a line that cannot be parsed, or a file that is not UTF-8, stops start-up with a
line naming the file and the line, never the value (it may be a secret).
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from pathlib import Path

from watcher.core.errors import ConfigError
from watcher.core.settings import SECRETS


def read_env_file(path: Path) -> dict[str, str]:
    """The ``KEY=value`` lines of ``path``; a missing file is empty."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path} is not UTF-8 text (byte {exc.start}): save it as UTF-8"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    # python-dotenv (and the tempfile, shutil and compression modules it loads) only when
    # there is a file to parse: every command reads the environment, few have a .env
    from dotenv.parser import parse_stream

    values: dict[str, str] = {}
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            raise ConfigError(
                f"{path} line {binding.original.line}: not KEY=value (fix or remove the line)"
            )
        if binding.key is not None and binding.value is not None:
            values[binding.key] = binding.value
    return values


def environment(
    path: Path = Path(".env"), real: Mapping[str, str] = os.environ
) -> tuple[dict[str, str], dict[str, str]]:
    """The variables (the real environment wins) and, for those from the file, where from."""
    from_file = read_env_file(path)
    origins = {key: f"from {path}" for key in from_file if key not in real}
    env = {**from_file, **real}
    for name in SECRETS:
        _read_secret_file(name, env, origins)
    return env, origins


def _read_secret_file(name: str, env: dict[str, str], origins: dict[str, str]) -> None:
    """``<name>_FILE`` names a file holding the secret (its trailing newline dropped)."""
    where = env.get(f"{name}_FILE", "").strip()
    if not where:
        return
    if env.get(name, "").strip():
        raise ConfigError(f"{name} and {name}_FILE are both set: keep one of them")
    try:
        value = Path(where).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise ConfigError(f"{name}_FILE: cannot read {where}: {reason}") from None
    if not value:
        raise ConfigError(f"{name}_FILE: {where} is empty")
    env[name] = value
    origins[name] = f"from {name}_FILE {where}"
