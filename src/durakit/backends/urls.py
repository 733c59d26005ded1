"""Choosing a store from a database URL.

=================================  ==========================================
``None``                           SQLite file ``durakit.db`` in the working dir
``memory://``                      :class:`~durakit.backends.memory.MemoryStore`
``sqlite:///relative/path.db``     SQLite file, relative to the working dir
``sqlite:////absolute/path.db``    SQLite file at an absolute path
``postgresql://...``, ``postgres://...``  :class:`~durakit.backends.postgres.PostgresStore`
=================================  ==========================================

The SQLite forms follow SQLAlchemy's: three slashes then a relative path, four for an
absolute one. Store modules are imported only when chosen, so a SQLite user never
imports psycopg.
"""

from __future__ import annotations

from pathlib import Path

from durakit.backends.dsn import mask_secrets
from durakit.backends.memory import MemoryStore
from durakit.backends.protocol import SystemStore
from durakit.core.errors import InitializationError

DEFAULT_SQLITE_FILE = "durakit.db"


def open_store(database_url: str | None, schema: str) -> SystemStore:
    """A new, not yet migrated, store for ``database_url`` (see the module table).

    ``schema`` is the Postgres schema; the other stores have none and ignore it. Raises
    :class:`~durakit.core.errors.InitializationError` for a URL no store accepts.
    """
    if database_url is None:
        return _sqlite(Path(DEFAULT_SQLITE_FILE))
    scheme, sep, rest = database_url.partition("://")
    scheme = scheme.lower()
    if sep and scheme == "memory" and rest in ("", "/"):
        return MemoryStore()
    if sep and scheme in ("postgresql", "postgres"):
        from durakit.backends.postgres import PostgresStore  # noqa: PLC0415 - psycopg on demand

        return PostgresStore(database_url, schema)
    if sep and scheme == "sqlite" and rest.startswith("/") and len(rest) > 1:
        # sqlite:///x.db -> "x.db", sqlite:////abs/x.db -> "/abs/x.db"
        return _sqlite(Path(rest[1:]))
    raise InitializationError(
        f"unsupported database URL {mask_secrets(database_url)!r}: use memory://, "
        "sqlite:///relative.db, sqlite:////absolute.db or postgresql://user@host/db"
    )


def reopen_store(closed: SystemStore, database_url: str | None, schema: str) -> SystemStore:
    """A store on the same database as ``closed``, which ``open_store(database_url,
    schema)`` returned and which has been closed since (an engine launched again after
    its shutdown).

    A ``memory://`` database lives in its store object, and closing that object keeps
    it: the same object, so a relaunch finds what was recorded before. Any other URL
    names a database outside the object: a new store on it.
    """
    if isinstance(closed, MemoryStore):
        return closed
    return open_store(database_url, schema)


def _sqlite(path: Path) -> SystemStore:
    from durakit.backends.sqlite import SQLiteStore  # noqa: PLC0415 - imported on demand

    return SQLiteStore(path)
