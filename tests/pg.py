"""Postgres for tests: where it is, whether it is up, and an isolated schema per test.

The database is ``DURAKIT_TEST_DATABASE_URL`` (default: the local server at
127.0.0.1:5432, user postgres, database ``test``). When it is unreachable the Postgres
tests skip, saying how to enable them -- except under ``CI=true``, where an unreachable
Postgres fails the run instead of silently testing less.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from durakit.backends.dsn import mask_secrets
from durakit.backends.postgres import PostgresStore
from tests.tcp_proxy import TcpProxy

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


def postgres_url() -> str:
    """The test database's URL."""
    return os.environ.get("DURAKIT_TEST_DATABASE_URL", DEFAULT_URL)


@functools.cache
def postgres_available(url: str | None = None) -> bool:
    """Whether a connection to ``url`` (default :func:`postgres_url`) succeeds; cached."""
    try:
        with psycopg.connect(url or postgres_url(), connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def require_postgres() -> str:
    """The URL, or skip (fail under CI) the calling test if Postgres is not reachable."""
    url = postgres_url()
    if not postgres_available(url):
        where = mask_secrets(url)
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but Postgres is not reachable at {where}")
        pytest.skip(f"Postgres not reachable at {where}; start it or set DURAKIT_TEST_DATABASE_URL")
    return url


def drop_schema(url: str, schema: str) -> None:
    """Drop ``schema`` and everything in it."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@contextmanager
def fresh_schema() -> Iterator[tuple[str, str]]:
    """Yield ``(url, schema)``: a schema name no one uses yet, dropped on exit."""
    url = require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        yield url, schema
    finally:
        drop_schema(url, schema)


@contextmanager
def postgres_schema_factory(
    **store_options: Any,
) -> Iterator[Callable[[], PostgresStore]]:
    """Yield a factory of new :class:`PostgresStore` objects on one fresh schema.

    Every call of the factory opens another store (another pool) on the same schema, as
    a restarted or second process would. The schema is dropped on exit; close the stores
    first. ``store_options`` go to the store's constructor.
    """
    with fresh_schema() as (url, schema):

        def make() -> PostgresStore:
            return PostgresStore(url, schema, **store_options)

        yield make


def proxied(url: str) -> tuple[TcpProxy, str]:
    """A started :class:`TcpProxy` to the server of ``url``, and ``url`` through it.

    Skips the calling test unless ``url`` names one TCP host (a proxy needs one)."""
    info = conninfo_to_dict(url)
    host = str(info.get("host") or "")
    if not host or host.startswith("/") or "," in host or "hostaddr" in info:
        pytest.skip("needs a single TCP host in the test database URL")
    proxy = TcpProxy(host, int(info.get("port") or 5432))
    proxy.start()
    return proxy, make_conninfo(url, host="127.0.0.1", port=str(proxy.port))
