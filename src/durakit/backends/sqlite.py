"""``SQLiteStore``: the embedded default store, one SQLite file shared by threads and processes.

Every write method is exactly one ``BEGIN IMMEDIATE`` transaction and every read method
one statement (see :mod:`durakit.backends.sqlite_pool` for connections, locking and
durability, :mod:`durakit.backends.sqlite_schema` for the tables).

Fenced writes are written as one guarded statement (``... WHERE EXISTS (fence)``); only
when it changed nothing does the method read the row to say why, inside the same
transaction, so the explanation matches what the guard saw.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Sequence
from typing import Any, Final

import attrs
from sqlite_utils import Database

from durakit.backends import sqlite_schema
from durakit.backends.claims import candidate_from, claim_of, decide, loads_from
from durakit.backends.health import StoreHealth
from durakit.backends.sqlite_errors import SQLiteFileError
from durakit.backends.sqlite_pool import ConnectionPool
from durakit.backends.updates import update_params
from durakit.core import rows
from durakit.core.admission import QueuePolicy, claim_limit, full_partitions
from durakit.core.errors import InitializationError, QueueDeduplicatedError
from durakit.core.records import (
    Claim,
    Fence,
    InsertResult,
    NewWorkflow,
    StepRecord,
    VersionMove,
    WorkflowQuery,
    WorkflowRecord,
    WriteResult,
)
from durakit.core.retention import ACTIVE
from durakit.core.rows import fence_verdict
from durakit.core.status import FINISHED, StatusType
from durakit.core.transitions import WorkflowUpdate, check_finish

_WF_COLUMNS: Final = (
    "workflow_id", "name", "status", "input", "output", "error", "executor_id",
    "application_version", "application_id", "owner", "created_at", "updated_at",
    "attempts", "queue_name", "deduplication_id", "priority", "timeout_ms", "deadline_ms",
    "started_at", "queue_partition_key", "visible_at", "authenticated_user", "assumed_role",
    "authenticated_roles", "parent_workflow_id", "trace_context",
)  # fmt: skip
_WF_SELECT: Final = ", ".join(_WF_COLUMNS)
_NEW_COLUMNS: Final = tuple(c for c in _WF_COLUMNS if c not in ("output", "error"))
_INSERT_WORKFLOW: Final = (
    f"INSERT INTO workflows ({', '.join(_NEW_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(_NEW_COLUMNS))}) ON CONFLICT (workflow_id) DO NOTHING"
)
_STEP_COLUMNS: Final = (
    "step_id", "name", "output", "error", "child_workflow_id", "started_at", "completed_at",
)  # fmt: skip
_STEP_SELECT: Final = ", ".join(_STEP_COLUMNS)
# The fence as a predicate: parameters are (workflow_id, owner).
_FENCE: Final = (
    "EXISTS (SELECT 1 FROM workflows WHERE workflow_id = ? AND status = 'PENDING' AND owner = ?)"
)
_INSERT_STEP_FENCED: Final = (
    f"INSERT INTO steps (workflow_id, {_STEP_SELECT}) SELECT ?, ?, ?, ?, ?, ?, ?, ? "
    f"WHERE {_FENCE} ON CONFLICT (workflow_id, step_id) DO NOTHING"
)
_INSERT_STEP: Final = (
    f"INSERT INTO steps (workflow_id, {_STEP_SELECT}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (workflow_id, step_id) DO NOTHING"
)


def _roles_to_db(roles: tuple[str, ...] | None) -> str | None:
    return None if roles is None else json.dumps(list(roles))


def _record(row: Sequence[Any]) -> WorkflowRecord:
    fields = dict(zip(_WF_COLUMNS, row, strict=True))
    fields["status"] = StatusType(fields["status"])
    roles = fields["authenticated_roles"]
    fields["authenticated_roles"] = None if roles is None else tuple(json.loads(roles))
    return WorkflowRecord(**fields)


def _step(row: Sequence[Any]) -> StepRecord:
    return StepRecord(**dict(zip(_STEP_COLUMNS, row, strict=True)))


def _step_params(workflow_id: str, step: StepRecord) -> tuple[object, ...]:
    return (
        workflow_id,
        step.step_id,
        step.name,
        step.output,
        step.error,
        step.child_workflow_id,
        step.started_at,
        step.completed_at,
    )


# A core-planned transition, applied as one compare-and-swap (the parameters are
# durakit.backends.updates.update_params). Every SET expression reads the row's old values.
_APPLY_UPDATE: Final = f"""
    UPDATE workflows SET
        status = :to,
        updated_at = :now,
        owner = coalesce(:owner, owner),
        executor_id = coalesce(:executor, executor_id),
        attempts = CASE :attempts WHEN 'INCREMENT' THEN attempts + 1
                                  WHEN 'RESET' THEN 1 ELSE attempts END,
        started_at = CASE WHEN :restart_clock THEN :now ELSE started_at END,
        deadline_ms = CASE WHEN :restart_clock AND timeout_ms IS NOT NULL
                           THEN :now + timeout_ms ELSE deadline_ms END,
        deduplication_id = CASE WHEN :release THEN NULL ELSE deduplication_id END,
        output = CASE WHEN :sets_outcome THEN :output ELSE output END,
        error = CASE WHEN :sets_outcome THEN :error ELSE error END
    WHERE workflow_id = :id
      AND status IN (SELECT value FROM json_each(:from_statuses))
      AND (:fence_owner IS NULL OR owner = :fence_owner)
    RETURNING {_WF_SELECT}"""


# Garbage collection: core.retention.collectable in SQL (finished, older than the cutoff,
# not among the ``keep`` newest finished, not the child of an active parent), oldest first.
_COLLECTABLE: Final = """
    SELECT w.workflow_id FROM workflows AS w
    WHERE w.status IN (SELECT value FROM json_each(:finished))
      AND w.updated_at < :cutoff
      AND w.workflow_id NOT IN (
          SELECT workflow_id FROM workflows
          WHERE status IN (SELECT value FROM json_each(:finished))
          ORDER BY updated_at DESC, workflow_id DESC
          LIMIT :keep)
      AND NOT EXISTS (
          SELECT 1 FROM workflows AS p
          WHERE p.workflow_id = w.parent_workflow_id
            AND p.status IN (SELECT value FROM json_each(:active)))
    ORDER BY w.updated_at, w.workflow_id
    LIMIT :limit"""

_SET_VERSION: Final = """
    UPDATE workflows SET application_version = :to, updated_at = :now
    WHERE status IN (SELECT value FROM json_each(:active))
      AND (:app IS NULL OR application_id = :app)
      AND (:ids IS NULL OR workflow_id IN (SELECT value FROM json_each(:ids)))
      AND (:from_version IS NULL OR application_version = :from_version)
    RETURNING workflow_id"""

_DELETE_COLLECTED: Final = tuple(
    f"DELETE FROM {table} WHERE {column} IN (SELECT value FROM json_each(?))"
    for table, column in (
        ("steps", "workflow_id"),
        ("messages", "destination_id"),
        ("events", "workflow_id"),
        ("workflows", "workflow_id"),
    )
)


def _sqlite_params(workflow_id: str, update: WorkflowUpdate) -> dict[str, object]:
    params = update_params(workflow_id, update)
    params["from_statuses"] = json.dumps(params["from_statuses"])  # read by json_each
    return params


def _fence_verdict(db: Database, fence: Fence, *, while_cancelled: bool = False) -> WriteResult:
    """Why a fenced write refused (or that it may write); call inside the write
    transaction, whose lock keeps the answer true until it commits."""
    row = db.execute(
        "SELECT status, owner FROM workflows WHERE workflow_id = ?", (fence.workflow_id,)
    ).fetchone()
    if row is None:
        return fence_verdict(None, None, fence.owner)
    return fence_verdict(StatusType(row[0]), row[1], fence.owner, while_cancelled=while_cancelled)


def _insert_step_fenced(
    db: Database, fence: Fence, step: StepRecord, *, while_cancelled: bool = False
) -> WriteResult:
    params = (*_step_params(fence.workflow_id, step), fence.workflow_id, fence.owner)
    if db.execute(_INSERT_STEP_FENCED, params).rowcount == 1:
        return WriteResult.OK  # the hot path: PENDING and ours, in one statement
    verdict = _fence_verdict(db, fence, while_cancelled=while_cancelled)
    if verdict is WriteResult.RECORDED_WHILE_CANCELLED:
        # Cancelled during this execution's step: keep the step's outcome. The verdict
        # was read in this same write transaction, so it still holds for the insert.
        if db.execute(_INSERT_STEP, _step_params(fence.workflow_id, step)).rowcount == 1:
            return verdict
        return WriteResult.DUPLICATE
    return WriteResult.DUPLICATE if verdict is WriteResult.OK else verdict


class SQLiteStore:
    """The :class:`~durakit.backends.protocol.SystemStore` on one SQLite file.

    Safe for many threads of one process and many processes on one file (not on a
    network file system, where SQLite's locks are unreliable). Call :meth:`migrate`
    before first use.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = os.fspath(path)
        if self._path in ("", ":memory:"):
            raise InitializationError(
                "SQLiteStore needs a file (each thread has its own connection, and an "
                "in-memory SQLite database is private to one); use MemoryStore instead"
            )
        self._health = StoreHealth(f"SQLite file {self._path}")
        self._pool = ConnectionPool(self._path, self._health)
        self._connection = self._pool.connection
        self._write = self._pool.write

    def __repr__(self) -> str:
        return f"SQLiteStore({self._path!r})"

    @property
    def health(self) -> StoreHealth:
        """Whether the file can be used; outages are logged here once, not per call."""
        return self._health

    # -- lifecycle -------------------------------------------------------------
    def migrate(self) -> None:
        """Create or upgrade the schema (see :mod:`durakit.backends.sqlite_schema`).

        Raises :class:`InitializationError` if a newer durakit migrated the file, or if
        the file cannot be used (its directory does not exist, it is read-only, it is
        not an SQLite database or is corrupt), naming the path and the reason.
        """
        try:
            with self._connection() as db:
                sqlite_schema.migrate(db, self._path)
                # Proves the file writable now, not at a workflow's first checkpoint.
                sqlite_schema.check_writable(db)
        except SQLiteFileError as exc:
            raise InitializationError(str(exc)) from exc

    def close(self) -> None:
        """Close every thread's connection, waiting for calls in flight to finish."""
        self._pool.close()

    # -- workflows -------------------------------------------------------------
    def insert_workflow(self, new: NewWorkflow) -> InsertResult:
        """Create the row unless the ID exists (see the protocol).

        Raises :class:`QueueDeduplicatedError` if another workflow holds the same
        (queue_name, deduplication_id); nothing is written then.
        """
        rec = rows.created(new)
        values = attrs.asdict(rec, recurse=False)
        values["status"] = rec.status.value
        values["authenticated_roles"] = _roles_to_db(rec.authenticated_roles)
        params = tuple(values[c] for c in _NEW_COLUMNS)
        with self._write() as db:
            try:
                created = db.execute(_INSERT_WORKFLOW, params).rowcount == 1
            except sqlite3.IntegrityError as exc:
                if "deduplication_id" not in str(exc):
                    raise
                raise QueueDeduplicatedError(
                    f"workflow {new.workflow_id!r} not created: deduplication ID "
                    f"{new.deduplication_id!r} is in use on queue {new.queue_name!r}",
                    workflow_id=new.workflow_id,
                    queue_name=new.queue_name,
                    deduplication_id=new.deduplication_id,
                ) from exc
            if created:
                return InsertResult(created=True, record=rec)
            row = db.execute(
                f"SELECT {_WF_SELECT} FROM workflows WHERE workflow_id = ?", (new.workflow_id,)
            ).fetchone()
        return InsertResult(created=False, record=_record(row))

    def get_workflow(self, workflow_id: str) -> WorkflowRecord | None:
        """The row with that ID, or None."""
        with self._connection() as db:
            row = db.execute(
                f"SELECT {_WF_SELECT} FROM workflows WHERE workflow_id = ?", (workflow_id,)
            ).fetchone()
        return None if row is None else _record(row)

    def list_workflows(self, query: WorkflowQuery) -> list[WorkflowRecord]:
        """Rows matching every filter of ``query`` (the reference semantics of ``matches``)."""
        where: list[str] = []
        params: list[object] = []

        def one_of(column: str, values: Sequence[str]) -> None:
            where.append(f"{column} IN ({', '.join('?' * len(values))})")
            params.extend(values)

        def equals(column: str, value: object) -> None:
            where.append(f"{column} = ?")
            params.append(value)

        q = query
        if q.workflow_ids is not None:
            one_of("workflow_id", q.workflow_ids)
        if q.statuses is not None:
            one_of("status", [s.value for s in q.statuses])
        if q.name is not None:
            equals("name", q.name)
        if q.user is not None:
            equals("authenticated_user", q.user)
        if q.app_version is not None:
            equals("application_version", q.app_version)
        if q.application_id is not None:
            equals("application_id", q.application_id)
        if q.executor_ids is not None:
            one_of("executor_id", q.executor_ids)
        if q.workflow_id_prefix is not None:
            # Not LIKE: it is case-insensitive and treats % and _ as wildcards. The lower
            # bound lets the primary key index narrow the scan.
            where.append("workflow_id >= ? AND substr(workflow_id, 1, ?) = ?")
            prefix = q.workflow_id_prefix
            params.extend((prefix, len(prefix), prefix))
        if q.queue_name is not None:
            equals("queue_name", q.queue_name)
        if q.queues_only:
            where.append("queue_name IS NOT NULL")
        if q.start_time is not None:
            where.append("created_at >= ?")
            params.append(q.start_time)
        if q.end_time is not None:
            where.append("created_at <= ?")
            params.append(q.end_time)
        blank: set[str] = set()
        if not q.load_input:
            blank.add("input")
        if not q.load_output:
            blank.update(("output", "error"))
        columns = ", ".join("NULL" if c in blank else c for c in _WF_COLUMNS)
        order = "DESC" if q.sort_desc else "ASC"
        sql = (
            f"SELECT {columns} FROM workflows WHERE {' AND '.join(where) or 'TRUE'} "
            f"ORDER BY created_at {order}, workflow_id {order} LIMIT ? OFFSET ?"
        )
        params.extend((-1 if q.limit is None else q.limit, q.offset or 0))
        with self._connection() as db:
            rows = db.execute(sql, params).fetchall()
        return [_record(r) for r in rows]

    def finish_workflow(self, fence: Fence, update: WorkflowUpdate) -> WriteResult:
        """Record the final outcome, fenced (see the protocol)."""
        check_finish(fence, update)
        params = _sqlite_params(fence.workflow_id, update)
        with self._write() as db:
            row = db.execute(_APPLY_UPDATE, params).fetchone()
            return WriteResult.OK if row is not None else _fence_verdict(db, fence)

    def transition_workflow(
        self, workflow_id: str, update: WorkflowUpdate
    ) -> WorkflowRecord | None:
        """Compare-and-swap the status (see the protocol); the updated row or None."""
        with self._write() as db:
            row = db.execute(_APPLY_UPDATE, _sqlite_params(workflow_id, update)).fetchone()
        return None if row is None else _record(row)

    def set_version(self, selection: VersionMove) -> list[str]:
        """Move the selected active workflows to another version (see the protocol)."""
        ids = None if selection.workflow_ids is None else json.dumps(selection.workflow_ids)
        params = {
            "to": selection.to_version,
            "now": selection.now_ms,
            "active": json.dumps(sorted(st.value for st in ACTIVE)),
            "app": selection.application_id,
            "ids": ids,
            "from_version": selection.from_version,
        }
        with self._write() as db:
            rows = db.execute(_SET_VERSION, params).fetchall()
        return sorted(row[0] for row in rows)

    def delete_finished(self, cutoff_ms: int, keep: int | None, limit: int) -> int:
        """Delete one batch of collectable workflows (see the protocol)."""
        params = {
            "finished": json.dumps(sorted(st.value for st in FINISHED)),
            "active": json.dumps(sorted(st.value for st in ACTIVE)),
            "cutoff": cutoff_ms,
            "keep": keep or 0,
            "limit": limit,
        }
        with self._write() as db:
            ids = [row[0] for row in db.execute(_COLLECTABLE, params).fetchall()]
            if ids:
                doomed = json.dumps(ids)
                for statement in _DELETE_COLLECTED:
                    db.execute(statement, (doomed,))
        return len(ids)

    # -- steps -----------------------------------------------------------------
    def load_steps(self, workflow_id: str) -> list[StepRecord]:
        """Every recorded step of the workflow, by ``step_id`` ascending."""
        with self._connection() as db:
            rows = db.execute(
                f"SELECT {_STEP_SELECT} FROM steps WHERE workflow_id = ? ORDER BY step_id",
                (workflow_id,),
            ).fetchall()
        return [_step(r) for r in rows]

    def record_step(
        self, fence: Fence, step: StepRecord, *, while_cancelled: bool = False
    ) -> WriteResult:
        """Insert the checkpoint, fenced (see the protocol for ``while_cancelled``);
        DUPLICATE if the step ID is taken."""
        with self._write() as db:
            return _insert_step_fenced(db, fence, step, while_cancelled=while_cancelled)

    def copy_steps(self, source_id: str, target_id: str, below_step: int) -> int:
        """Copy the source's steps below ``below_step`` to the target, keeping existing ones."""
        with self._write() as db:
            copied: int = db.execute(
                f"INSERT INTO steps (workflow_id, {_STEP_SELECT}) "
                f"SELECT ?, {_STEP_SELECT} FROM steps WHERE workflow_id = ? AND step_id < ? "
                "ON CONFLICT (workflow_id, step_id) DO NOTHING",
                (target_id, source_id, below_step),
            ).rowcount
        return copied

    # -- messages and events ---------------------------------------------------
    def send_message(
        self,
        destination_id: str,
        topic: str | None,
        payload: str,
        now_ms: int,
        *,
        sender: Fence | None = None,
        sender_step: StepRecord | None = None,
    ) -> WriteResult:
        """Append a message; with a sender, record its step in the same transaction."""
        with self._write() as db:
            exists = db.execute(
                "SELECT 1 FROM workflows WHERE workflow_id = ?", (destination_id,)
            ).fetchone()
            if exists is None:
                return WriteResult.NOT_PENDING
            if sender is not None and sender_step is not None:
                verdict = _insert_step_fenced(db, sender, sender_step)
                if verdict is not WriteResult.OK:
                    return verdict
            db.execute(
                "INSERT INTO messages (destination_id, topic, payload, created_at) "
                "VALUES (?, ?, ?, ?)",
                (destination_id, topic, payload, now_ms),
            )
            return WriteResult.OK

    def receive_message(
        self, fence: Fence, step_id: int, step_name: str, topic: str | None, now_ms: int
    ) -> tuple[WriteResult, str | None]:
        """Consume the oldest message on ``topic`` and record it as step ``step_id``."""
        wf = fence.workflow_id
        with self._write() as db:
            row = db.execute(
                "DELETE FROM messages WHERE id = ("
                "  SELECT id FROM messages WHERE destination_id = ? AND topic IS ?"
                f"  AND {_FENCE} AND NOT EXISTS ("
                "    SELECT 1 FROM steps WHERE workflow_id = ? AND step_id = ?)"
                "  ORDER BY id LIMIT 1"
                ") RETURNING payload",
                (wf, topic, wf, fence.owner, wf, step_id),
            ).fetchone()
            if row is not None:
                payload: str = row[0]
                step = StepRecord(
                    step_id=step_id,
                    name=step_name,
                    output=payload,
                    started_at=now_ms,
                    completed_at=now_ms,
                )
                db.execute(
                    f"INSERT INTO steps (workflow_id, {_STEP_SELECT}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    _step_params(wf, step),
                )
                return WriteResult.OK, payload
            verdict = _fence_verdict(db, fence)
            if verdict is not WriteResult.OK:
                return verdict, None
            waiting = db.execute(
                "SELECT 1 FROM messages WHERE destination_id = ? AND topic IS ? LIMIT 1",
                (wf, topic),
            ).fetchone()
            # A message waits, so the guard failed on the step: it is already recorded.
            return (WriteResult.OK if waiting is None else WriteResult.DUPLICATE), None

    def set_event(
        self, fence: Fence, step: StepRecord, key: str, value: str, now_ms: int
    ) -> WriteResult:
        """Upsert the event (latest wins) and record ``step``, in one fenced transaction."""
        with self._write() as db:
            verdict = _insert_step_fenced(db, fence, step)
            if verdict is WriteResult.OK:
                db.execute(
                    "INSERT INTO events (workflow_id, key, value, updated_at) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (workflow_id, key) "
                    "DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                    (fence.workflow_id, key, value, now_ms),
                )
            return verdict

    def get_event(self, workflow_id: str, key: str) -> str | None:
        """The latest value of the event, or None if it was never set."""
        with self._connection() as db:
            row = db.execute(
                "SELECT value FROM events WHERE workflow_id = ? AND key = ?", (workflow_id, key)
            ).fetchone()
        return None if row is None else str(row[0])

    # -- queues ----------------------------------------------------------------
    def claim_queued(
        self,
        policy: QueuePolicy,
        *,
        executor_id: str,
        application_version: str,
        owner: str,
        now_ms: int,
    ) -> Claim:
        """Claim what admission allows; BEGIN IMMEDIATE serializes every claim (and every
        other write) of every process on the file, so the budget is read and spent at once."""
        q = policy.name
        with self._write() as db:
            paused = db.execute("SELECT paused FROM queues WHERE name = ?", (q,)).fetchone()
            if paused is not None and paused[0]:
                return Claim()
            part = "queue_partition_key" if policy.partitioned else "NULL"
            running = db.execute(
                f"SELECT {part}, sum(executor_id = ?), count(*) FROM workflows "
                "WHERE queue_name = ? AND status = 'PENDING' GROUP BY 1",
                (executor_id, q),
            ).fetchall()
            recent: list[Any] = []
            if policy.rate_limit is not None:
                recent = db.execute(
                    f"SELECT {part}, count(*), min(started_at) FROM workflows "
                    "WHERE queue_name = ? AND started_at > ? GROUP BY 1",
                    (q, now_ms - policy.rate_limit.period_ms),
                ).fetchall()
            loads = loads_from(running, recent)
            limit = claim_limit(policy, loads)
            full = full_partitions(policy, loads)
            order = "priority, " if policy.priority_enabled else ""
            rows = db.execute(
                "SELECT workflow_id, created_at, priority, queue_partition_key, visible_at "
                "FROM workflows WHERE queue_name = ? AND status = 'ENQUEUED' "
                "AND application_version IN (?, '') AND (visible_at IS NULL OR visible_at <= ?) "
                f"AND coalesce(queue_partition_key, '') NOT IN ({', '.join('?' * len(full))}) "
                f"ORDER BY {order}created_at, workflow_id LIMIT ?",
                (q, application_version, now_ms, *full, limit),
            ).fetchall()
            later = db.execute(
                "SELECT min(visible_at) FROM workflows WHERE queue_name = ? "
                "AND status = 'ENQUEUED' AND visible_at > ?",
                (q, now_ms),
            ).fetchone()[0]
            admitted, wake = decide(policy, loads, [candidate_from(r) for r in rows], now_ms, later)
            claimed = []
            for candidate in admitted:
                row = db.execute(
                    "UPDATE workflows SET status = 'PENDING', owner = ?, executor_id = ?, "
                    "application_version = ?, "
                    "updated_at = ?, started_at = ?, deadline_ms = CASE WHEN timeout_ms "
                    "IS NOT NULL THEN ? + timeout_ms ELSE deadline_ms END "
                    f"WHERE workflow_id = ? AND status = 'ENQUEUED' RETURNING {_WF_SELECT}",
                    (
                        owner,
                        executor_id,
                        application_version,
                        now_ms,
                        now_ms,
                        now_ms,
                        candidate.workflow_id,
                    ),
                ).fetchone()
                if row is not None:
                    claimed.append(_record(row))
        return claim_of(claimed, wake)

    def queues_with_work(self, names: Sequence[str], application_version: str) -> set[str]:
        """Those of ``names`` with an ENQUEUED workflow of that version."""
        if not names:
            return set()
        with self._connection() as db:
            rows = db.execute(
                "SELECT DISTINCT queue_name FROM workflows WHERE status = 'ENQUEUED' "
                f"AND queue_name IN ({', '.join('?' * len(names))}) "
                "AND application_version IN (?, '')",
                (*names, application_version),
            ).fetchall()
        return {str(r[0]) for r in rows}

    def set_queue_paused(self, name: str, paused: bool) -> None:
        """Pause or resume the queue for every process on the file."""
        with self._write() as db:
            db.execute(
                "INSERT INTO queues (name, paused) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET paused = excluded.paused",
                (name, int(paused)),
            )
