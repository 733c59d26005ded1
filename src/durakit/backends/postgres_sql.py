"""The Postgres store's SQL, rendered once per schema, and row <-> record conversion.

Every write that the protocol calls atomic is ONE statement here (data-modifying CTEs
where several tables change), run on an autocommit connection: a single statement in
autocommit is its own transaction, so each costs one round trip and no COMMIT message.

Fencing and the takeover race
-----------------------------
A fenced write selects the workflow row ``WHERE owner = <token> AND status = 'PENDING'``
with ``FOR SHARE``. Every status or owner change is an ``UPDATE`` of that row, which takes
a ``FOR NO KEY UPDATE`` row lock (or stronger); the two conflict, so a checkpoint and a
takeover (or a cancel, or a finish) serialize on the row:

- the checkpoint locks first: the UPDATE waits until the checkpoint has committed, so the
  checkpoint is durable before the takeover returns;
- the UPDATE locks first: the checkpoint waits, and when the UPDATE commits Postgres
  re-evaluates the WHERE clause on the new row version (READ COMMITTED's recheck), finds
  another owner (or CANCELLED), and inserts nothing.

Without the lock, a checkpoint whose snapshot predates the takeover would still see the
old owner and could commit after the takeover returned. ``FOR KEY SHARE`` would not do:
it does not conflict with an UPDATE that leaves the key alone. Concurrent checkpoints of
one workflow (parallel steps) take compatible share locks and do not wait on each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import attrs

from durakit.backends.postgres_pool import Conn
from durakit.core import rows
from durakit.core.records import Fence, StepRecord, WorkflowQuery, WorkflowRecord, WriteResult
from durakit.core.status import StatusType

WF_FIELDS: Final = tuple(a.name for a in attrs.fields(WorkflowRecord))
"""Workflow columns, in record field order (table columns carry the field names)."""

STEP_FIELDS: Final = tuple(a.name for a in attrs.fields(StepRecord))
"""Step columns other than ``workflow_id``, in record field order."""

_WF_COLS: Final = ", ".join(WF_FIELDS)
_STEP_COLS: Final = ", ".join(STEP_FIELDS)

Params = dict[str, Any]


def workflow_from_row(row: Sequence[Any]) -> WorkflowRecord:
    """Build a record from a row selected with the columns of :data:`WF_FIELDS`."""
    values = dict(zip(WF_FIELDS, row, strict=True))
    values["status"] = StatusType(values["status"])
    roles = values["authenticated_roles"]
    if roles is not None:
        values["authenticated_roles"] = tuple(roles)
    return WorkflowRecord(**values)


def workflow_params(rec: WorkflowRecord) -> Params:
    """Query parameters named after the columns, for inserting ``rec``."""
    params = attrs.asdict(rec, recurse=False)
    params["status"] = rec.status.value
    if rec.authenticated_roles is not None:
        params["authenticated_roles"] = list(rec.authenticated_roles)
    return params


def step_from_row(row: Sequence[Any]) -> StepRecord:
    """Build a step from a row selected with the columns of :data:`STEP_FIELDS`."""
    return StepRecord(**dict(zip(STEP_FIELDS, row, strict=True)))


def step_params(workflow_id: str, owner: str, step: StepRecord) -> Params:
    """Parameters of the fenced step insert: the step's fields plus the fence."""
    params = attrs.asdict(step, recurse=False)
    params["wf"] = workflow_id
    params["owner"] = owner
    return params


def _fenced_step_insert(s: str, returning: str, also: str = "", status: str = "PENDING") -> str:
    # The one place a checkpoint is written; see the module docstring for FOR SHARE.
    # Parameters are cast because in INSERT ... SELECT an untyped NULL would be text.
    # ``status`` is a constant of this module, never user input.
    return f"""
        INSERT INTO {s}.steps (workflow_id, {_STEP_COLS})
        SELECT w.workflow_id, %(step_id)s::bigint, %(name)s::text, %(output)s::text,
               %(error)s::text, %(child_workflow_id)s::text, %(started_at)s::bigint,
               %(completed_at)s::bigint
        FROM {s}.workflows AS w
        WHERE w.workflow_id = %(wf)s AND w.owner = %(owner)s AND w.status = '{status}'{also}
        FOR SHARE OF w
        ON CONFLICT DO NOTHING
        RETURNING {returning}"""


class Statements:
    """Every statement of the store, with the schema and NOTIFY channel filled in."""

    def __init__(self, s: str, channel: str) -> None:
        """``s`` is the quoted schema name, ``channel`` the quoted channel literal."""
        w_cols = ", ".join(f"w.{c}" for c in WF_FIELDS)
        values = ", ".join(f"%({c})s" for c in WF_FIELDS)
        self.schema = s
        # A queued workflow that changes status gives its queue work or room: runners in
        # other processes hear it as ``q:<name>``.
        notify_queue = (
            f"CASE WHEN queue_name IS NOT NULL THEN pg_notify({channel}, 'q:' || queue_name) END"
        )

        # One round trip for a start: the insert, and the existing row if there was one.
        # The outer SELECT runs on the statement's snapshot, so it cannot see the row the
        # CTE inserts (w.* is NULL when created) -- nor a row that a concurrent start
        # committed after the snapshot, which is why the caller falls back to a SELECT
        # when neither branch produced a row.
        # A created ENQUEUED row also wakes its queue's runners in other processes
        # (the last column), in the same transaction.
        self.insert_workflow = f"""
            WITH ins AS (
                INSERT INTO {s}.workflows ({_WF_COLS}) VALUES ({values})
                ON CONFLICT (workflow_id) DO NOTHING
                RETURNING queue_name, status
            )
            SELECT (SELECT count(*) FROM ins), {w_cols},
                   (SELECT pg_notify({channel}, 'q:' || queue_name) FROM ins
                    WHERE queue_name IS NOT NULL AND status = 'ENQUEUED')
            FROM (SELECT 1) AS one
            LEFT JOIN {s}.workflows AS w ON w.workflow_id = %(workflow_id)s"""

        self.get_workflow = f"SELECT {_WF_COLS} FROM {s}.workflows WHERE workflow_id = %s"

        # A core-planned transition (finishing ones included), applied as one
        # compare-and-swap; parameters from durakit.backends.updates.update_params. SET
        # expressions read the row's old values. Notifies ``wf:<id>`` in the same commit.
        apply_update = f"""
            UPDATE {s}.workflows
            SET status = %(to)s::text,
                updated_at = %(now)s,
                owner = COALESCE(%(owner)s::text, owner),
                executor_id = COALESCE(%(executor)s::text, executor_id),
                attempts = CASE %(attempts)s::text WHEN 'INCREMENT' THEN attempts + 1
                                                   WHEN 'RESET' THEN 1 ELSE attempts END,
                started_at = CASE WHEN %(restart_clock)s THEN %(now)s ELSE started_at END,
                deadline_ms = CASE WHEN %(restart_clock)s AND timeout_ms IS NOT NULL
                                   THEN %(now)s + timeout_ms ELSE deadline_ms END,
                deduplication_id = CASE WHEN %(release)s THEN NULL ELSE deduplication_id END,
                output = CASE WHEN %(sets_outcome)s THEN %(output)s::text ELSE output END,
                error = CASE WHEN %(sets_outcome)s THEN %(error)s::text ELSE error END
            WHERE workflow_id = %(id)s
              AND status = ANY(%(from_statuses)s::text[])
              AND (%(fence_owner)s::text IS NULL OR owner = %(fence_owner)s::text)
            RETURNING"""
        self.apply_update = (
            f"{apply_update} {_WF_COLS}, pg_notify({channel}, 'wf:' || workflow_id), {notify_queue}"
        )
        # Finishing needs no row back: only whether it applied (an outcome can be large).
        self.finish_update = (
            f"{apply_update} 1, pg_notify({channel}, 'wf:' || workflow_id), {notify_queue}"
        )

        # Moving active work between versions (set_workflow_version).
        self.set_version = f"""
            UPDATE {s}.workflows SET application_version = %(to)s, updated_at = %(now)s
            WHERE status = ANY(%(active)s::text[])
              AND (%(app)s::text IS NULL OR application_id = %(app)s::text)
              AND (%(ids)s::text[] IS NULL OR workflow_id = ANY(%(ids)s::text[]))
              AND (%(from_version)s::text IS NULL OR application_version = %(from_version)s::text)
            RETURNING workflow_id"""

        # Garbage collection, one batch per statement: core.retention.collectable in SQL,
        # the doomed rows locked (SKIP LOCKED: a row another transaction is changing, a
        # resume for one, waits for the next batch), then deleted with their steps,
        # waiting messages and events.
        self.delete_finished = f"""
            WITH doomed AS (
                SELECT w.workflow_id FROM {s}.workflows AS w
                WHERE w.status = ANY(%(finished)s::text[])
                  AND w.updated_at < %(cutoff)s
                  AND w.workflow_id NOT IN (
                      SELECT workflow_id FROM {s}.workflows
                      WHERE status = ANY(%(finished)s::text[])
                      ORDER BY updated_at DESC, workflow_id COLLATE "C" DESC
                      LIMIT %(keep)s)
                  AND NOT EXISTS (
                      SELECT 1 FROM {s}.workflows AS p
                      WHERE p.workflow_id = w.parent_workflow_id
                        AND p.status = ANY(%(active)s::text[]))
                ORDER BY w.updated_at, w.workflow_id COLLATE "C"
                LIMIT %(limit)s
                FOR UPDATE SKIP LOCKED
            ),
            steps AS (
                DELETE FROM {s}.steps WHERE workflow_id IN (SELECT workflow_id FROM doomed)
            ),
            messages AS (
                DELETE FROM {s}.messages
                WHERE destination_id IN (SELECT workflow_id FROM doomed)
            ),
            events AS (
                DELETE FROM {s}.events WHERE workflow_id IN (SELECT workflow_id FROM doomed)
            )
            DELETE FROM {s}.workflows WHERE workflow_id IN (SELECT workflow_id FROM doomed)
            RETURNING 1"""

        self.load_steps = (
            f"SELECT {_STEP_COLS} FROM {s}.steps WHERE workflow_id = %s ORDER BY step_id"
        )

        self.record_step = _fenced_step_insert(s, "1")
        # The cold path of a step's own outcome when its workflow was cancelled during
        # the step (``while_cancelled``): the same fence, on a CANCELLED row. Its WHERE
        # pins the status, so a row returned means "recorded while cancelled", exactly.
        self.record_step_cancelled = _fenced_step_insert(s, "1", status=StatusType.CANCELLED.value)

        # The cold path of every fenced write: why did it write nothing? One snapshot of
        # the workflow row and of the step (if any) at that position.
        self.diagnose = f"""
            SELECT w.status, w.owner, w.output, w.error, w.updated_at,
                   {", ".join(f"st.{c}" for c in STEP_FIELDS)}
            FROM (SELECT 1) AS one
            LEFT JOIN {s}.workflows AS w ON w.workflow_id = %(wf)s
            LEFT JOIN {s}.steps AS st
                ON st.workflow_id = %(wf)s AND st.step_id = %(step_id)s::bigint"""

        # Copies what is missing; on a retry after an ambiguous commit it also counts the
        # rows that are already identical to the source (most likely our first attempt).
        self.copy_steps = f"""
            WITH ins AS (
                INSERT INTO {s}.steps (workflow_id, {_STEP_COLS})
                SELECT %(target)s, {_STEP_COLS} FROM {s}.steps
                WHERE workflow_id = %(source)s AND step_id < %(below)s
                ON CONFLICT DO NOTHING
                RETURNING 1
            )
            SELECT (SELECT count(*) FROM ins) + CASE WHEN NOT %(retried)s THEN 0 ELSE (
                SELECT count(*) FROM {s}.steps AS a JOIN {s}.steps AS b
                    ON b.workflow_id = %(target)s AND b.step_id = a.step_id
                WHERE a.workflow_id = %(source)s AND a.step_id < %(below)s
                  AND %(source)s <> %(target)s
                  AND (a.name, a.output, a.error, a.child_workflow_id, a.started_at,
                       a.completed_at)
                      IS NOT DISTINCT FROM
                      (b.name, b.output, b.error, b.child_workflow_id, b.started_at,
                       b.completed_at)) END"""

        self.send_message = f"""
            WITH msg AS (
                INSERT INTO {s}.messages (send_key, destination_id, topic, payload, created_at)
                SELECT %(key)s::uuid, %(dest)s::text, %(topic)s::text, %(payload)s::text,
                       %(now)s::bigint
                WHERE EXISTS (SELECT 1 FROM {s}.workflows WHERE workflow_id = %(dest)s)
                ON CONFLICT (send_key) DO NOTHING
                RETURNING destination_id
            )
            SELECT pg_notify({channel}, 'msg:' || destination_id) FROM msg"""

        dest_exists = f"EXISTS (SELECT 1 FROM {s}.workflows WHERE workflow_id = %(dest)s)"
        self.send_message_fenced = f"""
            WITH step AS ({_fenced_step_insert(s, "1", f" AND {dest_exists}")}),
            msg AS (
                INSERT INTO {s}.messages (send_key, destination_id, topic, payload, created_at)
                SELECT %(key)s::uuid, %(dest)s::text, %(topic)s::text, %(payload)s::text,
                       %(now)s::bigint
                FROM step
                RETURNING destination_id
            )
            SELECT pg_notify({channel}, 'msg:' || destination_id) FROM msg"""

        self.send_diagnose = f"""
            SELECT {dest_exists},
                   EXISTS (SELECT 1 FROM {s}.messages WHERE send_key = %(key)s)"""

        # Consume and checkpoint in one statement. SKIP LOCKED: a concurrent receiver of
        # the same topic takes the next message instead of coming back empty-handed. A
        # step already recorded at step_id makes the INSERT fail (no ON CONFLICT here on
        # purpose) and the whole statement, the DELETE included, rolls back.
        #
        # When no message waits (``c`` is empty), nothing is locked: the row lock of ``w``
        # would assign a transaction ID, and its commit would wait for a WAL flush that
        # guards nothing. The fence is then checked with a plain read; only a write needs
        # the lock, and this statement writes nothing in that case.
        self.receive_message = f"""
            WITH c AS (
                SELECT 1 FROM {s}.messages
                WHERE destination_id = %(wf)s
                  AND (topic = %(topic)s::text OR (topic IS NULL AND %(topic)s::text IS NULL))
                LIMIT 1
            ),
            w AS (
                SELECT workflow_id FROM {s}.workflows
                WHERE workflow_id = %(wf)s AND owner = %(owner)s AND status = 'PENDING'
                  AND EXISTS (SELECT 1 FROM c)
                FOR SHARE
            ),
            m AS (
                SELECT message_id FROM {s}.messages
                WHERE destination_id = %(wf)s
                  AND (topic = %(topic)s::text OR (topic IS NULL AND %(topic)s::text IS NULL))
                  AND EXISTS (SELECT 1 FROM w)
                ORDER BY message_id
                LIMIT 1
                FOR UPDATE SKIP LOCKED
            ),
            del AS (
                DELETE FROM {s}.messages AS d USING m
                WHERE d.message_id = m.message_id
                RETURNING d.payload
            ),
            ins AS (
                INSERT INTO {s}.steps (workflow_id, {_STEP_COLS})
                SELECT %(wf)s, %(step_id)s::bigint, %(name)s::text, payload, NULL, NULL,
                       %(now)s::bigint, %(now)s::bigint
                FROM del
                RETURNING output
            )
            SELECT CASE WHEN EXISTS (SELECT 1 FROM c) THEN EXISTS (SELECT 1 FROM w) ELSE EXISTS (
                       SELECT 1 FROM {s}.workflows
                       WHERE workflow_id = %(wf)s AND owner = %(owner)s AND status = 'PENDING'
                   ) END,
                   (SELECT output FROM ins)"""

        event_upsert = f"""
                INSERT INTO {s}.events (workflow_id, key, value, updated_at)
                SELECT workflow_id, %(key)s::text, %(value)s::text, %(now)s::bigint FROM step
                ON CONFLICT (workflow_id, key)
                    DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at
                RETURNING workflow_id"""
        self.set_event = f"""
            WITH step AS ({_fenced_step_insert(s, "workflow_id")}),
            ev AS ({event_upsert})
            SELECT pg_notify({channel}, 'evt:' || workflow_id) FROM ev"""

        self.get_event = f"SELECT value FROM {s}.events WHERE workflow_id = %s AND key = %s"

        # -- queues: the claim's statements, run in one transaction in this order ----
        # The budget lock: a transaction-scoped advisory lock per (schema, queue). Unlike
        # a row lock it takes no transaction ID and writes no WAL, so a claim that finds
        # nothing to start commits without a disk flush. (Two queues whose keys collide
        # only take turns.)
        self.lock_queue = "SELECT pg_advisory_xact_lock(hashtextextended(%(lock)s, 0))"
        # Read after the lock is held: a statement's snapshot is taken when it starts, so
        # one that waited for the lock would otherwise miss a pause committed meanwhile.
        self.queue_state = f"""
            SELECT (SELECT paused FROM {s}.queues WHERE name = %(q)s),
                   (SELECT min(visible_at) FROM {s}.workflows
                    WHERE queue_name = %(q)s AND status = 'ENQUEUED' AND visible_at > %(now)s)"""
        self.queue_running = f"""
            SELECT CASE WHEN %(part)s THEN queue_partition_key END,
                   count(*) FILTER (WHERE executor_id = %(me)s), count(*)
            FROM {s}.workflows WHERE queue_name = %(q)s AND status = 'PENDING'
            GROUP BY 1"""
        self.queue_recent = f"""
            SELECT CASE WHEN %(part)s THEN queue_partition_key END, count(*), min(started_at)
            FROM {s}.workflows WHERE queue_name = %(q)s AND started_at > %(since)s
            GROUP BY 1"""
        candidates = f"""
            SELECT workflow_id, created_at, priority, queue_partition_key, visible_at
            FROM {s}.workflows
            WHERE queue_name = %(q)s AND status = 'ENQUEUED'
              AND application_version IN (%(v)s, '')
              AND (visible_at IS NULL OR visible_at <= %(now)s)
              AND (queue_partition_key IS NULL
                   OR queue_partition_key <> ALL(%(full)s::text[]))
            ORDER BY {{}}created_at, workflow_id COLLATE "C"
            LIMIT %(limit)s
            FOR UPDATE SKIP LOCKED"""
        self.queue_candidates_fifo = candidates.format("")
        self.queue_candidates_priority = candidates.format("priority, ")
        self.dequeue = f"""
            UPDATE {s}.workflows
            SET status = 'PENDING', owner = %(owner)s, executor_id = %(me)s,
                application_version = %(v)s, updated_at = %(now)s, started_at = %(now)s,
                deadline_ms = CASE WHEN timeout_ms IS NOT NULL THEN %(now)s + timeout_ms
                                   ELSE deadline_ms END
            WHERE workflow_id = ANY(%(ids)s::text[]) AND status = 'ENQUEUED'
            RETURNING {_WF_COLS}"""
        self.claimed_by = f"""
            SELECT {_WF_COLS} FROM {s}.workflows
            WHERE queue_name = %(q)s AND status = 'PENDING' AND owner = %(owner)s"""
        self.queues_with_work = f"""
            SELECT DISTINCT queue_name FROM {s}.workflows
            WHERE status = 'ENQUEUED' AND queue_name = ANY(%(names)s::text[])
              AND application_version IN (%(v)s, '')"""
        self.set_paused = f"""
            INSERT INTO {s}.queues (name, paused) VALUES (%(q)s, %(paused)s)
            ON CONFLICT (name) DO UPDATE SET paused = EXCLUDED.paused
            RETURNING pg_notify({channel}, 'q:' || name)"""

    def list_workflows(self, q: WorkflowQuery) -> tuple[str, Params]:
        """The SELECT for ``q``: same filters, order and paging as the reference store."""
        where: list[str] = []
        params: Params = {}

        def add(clause: str, **values: Any) -> None:
            where.append(clause)
            params.update(values)

        if q.workflow_ids is not None:
            add("workflow_id = ANY(%(ids)s::text[])", ids=list(q.workflow_ids))
        if q.statuses is not None:
            add("status = ANY(%(statuses)s::text[])", statuses=[x.value for x in q.statuses])
        if q.name is not None:
            add("name = %(name)s", name=q.name)
        if q.user is not None:
            add("authenticated_user = %(user)s", user=q.user)
        if q.app_version is not None:
            add("application_version = %(app_version)s", app_version=q.app_version)
        if q.application_id is not None:
            add("application_id = %(application_id)s", application_id=q.application_id)
        if q.executor_ids is not None:
            add("executor_id = ANY(%(executors)s::text[])", executors=list(q.executor_ids))
        if q.workflow_id_prefix is not None:
            # starts_with, not LIKE: a prefix may contain % or _.
            add("starts_with(workflow_id, %(prefix)s)", prefix=q.workflow_id_prefix)
        if q.queue_name is not None:
            add("queue_name = %(queue)s", queue=q.queue_name)
        if q.queues_only:
            add("queue_name IS NOT NULL")
        if q.start_time is not None:
            add("created_at >= %(start)s", start=q.start_time)
        if q.end_time is not None:
            add("created_at <= %(end)s", end=q.end_time)

        cols = [
            "NULL"
            if (c == "input" and not q.load_input)
            or (c in ("output", "error") and not q.load_output)
            else c
            for c in WF_FIELDS
        ]
        order = "DESC" if q.sort_desc else "ASC"
        text = f"SELECT {', '.join(cols)} FROM {self.schema}.workflows"
        if where:
            text += " WHERE " + " AND ".join(where)
        text += f' ORDER BY created_at {order}, workflow_id COLLATE "C" {order}'
        if q.limit is not None:
            text += " LIMIT %(limit)s"
            params["limit"] = q.limit
        if q.offset:
            text += " OFFSET %(offset)s"
            params["offset"] = q.offset
        return text, params


# -- the cold path: why did a fenced write write nothing? ------------------------------


@attrs.frozen
class FenceState:
    """One snapshot of the workflow row (fence columns and outcome) and of one step."""

    status: str | None
    owner: str | None
    output: str | None
    error: str | None
    updated_at: int | None
    step: StepRecord | None


def read_fence_state(
    conn: Conn, statements: Statements, workflow_id: str, step_id: int | None
) -> FenceState:
    """Read the workflow's fence and the step at ``step_id`` (None: no step) at once."""
    row = conn.execute(statements.diagnose, {"wf": workflow_id, "step_id": step_id}).fetchone()
    assert row is not None  # the statement always yields one row
    status, owner, output, error, updated_at = row[:5]
    step = None if row[5] is None else step_from_row(row[5:])
    return FenceState(status, owner, output, error, updated_at, step)


def fence_verdict(state: FenceState, owner: str, *, while_cancelled: bool = False) -> WriteResult:
    """May ``owner`` write? The core's rule on the snapshot."""
    status = None if state.status is None else StatusType(state.status)
    return rows.fence_verdict(status, state.owner, owner, while_cancelled=while_cancelled)


def explain_refusal(
    conn: Conn,
    statements: Statements,
    retried: bool,
    fence: Fence,
    step: StepRecord,
    *,
    while_cancelled: bool = False,
) -> WriteResult | None:
    """Why a fenced step write inserted nothing; None if it should simply run again.

    After an ambiguous commit (``retried``), a recorded step identical to ``step`` is
    our own first attempt, so the write is reported written rather than DUPLICATE. With
    ``while_cancelled`` (a step's own outcome), a row that is CANCELLED but still ours
    gets the step here, and the answer is RECORDED_WHILE_CANCELLED.
    """
    state = read_fence_state(conn, statements, fence.workflow_id, step.step_id)
    verdict = fence_verdict(state, fence.owner, while_cancelled=while_cancelled)
    if not verdict.written:
        return verdict
    if state.step is None:
        if verdict is WriteResult.RECORDED_WHILE_CANCELLED:
            params = step_params(fence.workflow_id, fence.owner, step)
            if conn.execute(statements.record_step_cancelled, params).fetchone() is not None:
                return verdict
        return None  # the row changed between the two statements
    return verdict if retried and state.step == step else WriteResult.DUPLICATE
