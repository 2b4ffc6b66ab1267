"""The HTTP server beside the worker stays quiet, bounded and responsive under rude clients."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from tests.helpers.conditions import wait_until
from tests.helpers.workers import reset_connections
from watcher.observe.http_server import HttpServer, Response


def hello(path: str, accept: str) -> Response:
    return 200, "text/plain", f"hello {path}\n".encode()


@pytest.fixture
def server() -> Iterator[HttpServer]:
    running = HttpServer(hello, "127.0.0.1", 0, max_clients=400, request_seconds=2.0)
    running.start()
    yield running
    running.stop()


def ask(port: int, request: bytes = b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(4096):
            answer += chunk
    return answer


def test_a_request_gets_its_answer(server: HttpServer) -> None:
    """GET answers with the responder's body; HEAD without it; anything else is refused."""
    assert ask(server.port).endswith(b"\r\n\r\nhello /livez\n")
    assert ask(server.port).startswith(b"HTTP/1.1 200 OK\r\n")
    head = ask(server.port, b"HEAD /x HTTP/1.1\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and head.endswith(b"\r\n\r\n")
    assert ask(server.port, b"POST /x HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 405")


def test_resetting_clients_leave_no_trace(
    server: HttpServer, capfd: pytest.CaptureFixture[str]
) -> None:
    """Twenty scrapes cut off by a TCP reset print nothing; the next request is answered."""
    reset_connections(server.port, 20)
    assert ask(server.port).endswith(b"hello /livez\n")
    captured = capfd.readouterr()
    assert captured.out == captured.err == ""


def test_idle_connections_cost_no_threads_and_time_out(server: HttpServer) -> None:
    """300 idle connections: no new thread, requests still answered, the idle ones closed."""
    assert ask(server.port).endswith(b"hello /livez\n")  # the responder's thread is made
    threads = threading.active_count()
    idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(300)]
    try:
        assert ask(server.port).endswith(b"hello /livez\n")
        # no thread per connection (other tests' idle pool threads may end meanwhile)
        assert threading.active_count() <= threads
        for conn in idle[:5]:
            conn.settimeout(10)
            assert conn.recv(1) == b""  # closed by the server after request_seconds
    finally:
        for conn in idle:
            conn.close()


def test_past_the_limit_new_connections_are_closed_unanswered() -> None:
    """With max_clients held by idle clients, one more that is no probe gets no answer."""
    bounded = HttpServer(hello, "127.0.0.1", 0, max_clients=3, request_seconds=30.0)
    bounded.start()
    idle = [socket.create_connection(("127.0.0.1", bounded.port)) for _ in range(3)]
    try:
        wait_until(lambda: bounded.clients == 3, "three clients counted")
        extra = socket.create_connection(("127.0.0.1", bounded.port), timeout=5)
        assert extra.recv(1) == b""
        extra.close()
    finally:
        for conn in idle:
            conn.close()
        bounded.stop()


def test_an_oversized_request_is_dropped(server: HttpServer) -> None:
    """A header block over the limit gets no answer and costs nothing more."""
    assert ask(server.port, b"GET / HTTP/1.1\r\nX: " + b"a" * 100_000 + b"\r\n\r\n") == b""
    assert ask(server.port).endswith(b"hello /livez\n")


# --- probes share no door with the crowd ----------------------------------------


def probe(port: int, path: str = "/livez") -> bytes:
    """A probe as a kubelet sends it, answered within a second or not at all."""
    with socket.create_connection(("127.0.0.1", port), timeout=1.0) as conn:
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        answer = b""
        try:
            while chunk := conn.recv(4096):
                answer += chunk
        except TimeoutError:
            pass  # no answer within the second
    return answer


def test_probes_answer_past_the_connection_limit() -> None:
    """Every connection the server takes is held by a slow client: ``/livez`` and
    ``/readyz`` still answer within a second; anything else past the limit does not."""
    bounded = HttpServer(hello, "127.0.0.1", 0, max_clients=50, request_seconds=30.0)
    bounded.start()
    slow = [socket.create_connection(("127.0.0.1", bounded.port)) for _ in range(50)]
    try:
        wait_until(lambda: bounded.clients == 50, "the slow clients counted")
        for path in ("/livez", "/readyz"):
            assert probe(bounded.port, path).endswith(f"hello {path}\n".encode())
        assert probe(bounded.port, "/status") == b""
    finally:
        for conn in slow:
            conn.close()
        bounded.stop()


def test_probes_answer_while_every_thread_is_busy() -> None:
    """Slow answers (a ``/status`` over a huge archive) take every thread the server has:
    the probes still answer within a second."""
    release = threading.Event()

    def slow_status(path: str, accept: str) -> Response:
        if path.startswith("/status"):
            release.wait(30)
        return hello(path, accept)

    busy = HttpServer(slow_status, "127.0.0.1", 0, max_clients=400, request_seconds=30.0)
    busy.start()
    crowd = [socket.create_connection(("127.0.0.1", busy.port)) for _ in range(40)]
    try:
        for conn in crowd:
            conn.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_until(lambda: busy.clients == 40, "the crowd waiting for its answers")
        assert probe(busy.port).endswith(b"hello /livez\n")
    finally:
        release.set()
        for conn in crowd:
            conn.close()
        busy.stop()
