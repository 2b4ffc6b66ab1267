"""Settings: one frozen object built by a pure function from an environment mapping
(docs/spec.md §4)."""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final, Literal, TypeVar

import msgspec

from watcher.core.errors import ConfigError

T = TypeVar("T")
LogFormat = Literal["text", "json"]
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the worker can be told; see ``.env.example`` for each variable."""

    mongo_uri: str | None = None
    mongo_database: str = "tractian"
    mongo_collection: str = "workorders"
    mongo_timeout_seconds: float = 30.0  # every MongoDB call, client-side
    inbound_dir: Path = Path("data/inbound")
    outbound_dir: Path = Path("data/outbound")
    archive_dir: Path = Path("data/archive")
    failed_dir: Path = Path("data/failed")
    state_dir: Path = Path("data/state")
    log_level: str = "INFO"
    log_format: LogFormat = "text"
    settle_seconds: float = 1.0
    rescan_seconds: float = 5.0
    batch_size: int = 1000
    max_file_mb: int = 512
    force_polling: bool = False
    poll_seconds: float = 2.0
    outbound_concurrency: int = 4
    retry_max_seconds: float = 10.0
    stop_grace_seconds: float = 8.0
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"  # loopback: only this host may ask, unless chosen
    erp_format: str = "challenge"
    worker_id: str = ""  # names this worker's heartbeat file; "" = host and pid
    history_days: float = 30.0  # how long the sync journal keeps entries; 0 = no journal
    history_max_entries: int = 1_000_000
    http_token: str | None = None  # required by /status, /history (and /metrics if asked)
    metrics_token_required: bool = False
    tls_cert_file: Path | None = None  # both set: the HTTP endpoints speak HTTPS only
    tls_key_file: Path | None = None
    receipts_dir: Path | None = None  # a receipt per inbound file for the ERP; None = off

    @property
    def store_label(self) -> str:
        """Which store, for the console and the first log line; the password is masked."""
        return f"MongoDB {mask_uri(self.mongo_uri)}" if self.mongo_uri else "embedded SQLite"

    @property
    def max_file_bytes(self) -> int:
        return self.max_file_mb * 2**20

    @property
    def sqlite_path(self) -> Path:
        return self.state_dir / "tracos.sqlite3"


def _text(raw: str) -> str:
    if not raw.strip():
        raise ValueError("must not be empty")
    return raw.strip()


def _positive(kind: Callable[[str], T]) -> Callable[[str], T]:
    def parse(raw: str) -> T:
        value = kind(raw)
        if not value > 0:  # type: ignore[operator]
            raise ValueError(f"must be greater than 0, got {raw!r}")
        if value == math.inf:
            raise ValueError(f"must be a finite number, got {raw!r}")
        return value

    return parse


def _not_negative(raw: str) -> float:
    value = float(raw)
    if not 0 <= value < math.inf:
        raise ValueError(f"must be 0 or a finite positive number, got {raw!r}")
    return value


def _name(raw: str) -> str:
    """A name that can be part of a file name: letters, digits, ``.``, ``_``, ``-``."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", raw):
        raise ValueError(f"letters, digits, '.', '_' and '-' only (64 at most), got {raw!r}")
    return raw


def _flag(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"must be true or false, got {raw!r}")


def _choice(*allowed: str, upper: bool = False) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().upper() if upper else raw.strip().lower()
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}, got {raw!r}")
        return value

    return parse


def _port(raw: str) -> int:
    value = int(raw)
    if not 0 < value < 65536:
        raise ValueError(f"must be a TCP port (1-65535), got {raw!r}")
    return value


HOST_NAME: Final = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*")


def _host(raw: str) -> str:
    """An address to listen on: an IP address (``[...]`` around IPv6 allowed) or a host name."""
    text = raw.strip()
    try:
        return str(ipaddress.ip_address(text.removeprefix("[").removesuffix("]")))
    except ValueError:
        pass
    if len(text) <= 253 and HOST_NAME.fullmatch(text):
        return text
    raise ValueError(
        f"not an IP address or host name: {raw!r} (127.0.0.1, the default, serves this host"
        " only; 0.0.0.0 serves every interface)"
    )


def _mongo_uri(raw: str) -> str:
    if not raw.startswith(("mongodb://", "mongodb+srv://")):
        raise ValueError("must start with mongodb:// or mongodb+srv://")
    for host in _uri_parts(raw)[0].split(","):
        if host.endswith("]") or ":" not in host:
            continue  # no port: a bare name or an IPv6 literal
        name, _, port = host.rpartition(":")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"host {name or '?'}: the port must be 1-65535, got {port!r}")
    return raw


def _uri_parts(uri: str) -> tuple[str, str]:
    """The hosts and the database name of a MongoDB URI (the password may hold ``/``)."""
    rest = uri.partition("://")[2]
    address = rest.rpartition("@")[2].partition("?")[0]
    hosts, _, database = address.partition("/")
    return hosts, database


def uri_database(uri: str | None) -> str:
    """The database that the URI's path names, or '' (``mongodb://h/tractian`` → tractian)."""
    return _uri_parts(uri)[1] if uri else ""


def _token(raw: str) -> str:
    if not re.fullmatch(r"[\x21-\x7e]{16,}", raw):
        raise ValueError("16 or more printable ASCII characters, no spaces")
    return raw


# variable → (field, parser); unset or empty variables keep the default.
VARIABLES: Final[dict[str, tuple[str, Callable[[str], object]]]] = {
    "MONGO_URI": ("mongo_uri", _mongo_uri),
    "MONGO_DATABASE": ("mongo_database", _text),
    "MONGO_COLLECTION": ("mongo_collection", _text),
    "DATA_INBOUND_DIR": ("inbound_dir", lambda raw: Path(_text(raw))),
    "DATA_OUTBOUND_DIR": ("outbound_dir", lambda raw: Path(_text(raw))),
    "DATA_ARCHIVE_DIR": ("archive_dir", lambda raw: Path(_text(raw))),
    "DATA_FAILED_DIR": ("failed_dir", lambda raw: Path(_text(raw))),
    "DATA_STATE_DIR": ("state_dir", lambda raw: Path(_text(raw))),
    "LOG_LEVEL": ("log_level", _choice(*LOG_LEVELS, upper=True)),
    "LOG_FORMAT": ("log_format", _choice("text", "json")),
    "INBOUND_SETTLE_SECONDS": ("settle_seconds", _positive(float)),
    "INBOUND_RESCAN_SECONDS": ("rescan_seconds", _positive(float)),
    "INBOUND_BATCH_SIZE": ("batch_size", _positive(int)),
    "INBOUND_MAX_FILE_MB": ("max_file_mb", _positive(int)),
    "WATCHFILES_FORCE_POLLING": ("force_polling", _flag),
    "OUTBOUND_POLL_SECONDS": ("poll_seconds", _positive(float)),
    "OUTBOUND_CONCURRENCY": ("outbound_concurrency", _positive(int)),
    "MONGO_TIMEOUT_SECONDS": ("mongo_timeout_seconds", _positive(float)),
    "STORE_RETRY_MAX_SECONDS": ("retry_max_seconds", _positive(float)),
    "STOP_GRACE_SECONDS": ("stop_grace_seconds", _positive(float)),
    "METRICS_PORT": ("metrics_port", _port),
    "METRICS_HOST": ("metrics_host", _host),
    "ERP_FORMAT": ("erp_format", _text),  # the name is checked against the registry later
    "WATCHER_ID": ("worker_id", lambda raw: _name(_text(raw))),
    "HISTORY_DAYS": ("history_days", _not_negative),
    "HISTORY_MAX_ENTRIES": ("history_max_entries", _positive(int)),
    "HTTP_TOKEN": ("http_token", _token),
    "METRICS_TOKEN_REQUIRED": ("metrics_token_required", _flag),
    "HTTP_TLS_CERT_FILE": ("tls_cert_file", lambda raw: Path(_text(raw))),
    "HTTP_TLS_KEY_FILE": ("tls_key_file", lambda raw: Path(_text(raw))),
    "RECEIPTS_DIR": ("receipts_dir", lambda raw: Path(_text(raw))),
}
# Variables holding secrets: masked by ``watcher config``; each may come from a file named
# by ``<NAME>_FILE`` instead (Docker and Kubernetes secrets are files).
SECRETS: Final = ("MONGO_URI", "HTTP_TOKEN")


def load_settings(env: Mapping[str, str], origins: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from ``env``; a bad value raises ``ConfigError`` naming the variable
    (and, from ``origins``, where it was set, e.g. ``from .env``)."""
    values: dict[str, object] = {}
    for variable, (field, parse) in VARIABLES.items():
        raw = env.get(variable, "")
        if raw.strip() == "":
            continue
        try:
            values[field] = parse(raw)
        except ValueError as exc:
            where = f" ({origins[variable]})" if origins and variable in origins else ""
            raise ConfigError(f"{variable}{where}: {_plain(exc)}") from None
    _database_from_uri(values)
    settings = Settings(**values)  # type: ignore[arg-type]
    _refuse_shared_folders(settings)
    _refuse_half_security(settings)
    return settings


def _refuse_half_security(settings: Settings) -> None:
    if (settings.tls_cert_file is None) != (settings.tls_key_file is None):
        raise ConfigError("HTTP_TLS_CERT_FILE and HTTP_TLS_KEY_FILE go together: set both")
    if settings.metrics_token_required and settings.http_token is None:
        raise ConfigError("METRICS_TOKEN_REQUIRED needs HTTP_TOKEN (or HTTP_TOKEN_FILE)")


FOLDERS: Final = (
    ("DATA_INBOUND_DIR", "inbound_dir"),
    ("DATA_OUTBOUND_DIR", "outbound_dir"),
    ("DATA_ARCHIVE_DIR", "archive_dir"),
    ("DATA_FAILED_DIR", "failed_dir"),
    ("DATA_STATE_DIR", "state_dir"),
)


def _refuse_shared_folders(settings: Settings) -> None:
    """Two roles in one folder loop (the worker would ingest its own archive or exports)."""
    seen: dict[Path, str] = {}
    for variable, field in FOLDERS:
        where = _normal(getattr(settings, field))
        if where in seen:
            raise ConfigError(
                f"{seen[where]} and {variable} are the same folder ({where}): give each its own"
            )
        seen[where] = variable


def _normal(folder: Path) -> Path:
    """The absolute path with ``..`` taken away (pathlib already drops ``.``)."""
    parts: list[str] = []
    for part in folder.absolute().parts:
        if part != "..":
            parts.append(part)
        elif len(parts) > 1:
            parts.pop()
    return Path(*parts)


def _database_from_uri(values: dict[str, object]) -> None:
    """A database in the MONGO_URI path is used, unless MONGO_DATABASE says another."""
    named = uri_database(values.get("mongo_uri"))  # type: ignore[arg-type]
    if not named:
        return
    chosen = values.setdefault("mongo_database", named)
    if chosen != named:
        raise ConfigError(
            f"MONGO_URI names the database {named!r} but MONGO_DATABASE says {chosen!r}:"
            " remove one of them"
        )


def _plain(exc: ValueError) -> str:
    text = str(exc)
    if text.startswith(("invalid literal", "could not convert")):
        return f"not a number: {text.rpartition(': ')[2]}"
    return text


# Connection-string options whose value is a secret (compared in lower case, as the driver does).
SECRET_OPTIONS: Final = frozenset(
    {
        "authmechanismproperties",  # AWS_SESSION_TOKEN:…
        "proxypassword",
        "sslclientcertificatekeypassword",
        "sslpemkeypassword",
        "tlscertificatekeyfilepassword",
    }
)


def mask_uri(uri: str | None) -> str:
    """The URI with its password and every secret-bearing option replaced by ``***``.

    Parsed by hand, not with ``urlsplit``: a password may hold ``#``, ``/`` or ``?``, which
    a URL parser would take for the start of a fragment, path or query.
    """
    if not uri:
        return ""
    scheme, separator, rest = uri.partition("://")
    if not separator:
        return uri
    userinfo, at, hosts = rest.rpartition("@")
    if at and ":" in userinfo:
        userinfo = userinfo.partition(":")[0] + ":***"
    return f"{scheme}://{userinfo}{at}{_mask_options(hosts)}"


def _mask_options(hosts: str) -> str:
    address, question, query = hosts.partition("?")
    if not question:
        return hosts
    options = (option.partition("=") for option in query.split("&"))
    shown = [
        f"{name}{equals}{'***' if name.lower() in SECRET_OPTIONS else value}"
        for name, equals, value in options
    ]
    return f"{address}?{'&'.join(shown)}"
