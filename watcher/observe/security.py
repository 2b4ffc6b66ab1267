"""Who may ask the HTTP endpoints: an optional bearer token and optional TLS (docs/security.md).

``/livez`` and ``/readyz`` stay open (probes carry no secrets and answer nothing secret);
``/status`` and ``/history`` (business data) need ``HTTP_TOKEN`` when one is set, and
``/metrics`` too with ``METRICS_TOKEN_REQUIRED``.
"""

from __future__ import annotations

import hmac
import ipaddress
import ssl
from typing import Final
from urllib.parse import urlsplit

from watcher.core.errors import ConfigError
from watcher.core.settings import Settings
from watcher.observe.http_server import TEXT, Guard, Response

OPEN: Final = frozenset({"/livez", "/readyz"})
REFUSED: Final[Response] = (
    401,
    TEXT,
    b"unauthorized: send the header Authorization: Bearer <HTTP_TOKEN>\n",
)


def token_guard(token: str | None, metrics_too: bool = False) -> Guard | None:
    """Refuse a request without ``Authorization: Bearer <token>`` (None: no token, no guard)."""
    if token is None:
        return None
    expected = token.encode()
    open_paths = OPEN if metrics_too else OPEN | {"/metrics"}

    def guard(target: str, authorization: str) -> Response | None:
        if urlsplit(target).path in open_paths:
            return None
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected):
            return None
        return REFUSED

    return guard


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The server's TLS context from HTTP_TLS_CERT_FILE and HTTP_TLS_KEY_FILE (None: plain)."""
    cert, key = settings.tls_cert_file, settings.tls_key_file
    if cert is None or key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc
        raise ConfigError(
            f"HTTP_TLS_CERT_FILE/HTTP_TLS_KEY_FILE: cannot use {cert} and {key}: {reason}"
        ) from None
    return context


def exposure_warning(settings: Settings) -> str:
    """Why serving as configured may expose business data ("" when it does not)."""
    if settings.http_token is not None or _is_loopback(settings.metrics_host):
        return ""
    return (
        f"the HTTP endpoints listen on {settings.metrics_host} without HTTP_TOKEN: /status and"
        " /history serve work orders to anyone who reaches the port; set HTTP_TOKEN or"
        " HTTP_TOKEN_FILE (docs/security.md)"
    )


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
