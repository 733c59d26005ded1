"""A TCP server that answers every Postgres connection attempt with one chosen error.

It declines SSL and GSS encryption, reads the startup message and replies with a FATAL
``ErrorResponse`` (SQLSTATE and message given), as a real server refusing a login does:
what libpq, and so psycopg, reports is then exactly what such a server would cause.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading

_SSL_REQUEST = 80877103
_GSSENC_REQUEST = 80877104


class FakePostgres:
    """Listen on 127.0.0.1 (a free port); refuse each login with ``sqlstate``/``message``."""

    def __init__(self, sqlstate: str, message: str) -> None:
        self.sqlstate = sqlstate
        self.message = message
        self.attempts = 0
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def url(self, dbname: str = "shop", user: str = "app") -> str:
        return f"postgresql://{user}:pw@127.0.0.1:{self.port}/{dbname}"

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            with client, contextlib.suppress(OSError):
                client.settimeout(5)
                self._refuse(client)

    def _refuse(self, client: socket.socket) -> None:
        while True:
            (length,) = struct.unpack("!i", _read(client, 4))
            body = _read(client, length - 4)
            (code,) = struct.unpack("!i", body[:4])
            if code in (_SSL_REQUEST, _GSSENC_REQUEST):
                client.sendall(b"N")  # no encryption: the client goes on in clear
                continue
            break  # the startup message
        self.attempts += 1
        fields = b"".join(
            tag + text.encode() + b"\0"
            for tag, text in ((b"S", "FATAL"), (b"V", "FATAL"), (b"C", self.sqlstate))
        )
        fields += b"M" + self.message.encode() + b"\0\0"
        client.sendall(b"E" + struct.pack("!i", len(fields) + 4) + fields)


def _read(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise OSError("peer closed")
        data += chunk
    return data
