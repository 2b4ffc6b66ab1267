"""The HTTP endpoints behind a bearer token and TLS; /livez and /readyz stay open."""

from __future__ import annotations

import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.helpers.conditions import wait_until
from tests.helpers.workers import free_port, worker
from watcher.core.errors import ConfigError
from watcher.core.settings import Settings
from watcher.observe import api
from watcher.observe.metrics import MetricsServer
from watcher.observe.security import exposure_warning, tls_context, token_guard
from watcher.sync.stats import Stats

TOKEN = "s3cret-token-0123456789"


def get(url: str, token: str | None = None, context: ssl.SSLContext | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=5, context=context
        ) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        with error:
            bearer = "Bearer" in error.headers.get("WWW-Authenticate", "")
            return error.code if error.code != 401 or bearer else -1  # a 401 says how


def serve(settings: Settings, metrics_too: bool = False, **more: object) -> MetricsServer:
    server = MetricsServer(
        0,
        routes=lambda served: api.routes(settings, served.latest),
        guard=token_guard(TOKEN, metrics_too),
        **more,  # type: ignore[arg-type]
    )
    server.update(Stats(started=datetime.now(UTC)).snapshot(datetime.now(UTC)))
    return server


@pytest.fixture
def guarded(settings: Settings) -> Iterator[str]:
    with serve(settings) as server:
        yield f"http://127.0.0.1:{server.port}"


@pytest.mark.parametrize("path", ["/status", "/history?number=1"])
def test_business_data_needs_the_token(guarded: str, path: str) -> None:
    """/status and /history: 401 without the token or with a wrong one, served with it."""
    assert get(guarded + path) == 401
    assert get(guarded + path, "not-the-token-at-all") == 401
    assert get(guarded + path, TOKEN) in {200, 503}  # /history: no store here yet


@pytest.mark.parametrize("path", ["/livez", "/readyz", "/metrics"])
def test_probes_and_metrics_stay_open(guarded: str, path: str) -> None:
    """Probes carry no token; /metrics needs one only when asked."""
    assert get(guarded + path) in {200, 503}


def test_metrics_need_the_token_when_asked(settings: Settings) -> None:
    """METRICS_TOKEN_REQUIRED: /metrics is guarded too, the probes still are not."""
    with serve(settings, metrics_too=True) as server:
        url = f"http://127.0.0.1:{server.port}"
        assert get(url + "/metrics") == 401
        assert get(url + "/metrics", TOKEN) == 200
        assert get(url + "/livez") == 200


def test_tls_serves_https_only(settings: Settings, tmp_path: Path) -> None:
    """With a certificate and key the endpoints speak HTTPS; plain HTTP gets no answer."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    secured = settings.__replace__(tls_cert_file=cert, tls_key_file=key)
    trusting = ssl.create_default_context(cafile=str(cert))
    with serve(secured, tls=tls_context(secured)) as server:
        assert get(f"https://127.0.0.1:{server.port}/status", TOKEN, trusting) == 200
        with pytest.raises((ConnectionError, urllib.error.URLError)):
            get(f"http://127.0.0.1:{server.port}/livez")


def test_an_unusable_certificate_is_one_line(settings: Settings, tmp_path: Path) -> None:
    """A key that is no key stops start-up with the two settings named."""
    (tmp_path / "c.pem").write_text("no certificate\n")
    bad = settings.__replace__(tls_cert_file=tmp_path / "c.pem", tls_key_file=tmp_path / "c.pem")
    with pytest.raises(ConfigError, match="HTTP_TLS_CERT_FILE/HTTP_TLS_KEY_FILE: cannot use"):
        tls_context(bad)


@pytest.mark.parametrize(
    ("host", "token", "warned"),
    [("127.0.0.1", None, False), ("::1", None, False), ("localhost", None, False),
     ("0.0.0.0", None, True), ("192.0.2.7", None, True), ("0.0.0.0", TOKEN, False)],
)  # fmt: skip
def test_exposure_warning(settings: Settings, host: str, token: str | None, warned: bool) -> None:
    """Beyond loopback without a token the worker warns; with one, or on loopback, not."""
    chosen = settings.__replace__(metrics_host=host, http_token=token)
    assert bool(exposure_warning(chosen)) == warned


def test_a_worker_open_to_all_without_a_token_warns_at_start(
    settings: Settings, tmp_path: Path
) -> None:
    """`watcher run` on 0.0.0.0 with no HTTP_TOKEN says so in its log, once serving."""
    port, log = free_port(), tmp_path / "worker.log"
    with worker(settings, log, METRICS_PORT=str(port), METRICS_HOST="0.0.0.0"):
        wait_until(lambda: "metrics on" in log.read_text(), "the metrics line")
    assert "listen on 0.0.0.0 without HTTP_TOKEN" in log.read_text()
