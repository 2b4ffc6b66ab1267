"""Settings: a pure function of the environment; bad values name their variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from watcher.core.errors import ConfigError
from watcher.core.settings import VARIABLES, load_settings, mask_uri


def test_defaults_are_the_challenge_names() -> None:
    """Nothing set: embedded store, the challenge's folders and names."""
    settings = load_settings({})
    assert settings.mongo_uri is None and settings.store_label == "embedded SQLite"
    assert (settings.mongo_database, settings.mongo_collection) == ("tractian", "workorders")
    assert settings.inbound_dir == Path("data/inbound")
    assert settings.outbound_dir == Path("data/outbound")


def test_values_are_read_and_typed() -> None:
    """Each variable lands in its field with its type."""
    settings = load_settings(
        {
            "MONGO_URI": "mongodb://db:27017/?replicaSet=rs0",
            "DATA_INBOUND_DIR": "/in",
            "INBOUND_BATCH_SIZE": "50",
            "WATCHFILES_FORCE_POLLING": "yes",
            "LOG_LEVEL": "debug",
            "METRICS_PORT": "9100",
        }
    )
    assert settings.inbound_dir == Path("/in") and settings.batch_size == 50
    assert settings.force_polling is True and settings.log_level == "DEBUG"
    assert settings.metrics_port == 9100


@pytest.mark.parametrize(
    ("value", "host"),
    [
        ("", "127.0.0.1"),
        ("0.0.0.0", "0.0.0.0"),
        ("[::1]", "::1"),
        ("metrics.local", "metrics.local"),
    ],
)
def test_the_metrics_listen_on_loopback_unless_told(value: str, host: str) -> None:
    """METRICS_HOST: loopback by default; an IP address (IPv6 in brackets too) or a name."""
    assert load_settings({"METRICS_HOST": value}).metrics_host == host


def test_empty_values_keep_defaults() -> None:
    """An empty variable (as in a copied .env) means 'not set'."""
    assert load_settings({"MONGO_URI": "", "INBOUND_BATCH_SIZE": " "}) == load_settings({})


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("INBOUND_BATCH_SIZE", "many", "INBOUND_BATCH_SIZE: not a number: 'many'"),
        ("INBOUND_BATCH_SIZE", "0", "INBOUND_BATCH_SIZE: must be greater than 0, got '0'"),
        ("INBOUND_SETTLE_SECONDS", "-1", "INBOUND_SETTLE_SECONDS: must be greater than 0"),
        ("LOG_LEVEL", "loud", "LOG_LEVEL: must be one of DEBUG, INFO"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT: must be one of text, json"),
        ("MONGO_URI", "localhost:27017", "MONGO_URI: must start with mongodb://"),
        ("METRICS_PORT", "70000", "METRICS_PORT: must be a TCP port"),
        ("METRICS_HOST", "every interface", "METRICS_HOST: not an IP address or host name"),
        ("METRICS_HOST", "-bad.example", "METRICS_HOST: not an IP address or host name"),
        ("WATCHFILES_FORCE_POLLING", "maybe", "WATCHFILES_FORCE_POLLING: must be true or false"),
        ("INBOUND_SETTLE_SECONDS", "inf", "INBOUND_SETTLE_SECONDS: must be a finite number"),
        ("INBOUND_SETTLE_SECONDS", "nan", "INBOUND_SETTLE_SECONDS: must be greater than 0"),
        ("MONGO_URI", "mongodb://h:notaport/", "MONGO_URI: host h: the port must be 1-65535"),
        ("MONGO_URI", "mongodb://u:pw@h:99999/", "MONGO_URI: host h: the port must be 1-65535"),
        ("MONGO_URI", "mongodb://a:1,b:x/?replicaSet=rs0", "MONGO_URI: host b: the port"),
        ("HTTP_TOKEN", "short", "HTTP_TOKEN: 16 or more printable ASCII characters"),
        ("HTTP_TOKEN", "sixteen chars with spaces", "HTTP_TOKEN: 16 or more printable"),
        ("METRICS_TOKEN_REQUIRED", "true", "METRICS_TOKEN_REQUIRED needs HTTP_TOKEN"),
        ("HTTP_TLS_CERT_FILE", "c.pem", "HTTP_TLS_CERT_FILE and HTTP_TLS_KEY_FILE go together"),
        ("HTTP_TLS_KEY_FILE", "k.pem", "HTTP_TLS_CERT_FILE and HTTP_TLS_KEY_FILE go together"),
    ],
)
def test_bad_values_name_the_variable(variable: str, value: str, message: str) -> None:
    """A bad value stops start-up with a one-line message that names the variable."""
    with pytest.raises(ConfigError) as caught:
        load_settings({variable: value})
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_every_variable_is_parsed() -> None:
    """Every documented variable maps to a field of Settings."""
    fields = set(load_settings({}).__struct_fields__)
    assert {field for field, _ in VARIABLES.values()} <= fields


@pytest.mark.parametrize(
    ("uri", "masked"),
    [
        ("mongodb://u:secret@h:27017/db", "mongodb://u:***@h:27017/db"),
        (
            "mongodb+srv://u:p%40ss@cluster.example/?tls=true",
            "mongodb+srv://u:***@cluster.example/?tls=true",
        ),
        ("mongodb://h1,h2/?replicaSet=rs0", "mongodb://h1,h2/?replicaSet=rs0"),
        ("mongodb://u:s3cret#pw@h:27017/", "mongodb://u:***@h:27017/"),
        ("mongodb://u:a/b?c@h1,h2/?replicaSet=rs0", "mongodb://u:***@h1,h2/?replicaSet=rs0"),
        ("mongodb://u:p@ss@h/", "mongodb://u:***@h/"),
        (
            "mongodb://h/?tls=true&tlsCertificateKeyFilePassword=k3y&appName=w",
            "mongodb://h/?tls=true&tlsCertificateKeyFilePassword=***&appName=w",
        ),
        (
            "mongodb://AKIA:s3cret@h/?authMechanism=MONGODB-AWS"
            "&authMechanismProperties=AWS_SESSION_TOKEN:t0ken",
            "mongodb://AKIA:***@h/?authMechanism=MONGODB-AWS&authMechanismProperties=***",
        ),
        (
            "mongodb://h/?ProxyPassword=pw&sslPEMKeyPassword=x",
            "mongodb://h/?ProxyPassword=***&sslPEMKeyPassword=***",
        ),
    ],
)
def test_passwords_are_masked(uri: str, masked: str) -> None:
    """The password never shows in the store label."""
    assert mask_uri(uri) == masked
    assert load_settings({"MONGO_URI": uri}).store_label == f"MongoDB {masked}"


def test_a_value_from_the_env_file_says_so() -> None:
    """The message names where a bad value was set."""
    with pytest.raises(ConfigError, match=r"^INBOUND_BATCH_SIZE \(from \.env\): not a number"):
        load_settings({"INBOUND_BATCH_SIZE": "x"}, {"INBOUND_BATCH_SIZE": "from .env"})


@pytest.mark.parametrize(
    ("uri", "database", "expected"),
    [
        ("mongodb://h:27017/ops?replicaSet=rs0", "", "ops"),
        ("mongodb://h:27017/?replicaSet=rs0", "", "tractian"),
        ("mongodb://u:p/w@h/ops", "ops", "ops"),
        ("mongodb://h", "mine", "mine"),
    ],
)
def test_a_database_in_the_uri_is_used(uri: str, database: str, expected: str) -> None:
    """MONGO_URI's path names the database unless MONGO_DATABASE names the same one."""
    env = {"MONGO_URI": uri, "MONGO_DATABASE": database}
    assert load_settings(env).mongo_database == expected


def test_two_different_databases_are_refused() -> None:
    """The URI and MONGO_DATABASE naming different databases is a setting to fix."""
    with pytest.raises(ConfigError, match="MONGO_URI names the database 'ops' but MONGO_DATA"):
        load_settings({"MONGO_URI": "mongodb://h/ops", "MONGO_DATABASE": "tractian"})


def test_host_ports_are_checked_without_leaking_the_password() -> None:
    """Good ports, IPv6 literals and bare names pass; the password never appears in an error."""
    load_settings({"MONGO_URI": "mongodb://[::1]:27017,[::2],db/?replicaSet=rs0"})
    with pytest.raises(ConfigError) as caught:
        load_settings({"MONGO_URI": "mongodb://u:s3cret@h:0/"})
    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize(
    ("first", "second", "value"),
    [
        ("DATA_INBOUND_DIR", "DATA_ARCHIVE_DIR", "data/inbound"),
        ("DATA_INBOUND_DIR", "DATA_OUTBOUND_DIR", "data/inbound/"),
        ("DATA_INBOUND_DIR", "DATA_STATE_DIR", "data/x/../inbound"),
        ("DATA_OUTBOUND_DIR", "DATA_FAILED_DIR", "./data/outbound"),
    ],
)
def test_two_roles_in_one_folder_are_refused(first: str, second: str, value: str) -> None:
    """The worker would ingest its own archive, exports or status file: both variables named."""
    with pytest.raises(ConfigError, match=f"^{first} and {second} are the same folder"):
        load_settings({second: value})


def test_folders_inside_one_another_are_fine() -> None:
    """Only the top of the inbound folder is read, so an archive inside it is no loop."""
    load_settings({"DATA_ARCHIVE_DIR": "data/inbound/archive"})


def test_a_bad_token_is_never_repeated() -> None:
    """A refused HTTP_TOKEN is a secret all the same: the message does not show it."""
    with pytest.raises(ConfigError) as caught:
        load_settings({"HTTP_TOKEN": "tooshort-s3cret"})
    assert "s3cret" not in str(caught.value)
