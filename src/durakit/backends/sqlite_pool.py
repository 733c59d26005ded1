"""Connections for :class:`~durakit.backends.sqlite.SQLiteStore`: a small bounded pool.

A SQLite connection must not be used by two threads at once, so each call takes a free
connection for itself (one call at a time per connection), and gives it back after.
Connections are opened in driver autocommit mode: this module, not the driver, decides
where transactions begin. Every write is one ``BEGIN IMMEDIATE`` transaction, which takes
the database's write lock up front, so the reads a write makes to decide (is the fence
still ours?) cannot be invalidated before it commits, and the busy timeout queues writers
of other threads and processes instead of failing them.

Why bounded, and not one connection per thread: every workflow runs on a thread of its
own, and in WAL mode SQLite cannot close the file descriptor of a closed connection while
another connection of the process holds its lock on the file (it keeps it for reuse), so
a connection per thread left 2,009 descriptors open after 1,000 concurrent workflows had
finished. At most :data:`MAX_CONNECTIONS` are ever open.

Durability: WAL with ``synchronous=FULL`` fsyncs the log at every commit, so a write that
returned survives a power loss (``NORMAL`` would only survive a process crash).

Errors: an ``sqlite3`` error about the file (locked, I/O, cannot open, read-only,
corrupt) is turned into a store error by :mod:`.sqlite_errors`, and reported to the
store's :class:`~durakit.backends.health.StoreHealth`.
"""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from sqlite_utils import Database

from durakit.backends.health import StoreHealth
from durakit.backends.sqlite_errors import SQLITE_BUSY, SQLITE_LOCKED, classify, primary_code
from durakit.core.backoff import Backoff

BUSY_TIMEOUT_S: Final = 30.0
MAX_CONNECTIONS: Final = 8
"""Connections per store and process; a call waits for a free one past this bound."""


def _enable_wal(db: Database) -> None:
    """Switch the file to WAL. Switching needs the file's exclusive lock and SQLite does
    not wait for it (the busy timeout does not apply), so processes opening a new file at
    once see "database is locked": retry that within the busy timeout. Once one of them
    has switched, the mode is persistent and the others' switch is a no-op."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    backoff = Backoff(0.005, 0.2, jitter=0.5, rng=random.random)
    while True:
        try:
            db.enable_wal()
            return
        except sqlite3.OperationalError as exc:
            if primary_code(exc) not in (SQLITE_BUSY, SQLITE_LOCKED):
                raise
            if time.monotonic() >= deadline:
                raise
            time.sleep(backoff.next())


class _Connection:
    """One connection; ``lock`` lets :meth:`ConnectionPool.close` wait for its user."""

    def __init__(self, path: str) -> None:
        # check_same_thread=False: each call may come from another thread (one at a
        # time), and close() may close it from yet another (``lock`` serializes that).
        conn = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        try:
            self.db = Database(conn, recursive_triggers=False, execute_plugins=False)
            self.db.execute("PRAGMA synchronous = FULL")
            _enable_wal(self.db)
        except BaseException:
            conn.close()
            raise
        self.lock = threading.Lock()
        self.closed = False

    def close(self) -> None:
        with self.lock:
            if not self.closed:
                self.closed = True
                self.db.close()


_LIVE_POOLS: weakref.WeakSet[ConnectionPool] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # A forked child must not use its parent's connections (their locks and file state
    # belong to the parent), nor close them; it opens its own on first use.
    for pool in list(_LIVE_POOLS):
        pool._forget()


os.register_at_fork(after_in_child=_after_fork_in_child)


class ConnectionPool:
    """At most :data:`MAX_CONNECTIONS` connections on the SQLite file at ``path``, each
    used by one thread at a time for one call."""

    def __init__(self, path: str, health: StoreHealth) -> None:
        self.path = path
        self.health = health
        self._closed = False
        self._forget()
        _LIVE_POOLS.add(self)

    def _forget(self) -> None:
        self._registry_lock = threading.Lock()
        self._available = threading.Condition(self._registry_lock)
        # Serializes this process's writers before BEGIN IMMEDIATE: a writer that finds
        # the file locked by another connection sleeps in SQLite's busy handler (1 ms,
        # then longer), whereas one waiting here wakes the moment the other commits.
        # Other processes are still queued by the busy timeout.
        self._write_lock = threading.Lock()
        self._connections: list[_Connection] = []  # every open one: close() closes them
        self._free: list[_Connection] = []  # open and not in use; the last used on top
        self._opening = 0  # connections being opened, counted against the bound

    @contextmanager
    def connection(self) -> Iterator[Database]:
        """A connection for one call, in autocommit mode (each statement its own snapshot).

        Raises :class:`~durakit.core.errors.StoreUnavailableError` (or its subclass
        ``SQLiteFileError`` for a file that needs fixing) when the file cannot be opened,
        read or written; other ``sqlite3`` errors (a constraint) pass unchanged.
        """
        with self._file_errors():
            conn = self._checkout()
        try:
            # The lock is held for the call, so that close() waits for it.
            with conn.lock, self._file_errors():
                if conn.closed:
                    raise sqlite3.ProgrammingError("SQLiteStore is closed")
                yield conn.db
        finally:
            self._checkin(conn)
        if self.health.is_down:
            self.health.up()

    @contextmanager
    def _file_errors(self) -> Iterator[None]:
        """Turns an ``sqlite3`` error about the file into a store error (and tells the
        store's health); any other ``sqlite3`` error passes unchanged."""
        try:
            yield
        except sqlite3.Error as exc:
            error = classify(exc, self.path)
            if error is None:
                raise
            self.health.down(str(error).removeprefix(f"SQLite file {self.path}: "))
            raise error from exc

    @contextmanager
    def write(self) -> Iterator[Database]:
        """One ``BEGIN IMMEDIATE`` transaction: committed on return, rolled back on error."""
        with self.connection() as db, self._write_lock:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                db.rollback()
                raise

    def _checkout(self) -> _Connection:
        """A free connection, a new one while under the bound, or wait for one."""
        with self._available:
            while True:
                if self._closed:
                    raise sqlite3.ProgrammingError("SQLiteStore is closed")
                if self._free:
                    return self._free.pop()
                if len(self._connections) + self._opening < MAX_CONNECTIONS:
                    self._opening += 1
                    break
                self._available.wait()
        try:
            conn = _Connection(self.path)
        except BaseException:
            with self._available:
                self._opening -= 1
                self._available.notify()
            raise
        if not self._register(conn):  # close() ran meanwhile
            conn.close()
            raise sqlite3.ProgrammingError("SQLiteStore is closed")
        return conn

    def _register(self, conn: _Connection) -> bool:
        """Count a newly opened connection in; False if the pool was closed meanwhile."""
        with self._available:
            self._opening -= 1
            if not self._closed:
                self._connections.append(conn)
            return not self._closed

    def _checkin(self, conn: _Connection) -> None:
        with self._available:
            # Not after close(), nor a parent's connection after a fork.
            if not self._closed and any(c is conn for c in self._connections):
                self._free.append(conn)
            self._available.notify()

    def open_connections(self) -> int:
        """How many connections are open (for tests and diagnostics)."""
        with self._registry_lock:
            return len(self._connections)

    def close(self) -> None:
        """Close every connection, waiting for calls in flight to finish."""
        with self._available:
            self._closed = True
            connections, self._connections, self._free = self._connections, [], []
            self._available.notify_all()
        for conn in connections:
            conn.close()
