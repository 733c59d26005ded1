"""Per-thread SQLite connections for :class:`~durakit.backends.sqlite.SQLiteStore`.

A SQLite connection must not be used by two threads at once, so each thread gets its own,
opened in driver autocommit mode: this module, not the driver, decides where
transactions begin. Every write is one ``BEGIN IMMEDIATE`` transaction, which takes the
database's write lock up front, so the reads a write makes to decide (is the fence still
ours?) cannot be invalidated before it commits, and the busy timeout queues writers of
other threads and processes instead of failing them.

Durability: WAL with ``synchronous=FULL`` fsyncs the log at every commit, so a write that
returned survives a power loss (``NORMAL`` would only survive a process crash).
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from sqlite_utils import Database

from durakit.core.errors import StoreUnavailableError

BUSY_TIMEOUT_S: Final = 30.0


class _Connection:
    """One thread's connection; ``lock`` lets :meth:`ConnectionPool.close` wait for it."""

    def __init__(self, path: str) -> None:
        # check_same_thread=False so that close() may close it from another thread (``lock``
        # serializes that with the owning thread's use), and so that a new thread may
        # adopt it once its own thread has ended (one thread uses it at a time).
        conn = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        self.db = Database(conn, recursive_triggers=False, execute_plugins=False)
        self.lock = threading.Lock()
        self.thread = threading.current_thread()
        self.closed = False
        self.db.execute("PRAGMA synchronous = FULL")
        self.db.enable_wal()

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


_UNAVAILABLE = re.compile(r"locked|busy|disk I/O|unable to open|readonly|disk is full", re.I)


class ConnectionPool:
    """One connection per thread on the SQLite file at ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._closed = False
        self._forget()
        _LIVE_POOLS.add(self)

    def _forget(self) -> None:
        self._local = threading.local()
        self._registry_lock = threading.Lock()
        # Serializes this process's writers before BEGIN IMMEDIATE: a writer that finds
        # the file locked by another connection sleeps in SQLite's busy handler (1 ms,
        # then longer), whereas one waiting here wakes the moment the other commits.
        # Other processes are still queued by the busy timeout.
        self._write_lock = threading.Lock()
        self._connections: list[_Connection] = []

    @contextmanager
    def connection(self) -> Iterator[Database]:
        """This thread's connection, in autocommit mode (each statement its own snapshot)."""
        conn: _Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open()
        with conn.lock:
            if conn.closed:
                raise sqlite3.ProgrammingError("SQLiteStore is closed")
            try:
                yield conn.db
            except sqlite3.OperationalError as exc:
                # Locked past the busy timeout, or the file cannot be read or written:
                # the store is unavailable, which the engine handles apart from bugs.
                if _UNAVAILABLE.search(str(exc)):
                    raise StoreUnavailableError(f"SQLite file {self.path}: {exc}") from exc
                raise

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

    def _open(self) -> _Connection:
        # Every workflow runs on a thread of its own: adopting the connection of a thread
        # that has ended saves opening one (~0.1 ms, plus a cold schema and statement
        # cache) per workflow. Other ended threads' connections would otherwise stay open
        # until close(): they are closed.
        with self._registry_lock:
            dead = [c for c in self._connections if not c.thread.is_alive()]
            adopted = None if self._closed or not dead else dead.pop()
            if adopted is not None:
                adopted.thread = threading.current_thread()
            self._connections = [c for c in self._connections if c not in dead]
        for c in dead:
            c.close()
        if adopted is not None:
            self._local.conn = adopted
            return adopted
        conn = _Connection(self.path)
        with self._registry_lock:
            closed = self._closed
            if not closed:
                self._connections.append(conn)
        if closed:
            conn.close()
            raise sqlite3.ProgrammingError("SQLiteStore is closed")
        self._local.conn = conn
        return conn

    def close(self) -> None:
        """Close every thread's connection, waiting for calls in flight to finish."""
        with self._registry_lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
