"""Telling a wrong Postgres configuration from a Postgres that is down.

A connection attempt fails either because of what was configured (no such database or
role, a wrong password, no ``pg_hba.conf`` entry, no CONNECT privilege, an invalid
option or ``sslmode``, a host name that does not exist): retrying cannot help, and the
caller should hear the server's reason at once. Or because the server is not there right
now (connection refused, a timeout, a server starting up or shutting down, too many
connections): that is an outage, which the store's retry budget is for.

libpq reports connection failures as text only: psycopg gives them no SQLSTATE, so they
are classified by the (English) message, and by SQLSTATE where one is given. What is not
recognised counts as transient, which keeps the retry behaviour durakit had before.
"""

from __future__ import annotations

import getpass
import os
import re
from typing import Final

import psycopg
from psycopg.conninfo import conninfo_to_dict

# 28 invalid authorization (bad password, no pg_hba.conf entry, no such role),
# 3D000 no such database, 42501 insufficient privilege (no CONNECT on the database).
_PERMANENT_SQLSTATES: Final = ("28", "3D000", "42501")

_PERMANENT_MESSAGES: Final = re.compile(
    "|".join(
        (
            r'database ".*" does not exist',
            r'role ".*" does not exist',
            r"password authentication failed",
            r"authentication failed for user",
            r"no pg_hba\.conf entry",
            r"pg_hba\.conf rejects connection",
            r"permission denied for database",
            r"does not have CONNECT privilege",
            r"no password supplied",
            r"invalid connection option",
            r"invalid URI query parameter",
            r"invalid \w+ value",  # invalid sslmode value, invalid port number ...
            r"invalid value for parameter",
            r"unrecognized configuration parameter",
            r"bad value for",
            r"SSL was required",
            r"server does not support SSL",
            r"certificate",
            r"could not translate host name",
            r"failed to resolve host",
            r"Name or service not known",
            r"nodename nor servname",
            r"No address associated with hostname",
        )
    ),
    re.IGNORECASE,
)
# Checked first: a temporary DNS failure is an outage even though it names the host.
_TRANSIENT_MESSAGES: Final = re.compile(
    r"Temporary failure in name resolution|try again", re.IGNORECASE
)
# What libpq puts before the server's own words.
_PREFIX: Final = re.compile(
    r'^(?:connection (?:failed|is bad): )?(?:connection to server (?:at|on) ".*?"'
    r"(?:(?: \([^)]*\))?, port \d+)? failed: )?(?:FATAL: +)?",
)


def is_permanent_connect_error(exc: BaseException) -> bool:
    """Whether a failed connection attempt failed for a reason retrying cannot fix."""
    if not isinstance(exc, psycopg.Error):
        return False
    if isinstance(exc, psycopg.ProgrammingError):
        return True  # the connection string itself is wrong
    if exc.sqlstate is not None:
        return exc.sqlstate.startswith(_PERMANENT_SQLSTATES)
    text = str(exc)
    if _TRANSIENT_MESSAGES.search(text):
        return False
    return _PERMANENT_MESSAGES.search(text) is not None


def connect_reason(exc: object) -> str:
    """The server's (or libpq's) reason for a failed connection, without the preamble."""
    lines = str(exc).strip().splitlines()
    if not lines:
        return type(exc).__name__
    words = [_PREFIX.sub("", lines[0].strip())]
    for line in lines[1:]:  # libpq's hints are indented; other hosts' failures are not
        if not line.startswith(("\t", " ")):
            break
        words.append(line.strip())
    return " ".join(words)


def describe_target(conninfo: str) -> str:
    """``host:port, database, user`` of a connection string, with libpq's defaults."""
    try:
        info = conninfo_to_dict(conninfo)
    except psycopg.Error:
        info = {}

    def pick(key: str, env: str, default: str) -> str:
        value = info.get(key) or os.environ.get(env)
        return str(value) if value else default

    user = pick("user", "PGUSER", _os_user())
    host = pick("host", "PGHOST", "localhost")
    port = pick("port", "PGPORT", "5432")
    dbname = pick("dbname", "PGDATABASE", user)
    return f"{host}:{port}, database {dbname!r}, user {user!r}"


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "?"
