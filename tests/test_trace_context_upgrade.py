"""A database made before workflows stored a trace context is upgraded in place: its rows
read back with ``trace_context=None`` and new rows keep theirs (SQLite and Postgres)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest

from durakit.backends import SystemStore, sqlite_schema
from durakit.backends import postgres_schema as pg_schema
from durakit.backends.postgres import PostgresStore
from durakit.backends.sqlite import SQLiteStore
from durakit.core.records import NewWorkflow
from durakit.core.status import StatusType
from tests import pg

_OLD_ROW = (
    "INSERT INTO {table} (workflow_id, name, status, input, executor_id, application_version, "
    "created_at, updated_at, attempts, priority) "
    "VALUES ('old', 'w', 'PENDING', NULL, 'local', 'v1', 1, 1, 1, 0)"
)


def _new(workflow_id: str, trace_context: str | None) -> NewWorkflow:
    return NewWorkflow(
        workflow_id=workflow_id,
        name="w",
        status=StatusType.PENDING,
        input=None,
        executor_id="local",
        application_version="v1",
        created_at=2,
        trace_context=trace_context,
    )


def _check_upgraded(store: SystemStore) -> None:
    old = store.get_workflow("old")
    assert old is not None
    assert (old.name, old.trace_context) == ("w", None)
    carrier = '{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}'
    assert store.insert_workflow(_new("new", carrier)).record.trace_context == carrier
    new = store.get_workflow("new")
    assert new is not None
    assert new.trace_context == carrier


def _sqlite_before() -> int:
    """The SQLite schema version just before the trace context column."""
    for number, statements in sqlite_schema.MIGRATIONS:
        if any("trace_context" in sql for sql in statements):
            return number - 1
    raise AssertionError("no SQLite migration adds trace_context")


def test_sqlite_file_of_an_older_durakit_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    before = _sqlite_before()
    conn = sqlite3.connect(path)
    for number, statements in sqlite_schema.MIGRATIONS:
        if number <= before:
            for sql in statements:
                conn.execute(sql)
    conn.execute(f"PRAGMA user_version = {before}")
    conn.execute(_OLD_ROW.format(table="workflows"))
    conn.commit()
    conn.close()

    store = SQLiteStore(path)
    try:
        store.migrate()
        _check_upgraded(store)
    finally:
        store.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == sqlite_schema.LATEST_VERSION
    finally:
        conn.close()


@pytest.mark.postgres
def test_postgres_schema_of_an_older_durakit_is_upgraded() -> None:
    migrations = pg_schema._MIGRATIONS
    before = next(i for i, m in enumerate(migrations) if any("trace_context" in s for s in m))
    with pg.fresh_schema() as (url, schema):
        s = pg_schema.quote_ident(schema)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {s}")
            conn.execute(pg_schema._VERSION_TABLE.format(s=s))
            for statements in migrations[:before]:
                for statement in statements:
                    conn.execute(statement.format(s=s))
            conn.execute(
                f"INSERT INTO {s}.schema_version (version) VALUES (%s)",
                (before,),
            )
            conn.execute(_OLD_ROW.format(table=f"{s}.workflows"))
        store = PostgresStore(url, schema)
        try:
            store.migrate()
            _check_upgraded(store)
        finally:
            store.close()
