"""The admin server: uvicorn serving :func:`~durakit.admin.app.build_app` on a thread.

The socket is bound here, before uvicorn starts, so that a port in use fails
``launch()`` at once with a clear error, and so that port 0 (pick a free one) tells
which port it got.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Final

import uvicorn

from durakit.admin.app import build_app
from durakit.api.management import Management
from durakit.core.errors import InitializationError

LOOPBACK: Final = frozenset({"127.0.0.1", "::1", "localhost"})
"""Hosts an admin server may bind without a token."""


def check_exposure(host: str, token: str | None) -> None:
    """Refuse to serve the admin API beyond this machine without a token."""
    if host not in LOOPBACK and token is None:
        raise InitializationError(
            f"Config.admin_host {host!r} is not a loopback address: set Config.admin_token "
            "(or DURAKIT_ADMIN_TOKEN) so that the admin API is not open to the network"
        )


def _bind(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise InitializationError(f"admin server: cannot resolve host {host!r}: {exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise InitializationError(
            f"admin server cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from exc
    return sock


class AdminServer:
    """Serves the admin API of ``target`` on ``host:port`` until :meth:`stop`."""

    def __init__(
        self,
        target: Management,
        *,
        host: str,
        port: int,
        token: str | None,
        log: logging.Logger,
    ) -> None:
        check_exposure(host, token)
        self._sock = _bind(host, port)
        self.port: int = self._sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self.port}"
        config = uvicorn.Config(
            build_app(target, token=token),
            lifespan="off",
            log_config=None,  # the application's logging setup is its own business
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._log = log
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._sock]},
            name="durakit-admin",
            daemon=True,
        )

    def serve_forever(self) -> None:
        """Serve on this thread until interrupted (``durakit dashboard``)."""
        try:
            self._server.run(sockets=[self._sock])
        finally:
            self._sock.close()

    def start(self, timeout: float = 10.0) -> None:
        """Serve on a background thread; returns once the server accepts requests."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise InitializationError(f"admin server did not start on {self.url}")
            time.sleep(0.01)
        self._log.info("admin server listening on %s", self.url)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting requests, let the current ones finish, and close the socket."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._sock.close()
