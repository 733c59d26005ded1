"""The SQLite schema as a list of numbered migrations, recorded in ``PRAGMA user_version``.

A migration is never edited once released: a schema change is a new entry at the end.
Each migration runs with the rest of the pending ones in one ``BEGIN IMMEDIATE``
transaction (SQLite DDL is transactional), so a crash mid-upgrade leaves the old schema
and the old version number, and two processes migrating at once are serialized by the
write lock: the second one re-reads the version under the lock and finds nothing to do.
"""

from __future__ import annotations

from typing import Final

from sqlite_utils import Database

from durakit.core.errors import InitializationError

MIGRATIONS: Final[tuple[tuple[int, tuple[str, ...]], ...]] = (
    (
        1,
        (
            """
            CREATE TABLE workflows (
                workflow_id TEXT PRIMARY KEY NOT NULL,
                name TEXT NOT NULL,
                status TEXT NOT NULL,
                input TEXT,
                output TEXT,
                error TEXT,
                executor_id TEXT NOT NULL,
                application_version TEXT NOT NULL,
                application_id TEXT,
                owner TEXT,
                created_at INTEGER NOT NULL,
                updated_at INTEGER NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 1,
                queue_name TEXT,
                deduplication_id TEXT,
                priority INTEGER NOT NULL DEFAULT 0,
                timeout_ms INTEGER,
                deadline_ms INTEGER,
                started_at INTEGER,
                authenticated_user TEXT,
                assumed_role TEXT,
                authenticated_roles TEXT,
                parent_workflow_id TEXT
            )
            """,
            # Recovery looks up "PENDING work of this executor and version".
            """
            CREATE INDEX workflows_status_executor
                ON workflows (status, executor_id, application_version)
            """,
            "CREATE INDEX workflows_created_at ON workflows (created_at, workflow_id)",
            # Released (set to NULL) when the workflow finishes, which frees the ID.
            """
            CREATE UNIQUE INDEX workflows_deduplication
                ON workflows (queue_name, deduplication_id)
                WHERE deduplication_id IS NOT NULL
            """,
            """
            CREATE TABLE steps (
                workflow_id TEXT NOT NULL,
                step_id INTEGER NOT NULL,
                name TEXT NOT NULL,
                output TEXT,
                error TEXT,
                child_workflow_id TEXT,
                started_at INTEGER,
                completed_at INTEGER,
                PRIMARY KEY (workflow_id, step_id)
            )
            """,
            # AUTOINCREMENT: ids never go backwards, even after the newest row is consumed,
            # so ``ORDER BY id`` is arrival order. A NULL topic is the default topic and is
            # matched with ``IS``; a sentinel string would collide with a real topic.
            """
            CREATE TABLE messages (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                destination_id TEXT NOT NULL,
                topic TEXT,
                payload TEXT NOT NULL,
                created_at INTEGER NOT NULL
            )
            """,
            "CREATE INDEX messages_destination ON messages (destination_id, topic, id)",
            """
            CREATE TABLE events (
                workflow_id TEXT NOT NULL,
                key TEXT NOT NULL,
                value TEXT NOT NULL,
                updated_at INTEGER NOT NULL,
                PRIMARY KEY (workflow_id, key)
            )
            """,
        ),
    ),
    (
        2,
        (
            # Queues: a partition key, and the time before which a delayed enqueue waits.
            "ALTER TABLE workflows ADD COLUMN queue_partition_key TEXT",
            "ALTER TABLE workflows ADD COLUMN visible_at INTEGER",
            # A claim reads the queue's ENQUEUED rows in queue order and its PENDING ones;
            # the rate limit counts its recent starts.
            """
            CREATE INDEX workflows_queue_order
                ON workflows (queue_name, status, priority, created_at, workflow_id)
                WHERE queue_name IS NOT NULL
            """,
            """
            CREATE INDEX workflows_queue_starts ON workflows (queue_name, started_at)
                WHERE queue_name IS NOT NULL
            """,
            # One row per queue that was ever paused or resumed.
            """
            CREATE TABLE queues (
                name TEXT PRIMARY KEY NOT NULL,
                paused INTEGER NOT NULL DEFAULT 0
            )
            """,
        ),
    ),
    (
        3,
        (
            # The admin API's and dashboard's lists: filtered by status or by name,
            # ordered by creation time, one page at a time.
            """
            CREATE INDEX workflows_status_created_at
                ON workflows (status, created_at, workflow_id)
            """,
            """
            CREATE INDEX workflows_name_created_at
                ON workflows (name, created_at, workflow_id)
            """,
        ),
    ),
    (
        4,
        # Tracing: the trace context of the workflow's starter (NULL without tracing).
        ("ALTER TABLE workflows ADD COLUMN trace_context TEXT",),
    ),
)

LATEST_VERSION: Final = MIGRATIONS[-1][0]


def _version(db: Database) -> int:
    version: int = db.execute("PRAGMA user_version").fetchone()[0]
    return version


def _refuse_newer(version: int, where: str) -> None:
    if version > LATEST_VERSION:
        raise InitializationError(
            f"SQLite database {where} has durakit schema version {version}, but this "
            f"durakit supports versions up to {LATEST_VERSION}: upgrade durakit"
        )


def migrate(db: Database, where: str) -> None:
    """Apply the pending migrations to ``db`` (a connection in autocommit mode)."""
    version = _version(db)
    _refuse_newer(version, where)
    if version == LATEST_VERSION:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        # Re-read under the write lock: another process may have migrated meanwhile.
        version = _version(db)
        _refuse_newer(version, where)
        for number, statements in MIGRATIONS:
            if number > version:
                for sql in statements:
                    db.execute(sql)
                # PRAGMA takes no parameters; ``number`` is an int from the table above.
                db.execute(f"PRAGMA user_version = {int(number)}")
        db.execute("COMMIT")
    except BaseException:
        db.rollback()
        raise


def check_writable(db: Database) -> None:
    """Write the schema version back, unchanged: raises if the file cannot be written.

    Under the write lock, so that a newer version another process just wrote is what
    is written back.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute(f"PRAGMA user_version = {int(_version(db))}")
        db.execute("COMMIT")
    except BaseException:
        db.rollback()
        raise
