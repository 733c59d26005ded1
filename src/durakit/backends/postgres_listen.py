"""One LISTEN connection per store, on a daemon thread, feeding subscribed callbacks.

Notifications are hints (see :class:`~durakit.backends.protocol.PushNotifications`):
waiters re-check the tables, so what this module must guarantee is only that a lost
connection is noticed and replaced, and that subscribers learn that they may have missed
something. After every reconnection each callback is called with :data:`RECHECK_ALL`.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from typing import Final

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from durakit.backends.health import StoreHealth
from durakit.backends.postgres_errors import connect_reason
from durakit.core.backoff import Backoff

RECHECK_ALL: Final = "*"
"""Key passed to callbacks after a reconnection: notifications may have been lost."""

_POLL_S: Final = 0.25  # how often the thread looks at its stop flag while idle
_MIN_DELAY_S: Final = 0.05
_MAX_DELAY_S: Final = 2.0
# An idle LISTEN connection sends nothing, so a silently dead peer (a dropped network,
# not a closed socket) would never be noticed without TCP keepalives.
_KEEPALIVES: Final = {
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
}

logger = logging.getLogger(__name__)


class Listener:
    """LISTENs on one channel and calls every callback with each notification's payload."""

    def __init__(self, conninfo: str, channel: str, health: StoreHealth) -> None:
        given = conninfo_to_dict(conninfo)
        self._conninfo = make_conninfo(
            conninfo, **{k: v for k, v in _KEEPALIVES.items() if k not in given}
        )
        self._channel = channel
        self._health = health
        self._callbacks: list[Callable[[str], None]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listening = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"durakit-listen-{channel}", daemon=True
        )

    def add(self, callback: Callable[[str], None]) -> None:
        """Subscribe ``callback``; it is called from the listener thread."""
        with self._lock:
            self._callbacks.append(callback)

    def start(self) -> None:
        """Start the thread; it connects and LISTENs in the background."""
        self._thread.start()

    def wait_listening(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for LISTEN to be in effect; whether it is.

        Waiting means a caller that subscribes and then writes gets its own notification.
        If the database is unreachable meanwhile, the reconnection will call every
        callback with :data:`RECHECK_ALL` later, so giving up early loses nothing.
        """
        return self._listening.wait(timeout_s)

    def stop(self) -> None:
        """Stop the thread (within about a poll interval) and close its connection."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)

    def _dispatch(self, key: str) -> None:
        with self._lock:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            try:
                callback(key)
            except Exception:  # a subscriber's bug must not kill the listener
                logger.exception("durakit notification callback failed for %r", key)

    def _run(self) -> None:
        backoff = Backoff(_MIN_DELAY_S, _MAX_DELAY_S, jitter=0.5, rng=random.random)
        missed = False  # a failure happened since LISTEN was last in effect
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                    self._listening.set()
                    backoff.reset()
                    if missed:
                        self._health.up()
                        self._dispatch(RECHECK_ALL)
                        missed = False
                    while not self._stop.is_set():
                        for notify in conn.notifies(timeout=_POLL_S):
                            self._dispatch(notify.payload)
            except psycopg.Error as exc:
                missed = True
                self._listening.clear()
                # Logged once per outage by the store's health, not once per attempt.
                self._health.down(connect_reason(exc))
                logger.debug("durakit listener lost its connection (%s); reconnecting", exc)
                # Jittered exponential backoff, interruptible by stop().
                self._stop.wait(backoff.next())
