"""Telling an SQLite file that cannot be used from one that cannot be used right now.

The driver raises ``sqlite3`` errors carrying SQLite's result code
(``sqlite_errorcode``, an extended code whose low byte is the primary one). Transient
ones -- the file is locked past the busy timeout, an I/O error, a full disk, or no file
descriptor left to open it -- are an outage: the store raises
:class:`~durakit.core.errors.StoreUnavailableError`, and a workflow pauses and resumes
as on a Postgres outage. Permanent ones -- the directory does not exist, the file is
read-only or is not a (sound) SQLite database -- need a person: at open they become an
:class:`~durakit.core.errors.InitializationError` naming the path.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path
from typing import Final

from durakit.core.errors import StoreUnavailableError

# Primary result codes (https://www.sqlite.org/rescode.html).
SQLITE_PERM: Final = 3
SQLITE_BUSY: Final = 5
SQLITE_LOCKED: Final = 6
SQLITE_NOMEM: Final = 7
SQLITE_READONLY: Final = 8
SQLITE_IOERR: Final = 10
SQLITE_CORRUPT: Final = 11
SQLITE_FULL: Final = 13
SQLITE_CANTOPEN: Final = 14
SQLITE_PROTOCOL: Final = 15
SQLITE_AUTH: Final = 23
SQLITE_NOTADB: Final = 26

_TRANSIENT: Final = frozenset(
    {SQLITE_BUSY, SQLITE_LOCKED, SQLITE_NOMEM, SQLITE_IOERR, SQLITE_FULL, SQLITE_PROTOCOL}
)
_PERMANENT: Final = {
    SQLITE_PERM: "access is denied",
    SQLITE_READONLY: "the file is read-only",
    SQLITE_CORRUPT: "the file is corrupt",
    SQLITE_NOTADB: "the file is not an SQLite database",
    SQLITE_AUTH: "access is denied",
}


class SQLiteFileError(StoreUnavailableError):
    """The file cannot be used until someone fixes it (see :func:`classify`).

    Still a :class:`StoreUnavailableError`, so that inside a workflow it pauses the
    workflow (the store cannot record an outcome either) rather than becoming its error;
    :meth:`~durakit.backends.sqlite.SQLiteStore.migrate` turns it into an
    ``InitializationError``.
    """


def primary_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def classify(exc: sqlite3.Error, path: str) -> StoreUnavailableError | None:
    """The store error ``exc`` means for the file at ``path``, or None if it is not about
    the file (a constraint, a bug in a statement): then ``exc`` itself should propagate."""
    code = primary_code(exc)
    if code in _TRANSIENT:
        return StoreUnavailableError(f"SQLite file {path}: {exc}")
    if code == SQLITE_CANTOPEN:
        why = _cannot_open_why(path)
        if why is None:  # out of file descriptors, most likely: it passes
            return StoreUnavailableError(f"SQLite file {path}: {exc}")
        return SQLiteFileError(f"cannot open SQLite file {path}: {why} ({exc})")
    if code is not None and code in _PERMANENT:
        return SQLiteFileError(f"cannot use SQLite file {path}: {_PERMANENT[code]} ({exc})")
    return None


def _cannot_open_why(path: str) -> str | None:
    """Why SQLite could not open ``path``, if the cause is permanent; None if it is not."""
    file = Path(path).absolute()
    if not file.parent.is_dir():
        return f"the directory {file.parent} does not exist"
    if file.is_dir():
        return "it is a directory"
    try:
        os.close(os.open(os.devnull, os.O_RDONLY))
    except OSError as err:
        if err.errno in (errno.EMFILE, errno.ENFILE):
            return None  # no file descriptor left in this process (or system)
        raise
    if not os.access(file.parent, os.W_OK | os.X_OK):
        return f"the directory {file.parent} is not writable"
    if file.exists() and not os.access(file, os.R_OK | os.W_OK):
        return "the file is not readable and writable"
    return None
