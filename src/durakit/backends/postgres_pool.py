"""The one place the Postgres store talks to its connection pool: retries on connection loss.

Every store call is a function ``op(conn, retried)`` run by :meth:`RetryingPool.run`.
Connection errors (lost or refused connections, a server restarting, too many clients,
deadlocks) are retried with jittered exponential backoff until a time budget runs out;
then :class:`~durakit.core.errors.StoreUnavailableError` is raised from the last
``psycopg`` error. Any other error is raised at once.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Final, TypeVar

import psycopg
import psycopg_pool
from psycopg.rows import TupleRow

from durakit.core.errors import StoreUnavailableError

T = TypeVar("T")
Conn = psycopg.Connection[TupleRow]

_MIN_DELAY_S: Final = 0.05
_MAX_DELAY_S: Final = 2.0
_POOL_WAIT_S: Final = 5.0  # one attempt's wait for a pooled connection
# How long the pool keeps retrying one lost connection before giving it up. psycopg_pool
# backs off 1, 2, 4, 8 ... s between attempts until this runs out (default 300 s), so
# after a long outage its next attempt could come many seconds after the server is
# back, and a waiting call with it. Capped at one pool wait, a cycle tries at about 0,
# 1, 3 and 5 s, then gives up; the next retry's ``check()`` or checkout starts a new
# cycle at once. So the pool tries at least every ~2 s while calls are waiting.
_RECONNECT_S: Final = _POOL_WAIT_S

logger = logging.getLogger(__name__)


def is_retryable(exc: psycopg.Error) -> bool:
    """Connection lost or refused, server restarting, out of resources, or rolled back."""
    if isinstance(exc, psycopg_pool.PoolClosed):
        return False  # our own close(): retrying cannot help
    if isinstance(exc, psycopg_pool.PoolTimeout):
        return True
    if exc.sqlstate is None:  # raised by the client: the socket is gone or never came up
        return isinstance(exc, psycopg.OperationalError)
    # 08 connection exception, 40 rollback (deadlock, serialization), 53 insufficient
    # resources (too many connections), 57P admin/crash shutdown, cannot connect now.
    return exc.sqlstate.startswith(("08", "40", "53", "57P"))


class RetryingPool:
    """A ``psycopg_pool`` pool of autocommit connections, and the retry loop around it."""

    def __init__(
        self, conninfo: str, *, name: str, min_size: int, max_size: int, retry_timeout: float
    ) -> None:
        self.retry_timeout = retry_timeout
        self.pool: psycopg_pool.ConnectionPool[Conn] = psycopg_pool.ConnectionPool(
            conninfo,
            min_size=min_size,
            max_size=max_size,
            # Autocommit: a single statement is its own transaction, one round trip.
            kwargs={"autocommit": True},
            check=None,  # no liveness ping per checkout: a dead connection is retried
            reconnect_timeout=_RECONNECT_S,
            name=name,
            open=False,
        )
        self.pool.open(wait=False)

    def run(self, op: Callable[[Conn, bool], T]) -> T:
        """Run ``op(conn, retried)`` on a pooled connection, retrying on connection loss.

        ``retried`` is true once an attempt failed in a way that may have hidden a
        commit, so that ``op`` can recognise its own earlier write.
        """
        deadline = time.monotonic() + self.retry_timeout
        delay = _MIN_DELAY_S
        retried = False
        while True:
            wait = max(0.1, min(_POOL_WAIT_S, deadline - time.monotonic()))
            try:
                with self.pool.connection(timeout=wait) as conn:
                    return op(conn, retried)
            except psycopg.Error as exc:
                pause = delay * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not crypto
                if not is_retryable(exc):
                    raise
                if time.monotonic() + pause > deadline:
                    raise StoreUnavailableError(
                        f"Postgres unreachable for {self.retry_timeout:.0f} s: {exc}"
                    ) from exc
                logger.warning("durakit: Postgres call failed (%s); retrying", exc)
                self._drop_dead_connections()
                time.sleep(pause)
                delay = min(_MAX_DELAY_S, delay * 2)
                retried = True

    def _drop_dead_connections(self) -> None:
        # After a server restart every idle connection is dead; finding that out one
        # failed call at a time would cost a backoff pause each. Only on the error path.
        try:
            self.pool.check()
        except psycopg.Error:
            logger.debug("durakit: pool check failed", exc_info=True)

    def close(self) -> None:
        """Close every connection; calls made afterwards raise ``PoolClosed``."""
        self.pool.close()
