"""The indexes behind the admin API's lists ((status, created_at) and (name, created_at)):
created for new databases, added to databases made by the previous schema version, and
used by the list queries."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from durakit.backends import postgres_schema, sqlite_schema
from durakit.backends.postgres import PostgresStore
from durakit.backends.sqlite import SQLiteStore
from durakit.core.records import WorkflowQuery
from durakit.core.status import StatusType
from tests.pg import fresh_schema
from tests.records_support import new_wf


def _sqlite_indexes(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'").fetchall()
        return {r[0] for r in rows}
    finally:
        conn.close()


def test_sqlite_database_of_schema_version_1_gets_the_list_indexes(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    for statement in sqlite_schema.MIGRATIONS[0][1]:  # what durakit 0.1 created
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute(
        "INSERT INTO workflows (workflow_id, name, status, executor_id, application_version,"
        " created_at, updated_at) VALUES ('old', 'n', 'SUCCESS', 'e', 'v', 1, 1)"
    )
    conn.commit()
    conn.close()
    assert "workflows_status_created_at" not in _sqlite_indexes(path)

    store = SQLiteStore(path)
    store.migrate()
    try:
        assert {"workflows_status_created_at", "workflows_name_created_at"} <= _sqlite_indexes(path)
        found = store.list_workflows(WorkflowQuery(statuses=(StatusType.SUCCESS,)))
        assert [w.workflow_id for w in found] == ["old"]  # the old rows are kept
    finally:
        store.close()
    conn = sqlite3.connect(path)
    plan = conn.execute(
        "EXPLAIN QUERY PLAN SELECT workflow_id FROM workflows WHERE status = ? "
        "ORDER BY created_at DESC, workflow_id DESC LIMIT 100",
        ("ERROR",),
    ).fetchall()
    conn.close()
    assert "workflows_status_created_at" in str(plan)


def _pg(url: str, query: str, params: Any = None) -> list[Any]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(query, params).fetchall()


@pytest.mark.postgres
def test_postgres_schema_of_version_1_gets_the_list_indexes() -> None:
    with fresh_schema() as (url, schema):
        s = sql.Identifier(schema).as_string()
        with psycopg.connect(url, autocommit=True) as conn:  # what durakit 0.1 created
            conn.execute(f"CREATE SCHEMA {s}")
            conn.execute(postgres_schema._VERSION_TABLE.format(s=s))
            for statement in postgres_schema._MIGRATIONS[0]:
                conn.execute(statement.format(s=s))
            conn.execute(f"INSERT INTO {s}.schema_version (version) VALUES (1)")
        store = PostgresStore(url, schema)
        try:
            store.migrate()
            store.insert_workflow(new_wf())
            names = {
                r[0]
                for r in _pg(
                    url, "SELECT indexname FROM pg_indexes WHERE schemaname = %s", (schema,)
                )
            }
            assert {"workflows_status_created_idx", "workflows_name_created_idx"} <= names
            version = _pg(url, f"SELECT version FROM {s}.schema_version")
            assert version == [(postgres_schema.SCHEMA_VERSION,)]
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("SET enable_seqscan = off")  # a tiny table: ask what it could use
                plan = conn.execute(
                    f"EXPLAIN SELECT workflow_id FROM {s}.workflows WHERE name = %s "
                    'ORDER BY created_at DESC, workflow_id COLLATE "C" DESC LIMIT 100',
                    ("n",),
                ).fetchall()
            assert "workflows_name_created_idx" in str(plan)
        finally:
            store.close()
