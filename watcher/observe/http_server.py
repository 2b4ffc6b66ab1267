"""A small read-only HTTP server beside the worker: quiet, bounded, and responsive.

One thread runs an asyncio loop, so an idle connection costs a socket and a coroutine, not
a thread; each connection gets one request (``Connection: close``) within a deadline; past
``max_clients`` open connections new ones are closed unless they are probes; a client that
resets or stalls is dropped without a word in the worker's log. The responder runs in a
worker thread (one that reads folders, ``/status``, never holds up the loop), except for
the probes (``/livez``, ``/readyz``): cheap answers made on the loop, so that no crowd on
the other endpoints, of threads or of connections, keeps them waiting. Only GET and HEAD
are served.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Callable
from typing import Any, Final

from watcher.core.printable import printable

Response = tuple[int, str, bytes]  # status, content type, body
Responder = Callable[[str, str], Response]  # (path with query, Accept header) → response
# (path with query, Authorization header) → None when allowed, else the refusal
Guard = Callable[[str, str], Response | None]

MAX_CLIENTS: Final = 512
PROBES: Final = frozenset({b"/livez", b"/readyz"})  # liveness and readiness share no door
PROBE_CLIENTS: Final = 64  # connections past MAX_CLIENTS given a moment to be a probe
PROBE_SECONDS: Final = 1.0  # that moment
REQUEST_SECONDS: Final = 5.0  # to send a whole request; then the connection is closed
MAX_REQUEST_BYTES: Final = 16 * 1024
REASONS: Final = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
REASONS.update({401: "Unauthorized", 503: "Service Unavailable"})
TEXT: Final = "text/plain; charset=utf-8"


class HttpServer:
    """Serve ``respond`` on ``host:port`` (port 0 picks a free one) until ``stop``."""

    def __init__(
        self,
        respond: Responder,
        host: str,
        port: int,
        max_clients: int = MAX_CLIENTS,
        request_seconds: float = REQUEST_SECONDS,
        *,
        guard: Guard | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """``guard`` may refuse a request before ``respond`` sees it; ``tls``: HTTPS only."""
        self._respond = respond
        self._guard = guard
        self._tls = tls
        self._address = (host, port)
        self._max_clients = max_clients
        self._request_seconds = request_seconds
        self._clients = 0
        self._probing = 0  # connections past the cap, waiting to show they are probes
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def clients(self) -> int:
        """Connections open now."""
        return self._clients

    @property
    def port(self) -> int:
        return int(self._bound()[1])

    @property
    def host(self) -> str:
        return str(self._bound()[0])

    def _bound(self) -> tuple[Any, ...]:
        if self._server is None:
            raise RuntimeError("the HTTP server is not started")
        return tuple(self._server.sockets[0].getsockname())

    def start(self) -> None:
        """Bind (``OSError`` when the port is taken), then serve in a daemon thread."""
        loop = asyncio.new_event_loop()
        try:
            self._server = loop.run_until_complete(
                asyncio.start_server(
                    self._client,
                    *self._address,
                    limit=MAX_REQUEST_BYTES,
                    ssl=self._tls,
                    ssl_handshake_timeout=self._request_seconds if self._tls else None,
                )
            )
        except BaseException:
            loop.close()
            raise
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._close(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
        self._loop = self._thread = self._server = None

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task():
                task.cancel()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One request. Past ``max_clients`` a connection still has ``PROBE_SECONDS`` to
        show it is a probe (up to ``PROBE_CLIENTS`` at a time): a crowd of slow clients
        never locks ``/livez`` and ``/readyz`` out."""
        crowded = self._clients >= self._max_clients
        if crowded and self._probing >= PROBE_CLIENTS:
            writer.close()
            return
        self._count(crowded, 1)
        try:
            async with asyncio.timeout(PROBE_SECONDS if crowded else self._request_seconds):
                head = await reader.readuntil(b"\r\n\r\n")
                if is_probe(head):  # on the loop: a probe never waits for a busy thread
                    writer.write(self._answer(head))
                elif not crowded:
                    writer.write(await asyncio.to_thread(self._answer, head))
                await writer.drain()
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # a client that went away, stalled or sent too much: nothing to say
        finally:
            self._count(crowded, -1)
            writer.close()

    def _count(self, crowded: bool, change: int) -> None:
        if crowded:
            self._probing += change
        else:
            self._clients += change

    def _answer(self, head: bytes) -> bytes:
        method, _, rest = head.decode("latin-1").partition(" ")
        target = rest.partition(" ")[0]
        extra = []
        if method not in {"GET", "HEAD"}:
            shown = printable(method[:20])
            status, content_type = 405, TEXT
            body = f"method {shown} not allowed: this API is read-only (GET, HEAD)\n".encode()
            extra.append("Allow: GET, HEAD")
        elif not target.startswith("/"):
            status, content_type, body = 400, TEXT, b"bad request: the target must be a path\n"
        elif self._guard and (refused := self._guard(target, _header(head, "authorization"))):
            status, content_type, body = refused
            extra.append('WWW-Authenticate: Bearer realm="watcher"')
        else:
            status, content_type, body = self._respond(target, _header(head, "accept"))
        lines = [
            f"HTTP/1.1 {status} {REASONS.get(status, '')}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}",
            *extra,
            "Connection: close",
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + (b"" if method == "HEAD" else body)


def is_probe(head: bytes) -> bool:
    """Whether the request is a GET or HEAD of a probe's path (its answer is cheap: made
    on the server's loop, past the connection cap)."""
    method, _, rest = head.partition(b" ")
    path = rest.partition(b" ")[0].partition(b"?")[0]
    return method in (b"GET", b"HEAD") and path in PROBES


def _header(head: bytes, name: str) -> str:
    for line in head.decode("latin-1").split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name:
            return value.strip()
    return ""
