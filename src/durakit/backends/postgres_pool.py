"""The one place the Postgres store talks to its connection pool: retries on connection loss.

Every store call is a function ``op(conn, retried)`` run by :meth:`RetryingPool.run`.
Connection errors (lost or refused connections, a server restarting, too many clients,
deadlocks) are retried with jittered exponential backoff until a time budget runs out;
then :class:`~durakit.core.errors.StoreUnavailableError` is raised from the last
``psycopg`` error. Any other error is raised at once.

Failures are not logged one by one: they go to the store's
:class:`~durakit.backends.health.StoreHealth`, which logs when the store goes down and
when it is back. ``psycopg_pool`` logs a warning for every failed connection attempt of
its own; those of durakit's pools are routed there too (and to DEBUG on this module's
logger), while other pools' warnings pass untouched.
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
import weakref
from collections.abc import Callable
from typing import Final, TypeVar

import psycopg
import psycopg_pool
from psycopg.rows import TupleRow

from durakit.backends.health import StoreHealth
from durakit.backends.postgres_errors import connect_reason
from durakit.core.backoff import Backoff
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

_POOLS: weakref.WeakValueDictionary[str, RetryingPool] = weakref.WeakValueDictionary()
_NUMBERS = itertools.count(1)
_CALLING = threading.local()  # .pool: the RetryingPool whose run() this thread is in


def _is_outage(exc: psycopg.Error) -> bool:
    """A failure to reach the server (rather than a deadlock or serialization retry)."""
    return exc.sqlstate is None or exc.sqlstate.startswith(("08", "53", "57P"))


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
        self,
        conninfo: str,
        *,
        name: str,
        min_size: int,
        max_size: int,
        retry_timeout: float,
        health: StoreHealth,
    ) -> None:
        self.retry_timeout = retry_timeout
        self.health = health
        # Unique, so that psycopg_pool's log records name exactly one of our pools.
        name = f"{name}-{next(_NUMBERS)}"
        _POOLS[name] = self
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
        # psycopg_pool's warnings about a connection this call returns or checks do not
        # name the pool: the log filter finds it here.
        _CALLING.pool = self
        try:
            return self._run(op)
        finally:
            _CALLING.pool = None

    def _run(self, op: Callable[[Conn, bool], T]) -> T:
        deadline = time.monotonic() + self.retry_timeout
        backoff = Backoff(_MIN_DELAY_S, _MAX_DELAY_S, jitter=0.5, rng=random.random)
        retried = False
        while True:
            wait = max(0.1, min(_POOL_WAIT_S, deadline - time.monotonic()))
            try:
                with self.pool.connection(timeout=wait) as conn:
                    result = op(conn, retried)
            except psycopg.Error as exc:
                pause = backoff.next()
                if not is_retryable(exc):
                    raise
                if _is_outage(exc):
                    self._report_down(exc)
                if time.monotonic() + pause > deadline:
                    raise StoreUnavailableError(
                        f"Postgres unreachable for {self.retry_timeout:.0f} s "
                        f"({self.health.name}): {self.health.reason or exc}"
                    ) from exc
                logger.debug("durakit: Postgres call failed (%s); retrying", exc)
                self._drop_dead_connections()
                time.sleep(pause)
                retried = True
            else:
                if self.health.is_down:
                    self.health.up()
                return result

    def _report_down(self, exc: psycopg.Error) -> None:
        # A pool timeout only says no connection came; the pool's own failed attempt
        # (routed here by the log filter) has already given the server's reason.
        if not (isinstance(exc, psycopg_pool.PoolTimeout) and self.health.is_down):
            self.health.down(connect_reason(exc))

    def connect_failed(self, exc: object) -> None:
        """``psycopg_pool`` failed to open a connection for this pool."""
        self.health.down(connect_reason(exc))

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


class _RouteOurPoolsWarnings(logging.Filter):
    """Takes the ``psycopg.pool`` records about durakit's pools out of the log.

    A failed connection attempt is reported to the pool's health instead; every such
    record is repeated at DEBUG level on this module's logger. Records about other pools
    pass unchanged.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        pool = next((p for p in map(_our_pool, args) if p is not None), None)
        pool = pool or getattr(_CALLING, "pool", None)
        if pool is None:
            return True
        if record.msg == "error connecting in %r: %s" and len(args) == 2:
            pool.connect_failed(args[1])
        logger.debug("psycopg_pool: %s", record.getMessage())
        return False


def _our_pool(arg: object) -> RetryingPool | None:
    """The pool of ours a log argument is or belongs to: a pool name, a connection, a task."""
    if isinstance(arg, str):
        return _POOLS.get(arg)
    owner = getattr(arg, "_pool", None) or getattr(arg, "pool", None)
    if isinstance(owner, weakref.ref):
        owner = owner()
    name = getattr(owner, "name", None)
    return _POOLS.get(name) if isinstance(name, str) else None


logging.getLogger("psycopg.pool").addFilter(_RouteOurPoolsWarnings())
