"""The Postgres store's schema: DDL, versioned migrations, and names derived from the schema.

Every table lives in the store's own schema (``durakit`` unless configured). The schema
records its version in a one-row table; :func:`migrate_schema` upgrades it step by step
inside one transaction that holds a transaction-scoped advisory lock, so any number of
processes can call it at once: the first one migrates, the others wait on the lock and
then find nothing to do. A database migrated by a newer durakit is refused, because
this code cannot know what the newer version changed.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

import psycopg
from psycopg import sql

from durakit.core.errors import InitializationError

SCHEMA_VERSION: Final = 4
"""The schema version this durakit writes and understands."""

DEDUP_INDEX: Final = "workflows_dedup_idx"
"""The unique index whose violation means "deduplication ID in use on that queue"."""

_NAMEDATALEN: Final = 63  # Postgres truncates identifiers (and refuses channels) past 63 bytes

# Each migration is a list of statements; ``{s}`` is replaced by the quoted schema name.
# Migration n takes a database from version n - 1 to version n. Never edit a shipped
# migration: add a new one, because databases in the field already ran the old text.
_MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        # Timestamps are epoch milliseconds (bigint) passed in by the engine, never now().
        """
        CREATE TABLE {s}.workflows (
            workflow_id text PRIMARY KEY,
            name text NOT NULL,
            status text NOT NULL CHECK (status IN ('PENDING', 'ENQUEUED', 'SUCCESS',
                'ERROR', 'CANCELLED', 'MAX_RECOVERY_ATTEMPTS_EXCEEDED')),
            input text,
            output text,
            error text,
            executor_id text NOT NULL,
            application_version text NOT NULL,
            application_id text,
            owner text,
            created_at bigint NOT NULL,
            updated_at bigint NOT NULL,
            attempts bigint NOT NULL,
            queue_name text,
            deduplication_id text,
            priority bigint NOT NULL,
            timeout_ms bigint,
            deadline_ms bigint,
            started_at bigint,
            authenticated_user text,
            assumed_role text,
            authenticated_roles text[],
            parent_workflow_id text
        )
        """,
        # list_workflows orders by (created_at, workflow_id) in code-point order, which is
        # what the reference store does; the "C" collation gives exactly that.
        'CREATE INDEX workflows_created_idx ON {s}.workflows (created_at, workflow_id COLLATE "C")',
        # One live workflow per (queue, deduplication ID); finishing clears the ID.
        f"""
        CREATE UNIQUE INDEX {DEDUP_INDEX} ON {{s}}.workflows (queue_name, deduplication_id)
            WHERE deduplication_id IS NOT NULL
        """,
        # Recovery and dequeue look for live work only; finished rows leave this index.
        """
        CREATE INDEX workflows_live_idx ON {s}.workflows (status, executor_id)
            WHERE status IN ('PENDING', 'ENQUEUED')
        """,
        # No foreign key to workflows: its check would lock the workflow row on every
        # checkpoint a second time, and copy_steps may copy to a row not created yet.
        """
        CREATE TABLE {s}.steps (
            workflow_id text NOT NULL,
            step_id bigint NOT NULL,
            name text NOT NULL,
            output text,
            error text,
            child_workflow_id text,
            started_at bigint,
            completed_at bigint,
            PRIMARY KEY (workflow_id, step_id)
        )
        """,
        # send_key makes a send outside a workflow idempotent when it is retried after a
        # connection loss that hid whether the first attempt committed.
        """
        CREATE TABLE {s}.messages (
            message_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            send_key uuid NOT NULL UNIQUE,
            destination_id text NOT NULL,
            topic text,
            payload text NOT NULL,
            created_at bigint NOT NULL
        )
        """,
        "CREATE INDEX messages_destination_idx ON {s}.messages (destination_id, topic, message_id)",
        """
        CREATE TABLE {s}.events (
            workflow_id text NOT NULL,
            key text NOT NULL,
            value text NOT NULL,
            updated_at bigint NOT NULL,
            PRIMARY KEY (workflow_id, key)
        )
        """,
    ),
    (
        # Queues: a partition key, and the time before which a delayed enqueue waits.
        "ALTER TABLE {s}.workflows ADD COLUMN queue_partition_key text",
        "ALTER TABLE {s}.workflows ADD COLUMN visible_at bigint",
        # A claim reads the queue's ENQUEUED rows in queue order (two orders: with and
        # without priorities), its PENDING ones, and (rate limits) its recent starts.
        # Each index covers queued rows only: every index a row is in costs a write on
        # each status change, and most workflows are not queued.
        """
        CREATE INDEX workflows_queue_fifo_idx
            ON {s}.workflows (queue_name, created_at, workflow_id COLLATE "C")
            WHERE status = 'ENQUEUED'
        """,
        """
        CREATE INDEX workflows_queue_priority_idx
            ON {s}.workflows (queue_name, priority, created_at, workflow_id COLLATE "C")
            WHERE status = 'ENQUEUED'
        """,
        """
        CREATE INDEX workflows_queue_running_idx ON {s}.workflows (queue_name, executor_id)
            WHERE status = 'PENDING' AND queue_name IS NOT NULL
        """,
        """
        CREATE INDEX workflows_queue_starts_idx ON {s}.workflows (queue_name, started_at)
            WHERE queue_name IS NOT NULL
        """,
        """
        CREATE INDEX workflows_queue_delayed_idx ON {s}.workflows (queue_name, visible_at)
            WHERE status = 'ENQUEUED' AND visible_at IS NOT NULL
        """,
        # One row per queue that was ever paused or resumed: its pause flag.
        """
        CREATE TABLE {s}.queues (
            name text PRIMARY KEY,
            paused boolean NOT NULL DEFAULT false
        )
        """,
    ),
    (
        # The admin API's and dashboard's lists: filtered by status or by name, ordered
        # by creation time (then ID, as list_workflows orders), one page at a time.
        """
        CREATE INDEX workflows_status_created_idx
            ON {s}.workflows (status, created_at, workflow_id COLLATE "C")
        """,
        """
        CREATE INDEX workflows_name_created_idx
            ON {s}.workflows (name, created_at, workflow_id COLLATE "C")
        """,
    ),
    (
        # Tracing: the trace context of the workflow's starter (NULL without tracing).
        "ALTER TABLE {s}.workflows ADD COLUMN trace_context text",
    ),
)
assert len(_MIGRATIONS) == SCHEMA_VERSION  # a new migration must bump SCHEMA_VERSION

_VERSION_TABLE: Final = """
CREATE TABLE IF NOT EXISTS {s}.schema_version (
    singleton boolean PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    version integer NOT NULL
)
"""


def validate_schema_name(schema: str) -> None:
    """Refuse schema names Postgres would truncate or cannot store."""
    size = len(schema.encode("utf-8", "surrogatepass"))
    if not schema or size > _NAMEDATALEN or "\x00" in schema:
        raise InitializationError(
            f"invalid Postgres schema name {schema!r}: it must be 1 to {_NAMEDATALEN} "
            "bytes of UTF-8 without NUL characters"
        )


def quote_ident(name: str) -> str:
    """``name`` as a quoted SQL identifier (safe for any text)."""
    return sql.Identifier(name).as_string()


def channel_name(schema: str) -> str:
    """The LISTEN/NOTIFY channel of a schema: one per schema, at most 63 bytes.

    Long names are replaced by a digest so that two schemas never share a channel.
    """
    name = f"durakit_{schema}"
    if len(name.encode()) <= _NAMEDATALEN:
        return name
    return "durakit_" + hashlib.sha256(schema.encode()).hexdigest()[:40]


def _lock_key(schema: str) -> int:
    # Advisory locks are database-wide, so the key is derived from the schema name:
    # stores on different schemas of one database migrate independently.
    digest = hashlib.blake2b(f"durakit.migrate:{schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def migrate_schema(conn: psycopg.Connection[Any], schema: str) -> None:
    """Create or upgrade ``schema`` to :data:`SCHEMA_VERSION` in one locked transaction.

    Raises :class:`InitializationError` (writing nothing) if the database was migrated
    by a newer durakit.
    """
    s = quote_ident(schema)
    with conn.transaction():
        # Taken first, before even CREATE SCHEMA: concurrent CREATE SCHEMA IF NOT EXISTS
        # can still fail on the catalog's unique index, so everything is serialized.
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(schema),))
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")
        conn.execute(_VERSION_TABLE.format(s=s))
        row = conn.execute(f"SELECT version FROM {s}.schema_version").fetchone()
        current = 0 if row is None else int(row[0])
        if current > SCHEMA_VERSION:
            raise InitializationError(
                f"the durakit schema {schema!r} is at version {current}, written by a newer "
                f"durakit; this durakit supports schema versions up to {SCHEMA_VERSION}. "
                "Upgrade durakit, or use another schema."
            )
        for statements in _MIGRATIONS[current:]:
            for statement in statements:
                conn.execute(statement.format(s=s))
        if current != SCHEMA_VERSION:
            conn.execute(
                f"INSERT INTO {s}.schema_version (version) VALUES (%(v)s) "
                "ON CONFLICT (singleton) DO UPDATE SET version = EXCLUDED.version",
                {"v": SCHEMA_VERSION},
            )
