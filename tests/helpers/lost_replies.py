"""A TCP proxy on loopback that loses replies: the command reaches the server and is
applied, its reply never reaches the client, and the connection closes (a network cut or
a failover at the worst moment).

Everything else is forwarded as it is, both ways. ``lose("update", times=2)`` drops the
replies of the next two ``update`` commands (the driver's own retry of a write is the
second): the client then sees a connection error for a write the server did apply.
The MongoDB wire protocol is read just enough for it: each message's header (length,
request id, the id it answers, its op code) and, in a command (``OP_MSG``), the name of
the command, the first key of its body.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

HEADER: Final = struct.Struct("<iiii")  # messageLength, requestID, responseTo, opCode
OP_MSG: Final = 2013
BODY_SECTION: Final = 0


def command_of(message: bytes) -> tuple[str, str] | None:
    """An ``OP_MSG``'s command name and the string it names (a collection), or None."""
    _, _, _, op_code = HEADER.unpack_from(message)
    if op_code != OP_MSG:
        return None
    at = HEADER.size + 4  # past the flag bits
    while at < len(message):
        kind, at = message[at], at + 1
        (size,) = struct.unpack_from("<i", message, at)
        if kind == BODY_SECTION:
            return _first_element(message[at : at + size])
        at += size  # a document sequence: its size counts itself
    return None


def _first_element(doc: bytes) -> tuple[str, str]:
    """The name of a BSON document's first element and its value if it is a string."""
    kind = doc[4]
    end = doc.index(b"\0", 5)
    name = doc[5:end].decode()
    if kind != 0x02:  # not a string: a command such as ping or hello
        return name, ""
    (length,) = struct.unpack_from("<i", doc, end + 1)
    return name, doc[end + 5 : end + 4 + length].decode()


def _read_message(conn: socket.socket) -> bytes | None:
    """One whole wire message, or None once the peer closed."""
    header = _read_exactly(conn, HEADER.size)
    if header is None:
        return None
    (length, _, _, _) = HEADER.unpack(header)
    rest = _read_exactly(conn, length - HEADER.size)
    return None if rest is None else header + rest


def _read_exactly(conn: socket.socket, size: int) -> bytes | None:
    chunks, wanted = [], size
    while wanted:
        try:
            chunk = conn.recv(min(wanted, 1 << 20))
        except OSError:
            return None
        if not chunk:
            return None
        chunks.append(chunk)
        wanted -= len(chunk)
    return b"".join(chunks)


@dataclass
class Armed:
    """Replies still to lose: of ``command`` (on ``collection``, if given)."""

    command: str
    times: int
    collection: str | None = None

    def takes(self, found: tuple[str, str] | None) -> bool:
        if found is None or self.times <= 0 or found[0] != self.command:
            return False
        return self.collection is None or found[1] == self.collection


@dataclass
class ReplyLosingProxy:
    """Forwards loopback connections to ``server`` (``host:port``); loses replies on demand."""

    server: str
    port: int = 0
    lost: list[str] = field(default_factory=list)  # the commands whose reply was lost, in turn
    _armed: Armed | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _listener: socket.socket | None = None
    _open: set[socket.socket] = field(default_factory=set)

    @classmethod
    def to(cls, uri: str) -> ReplyLosingProxy:
        """A proxy to the server a ``mongodb://host:port/...`` URI names, started."""
        return cls(urlsplit(uri).netloc).start()

    def uri_for(self, uri: str) -> str:
        """``uri`` through this proxy (a direct connection: the proxy is the server)."""
        parts = urlsplit(uri)
        return parts._replace(netloc=f"127.0.0.1:{self.port}").geturl()

    def start(self) -> ReplyLosingProxy:
        listener = socket.create_server(("127.0.0.1", self.port))
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def lose(self, command: str, times: int = 1, collection: str | None = None) -> None:
        """Lose the replies of the next ``times`` commands named ``command``."""
        with self._lock:
            self._armed = Armed(command, times, collection)

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            for conn in list(self._open):
                _shut(conn)

    def _accept(self, listener: socket.socket) -> None:
        host, port = self.server.rsplit(":", 1)
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed
            try:
                server = socket.create_connection((host, int(port)))
            except OSError:  # the server is down: so is this connection
                _shut(client)
                continue
            doomed: dict[int, str] = {}  # request id → command, for replies to lose
            with self._lock:
                self._open.update((client, server))
            pair = (client, server, doomed)
            threading.Thread(target=self._requests, args=pair, daemon=True).start()
            threading.Thread(target=self._replies, args=pair, daemon=True).start()

    def _requests(
        self, client: socket.socket, server: socket.socket, doomed: dict[int, str]
    ) -> None:
        while (message := _read_message(client)) is not None:
            found = command_of(message)
            with self._lock:
                if self._armed is not None and self._armed.takes(found):
                    self._armed.times -= 1
                    doomed[HEADER.unpack_from(message)[1]] = self._armed.command
            if not _send(server, message):
                break
        self._drop(client, server)

    def _replies(
        self, client: socket.socket, server: socket.socket, doomed: dict[int, str]
    ) -> None:
        while (message := _read_message(server)) is not None:
            if (command := doomed.get(HEADER.unpack_from(message)[2])) is not None:
                self.lost.append(command)  # applied, never answered: the connection ends
                break
            if not _send(client, message):
                break
        self._drop(client, server)

    def _drop(self, *conns: socket.socket) -> None:
        with self._lock:
            for conn in conns:
                _shut(conn)
                self._open.discard(conn)


def _send(conn: socket.socket, data: bytes) -> bool:
    try:
        conn.sendall(data)
    except OSError:
        return False
    return True


def _shut(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)
    conn.close()
