"""``PostgresStore``: the production store, on psycopg 3 and a ``psycopg_pool`` pool.

Cost model. Connections are autocommit, so every method that writes is one statement and
therefore one transaction and one round trip (the SQL is in :mod:`.postgres_sql`); hot
statements are prepared on first use per connection; the pool does not ping a connection
when lending it. A step checkpoint is a single ``INSERT ... SELECT ... FOR SHARE`` that
checks ownership and status itself; only when it inserts nothing does a second query
find out why (the cold path).

Connection loss. Every call goes through :meth:`.postgres_pool.RetryingPool.run`, which
retries with jittered exponential backoff on connection errors for up to
``retry_timeout`` seconds.
A retry after an error that hid whether the first attempt committed is told so
(``retried=True``), and every method then recognises its own earlier write instead of
reporting it as someone else's: a start finds its own owner token, a checkpoint finds
the identical step, a finish finds exactly its outcome.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Final

import attrs
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from durakit.backends.claims import candidate_from, claim_of, decide, loads_from
from durakit.backends.dsn import mask_secrets
from durakit.backends.health import StoreHealth
from durakit.backends.postgres_errors import (
    connect_reason,
    describe_target,
    is_permanent_connect_error,
)
from durakit.backends.postgres_listen import Listener
from durakit.backends.postgres_pool import Conn, RetryingPool
from durakit.backends.postgres_schema import (
    DEDUP_INDEX,
    channel_name,
    migrate_schema,
    quote_ident,
    validate_schema_name,
)
from durakit.backends.postgres_sql import (
    Params,
    Statements,
    explain_refusal,
    fence_verdict,
    read_fence_state,
    step_from_row,
    step_params,
    workflow_from_row,
    workflow_params,
)
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
from durakit.core.status import FINISHED
from durakit.core.transitions import WorkflowUpdate, check_finish

__all__ = ["PostgresStore"]

_CONNECT_DEFAULTS: Final = {"application_name": "durakit", "connect_timeout": "10"}
_LISTEN_WAIT_S: Final = 5.0  # subscribe() waits this long, at most, for LISTEN to be active


def _refuse_permanent_failure(conninfo: str, target: str, health: StoreHealth) -> None:
    """One direct connection attempt, before the pool starts: a wrong database, role,
    password or option raises :class:`InitializationError` with the server's reason now,
    instead of the pool retrying it for the whole retry budget. A transient failure (the
    server is down) is left to the pool's retries."""
    try:
        psycopg.connect(conninfo, autocommit=True).close()
    except psycopg.Error as exc:
        reason = mask_secrets(connect_reason(exc))
        if is_permanent_connect_error(exc):
            raise InitializationError(f"cannot connect to Postgres ({target}): {reason}") from exc
        health.down(reason)


class PostgresStore:
    """A :class:`~durakit.backends.protocol.SystemStore` on PostgreSQL, with push wake-ups.

    ``url`` is a libpq connection string or ``postgresql://`` URL; every table lives in
    ``schema`` (created by :meth:`migrate`). Opening the store makes one connection
    attempt: a configuration the server refuses (no such database or role, a wrong
    password, no ``pg_hba.conf`` entry, no CONNECT privilege, an invalid option or
    ``sslmode``, an unknown host) raises ``InitializationError`` with the server's
    reason at once. The pool keeps ``min_size`` to ``max_size`` connections; a call that
    cannot reach the server retries for up to ``retry_timeout`` seconds before raising
    ``StoreUnavailableError`` with the server's reason. Outages are logged by
    :attr:`health`, once when they start and once when they end. Also implements
    :class:`~durakit.backends.protocol.PushNotifications` with one LISTEN connection,
    opened on the first :meth:`subscribe`.
    """

    def __init__(
        self,
        url: str,
        schema: str = "durakit",
        *,
        min_size: int = 1,
        max_size: int = 20,
        retry_timeout: float = 60.0,
    ) -> None:
        validate_schema_name(schema)
        try:
            info = conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            raise InitializationError(
                f"invalid Postgres URL {mask_secrets(url)!r}: {exc}"
            ) from None
        # Defaults the URL may override: sessions named in pg_stat_activity, and a bound
        # on connection attempts so a blackholed server cannot hang a pool worker.
        extra = {k: v for k, v in _CONNECT_DEFAULTS.items() if k not in info}
        if extra:
            url = make_conninfo(url, **extra)
        self._conninfo = url
        self._schema = schema
        self._target = describe_target(url)
        self._health = StoreHealth(f"Postgres ({self._target}, schema {schema!r})")
        _refuse_permanent_failure(url, self._target, self._health)
        self._channel = channel_name(schema)
        self._sql = Statements(quote_ident(schema), sql.Literal(self._channel).as_string())
        self._db = RetryingPool(
            url,
            name=f"durakit-{schema}",
            min_size=min_size,
            max_size=max_size,
            retry_timeout=retry_timeout,
            health=self._health,
        )
        self._lock = threading.Lock()
        self._listener: Listener | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"PostgresStore({self._target}, schema={self._schema!r})"

    @property
    def health(self) -> StoreHealth:
        """Whether the server answers; outages are logged here once, not per call."""
        return self._health

    # -- lifecycle ------------------------------------------------------------------
    def migrate(self) -> None:
        """Create the schema or upgrade it; safe from several processes at once.

        Raises :class:`~durakit.core.errors.InitializationError` if a newer durakit
        migrated this schema.
        """
        self._db.run(lambda conn, _retried: migrate_schema(conn, self._schema))

    def close(self) -> None:
        """Stop the listener and close every connection; the store is unusable after."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()
        self._db.close()

    def subscribe(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(key)`` from a background thread on each notification.

        Keys are ``wf:<id>``, ``msg:<id>`` and ``evt:<id>``, plus ``"*"`` after the
        listener reconnected (notifications may have been lost: re-check everything).
        """
        with self._lock:
            if self._closed:
                raise RuntimeError("subscribe() on a closed PostgresStore")
            listener = self._listener
            if listener is None:
                listener = self._listener = Listener(self._conninfo, self._channel, self._health)
                listener.start()
            listener.add(callback)
        # Outside the lock: close() must not wait for an unreachable database.
        listener.wait_listening(_LISTEN_WAIT_S)

    # -- workflows ------------------------------------------------------------------
    def insert_workflow(self, new: NewWorkflow) -> InsertResult:
        """Create the row unless it exists; one round trip (see the protocol)."""
        rec = rows.created(new)
        params = workflow_params(rec)

        def op(conn: Conn, retried: bool) -> InsertResult:
            while True:
                try:
                    row = conn.execute(self._sql.insert_workflow, params, prepare=True).fetchone()
                except psycopg.errors.UniqueViolation as exc:
                    if exc.diag.constraint_name != DEDUP_INDEX:
                        raise
                    raise QueueDeduplicatedError(
                        f"workflow {new.workflow_id!r} not created: deduplication ID "
                        f"{new.deduplication_id!r} is in use on queue {new.queue_name!r}",
                        workflow_id=new.workflow_id,
                        queue_name=new.queue_name,
                        deduplication_id=new.deduplication_id,
                    ) from None
                assert row is not None  # the statement always yields one row
                row = row[:-1]  # the last column is the enqueue's pg_notify
                if row[0]:
                    return InsertResult(created=True, record=rec)
                # Otherwise the row was there; if it was committed by a concurrent start
                # after our snapshot (w.* all NULL), read it now.
                if row[1] is not None:
                    found: WorkflowRecord | None = workflow_from_row(row[1:])
                else:
                    found = self._get(conn, new.workflow_id)
                if found is None:
                    continue  # and deleted again meanwhile: start over
                # After an ambiguous commit, our own row is recognised by its owner token
                # (unique per start), or for an unowned row by being exactly what we wrote.
                ours = retried and (
                    (new.owner is not None and found.owner == new.owner) or found == rec
                )
                return InsertResult(created=ours, record=found)

        return self._db.run(op)

    def _get(self, conn: Conn, workflow_id: str) -> WorkflowRecord | None:
        row = conn.execute(self._sql.get_workflow, (workflow_id,), prepare=True).fetchone()
        return None if row is None else workflow_from_row(row)

    def get_workflow(self, workflow_id: str) -> WorkflowRecord | None:
        """The row with that ID, or None."""
        return self._db.run(lambda conn, _retried: self._get(conn, workflow_id))

    def list_workflows(self, query: WorkflowQuery) -> list[WorkflowRecord]:
        """Rows matching ``query``, ordered and paged as the reference store does."""
        text, params = self._sql.list_workflows(query)

        def op(conn: Conn, _retried: bool) -> list[WorkflowRecord]:
            return [workflow_from_row(r) for r in conn.execute(text, params).fetchall()]

        return self._db.run(op)

    def finish_workflow(self, fence: Fence, update: WorkflowUpdate) -> WriteResult:
        """Record the final outcome; fenced, and notifies ``wf:<id>`` in the same commit."""
        check_finish(fence, update)
        params = update_params(fence.workflow_id, update)

        def op(conn: Conn, retried: bool) -> WriteResult:
            while True:
                row = conn.execute(self._sql.finish_update, params, prepare=True).fetchone()
                if row is not None:
                    return WriteResult.OK
                state = read_fence_state(conn, self._sql, fence.workflow_id, None)
                # After an ambiguous commit, a row holding exactly what we wrote is ours.
                mine = (update.status.value, fence.owner, update.output, update.error)
                found = (state.status, state.owner, state.output, state.error)
                if retried and found == mine and state.updated_at == update.now_ms:
                    return WriteResult.OK
                verdict = fence_verdict(state, fence.owner)
                if verdict is not WriteResult.OK:
                    return verdict
                # The fence holds now but did not when the UPDATE ran: try again.

        return self._db.run(op)

    def transition_workflow(
        self, workflow_id: str, update: WorkflowUpdate
    ) -> WorkflowRecord | None:
        """Compare-and-swap the status (see the protocol); notifies ``wf:<id>``."""
        params = update_params(workflow_id, update)

        def op(conn: Conn, retried: bool) -> WorkflowRecord | None:
            row = conn.execute(self._sql.apply_update, params, prepare=True).fetchone()
            if row is not None:
                return workflow_from_row(row[:-2])  # the last two are pg_notify's voids
            if not retried:
                return None
            # Our first attempt may have committed: recognise its result (a new owner token
            # is unique; otherwise the exact status and timestamp we wrote).
            rec = self._get(conn, workflow_id)
            ours = (
                rec is not None
                and rec.status is update.status
                and rec.updated_at == update.now_ms
                and update.new_owner in (None, rec.owner)
                and update.executor_id in (None, rec.executor_id)
            )
            return rec if ours else None

        return self._db.run(op)

    def set_version(self, selection: VersionMove) -> list[str]:
        """Move the selected active workflows to another version (see the protocol)."""
        ids = None if selection.workflow_ids is None else list(selection.workflow_ids)
        params: Params = {
            "to": selection.to_version,
            "now": selection.now_ms,
            "active": sorted(st.value for st in ACTIVE),
            "app": selection.application_id,
            "ids": ids,
            "from_version": selection.from_version,
        }

        def op(conn: Conn, _retried: bool) -> list[str]:
            # A retry after an ambiguous commit may list fewer: rows the lost commit moved
            # no longer match from_version (they are moved all the same).
            return sorted(r[0] for r in conn.execute(self._sql.set_version, params).fetchall())

        return self._db.run(op)

    def delete_finished(self, cutoff_ms: int, keep: int | None, limit: int) -> int:
        """Delete one batch of collectable workflows (see the protocol)."""
        params: Params = {
            "finished": sorted(st.value for st in FINISHED),
            "active": sorted(st.value for st in ACTIVE),
            "cutoff": cutoff_ms,
            "keep": keep or 0,
            "limit": limit,
        }

        def op(conn: Conn, _retried: bool) -> int:
            # A retry after an ambiguous commit deletes the next batch instead: the caller
            # loops until a batch is empty, so the total stays right either way.
            return len(conn.execute(self._sql.delete_finished, params).fetchall())

        return self._db.run(op)

    # -- steps ----------------------------------------------------------------------
    def load_steps(self, workflow_id: str) -> list[StepRecord]:
        """Every recorded step of the workflow, by ``step_id``."""

        def op(conn: Conn, _retried: bool) -> list[StepRecord]:
            rows = conn.execute(self._sql.load_steps, (workflow_id,), prepare=True).fetchall()
            return [step_from_row(r) for r in rows]

        return self._db.run(op)

    def _fenced_write(
        self,
        statement: str,
        params: Params,
        fence: Fence,
        step: StepRecord,
        *,
        while_cancelled: bool = False,
    ) -> WriteResult:
        def op(conn: Conn, retried: bool) -> WriteResult:
            while True:
                if conn.execute(statement, params, prepare=True).fetchone() is not None:
                    return WriteResult.OK
                verdict = explain_refusal(
                    conn, self._sql, retried, fence, step, while_cancelled=while_cancelled
                )
                if verdict is not None:
                    return verdict

        return self._db.run(op)

    def record_step(
        self, fence: Fence, step: StepRecord, *, while_cancelled: bool = False
    ) -> WriteResult:
        """Insert the checkpoint, fenced: one round trip on the hot path (a PENDING row
        of ours); a step recorded while cancelled takes the cold path's two more."""
        params = step_params(fence.workflow_id, fence.owner, step)
        return self._fenced_write(
            self._sql.record_step, params, fence, step, while_cancelled=while_cancelled
        )

    def copy_steps(self, source_id: str, target_id: str, below_step: int) -> int:
        """Copy the source's steps below ``below_step`` to the target, keeping existing ones."""

        def op(conn: Conn, retried: bool) -> int:
            params = {
                "source": source_id,
                "target": target_id,
                "below": below_step,
                "retried": retried,
            }
            row = conn.execute(self._sql.copy_steps, params).fetchone()
            assert row is not None
            return int(row[0])

        return self._db.run(op)

    # -- messages and events --------------------------------------------------------
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
        """Append a message (with the sender's step, when given, in the same commit)."""
        params: Params = {
            # Identifies this call across retries (an unfenced send has no step to do it).
            "key": uuid.uuid4(),
            "dest": destination_id,
            "topic": topic,
            "payload": payload,
            "now": now_ms,
        }
        if sender is None or sender_step is None:
            return self._db.run(lambda conn, _retried: self._send(conn, params, None, None))
        params.update(step_params(sender.workflow_id, sender.owner, sender_step))
        return self._db.run(
            lambda conn, retried: self._send(conn, params, sender, sender_step, retried)
        )

    def _send(
        self,
        conn: Conn,
        params: Params,
        sender: Fence | None,
        step: StepRecord | None,
        retried: bool = False,
    ) -> WriteResult:
        statement = self._sql.send_message if step is None else self._sql.send_message_fenced
        while True:
            if conn.execute(statement, params, prepare=True).fetchone() is not None:
                return WriteResult.OK
            row = conn.execute(self._sql.send_diagnose, params).fetchone()
            assert row is not None
            dest_exists, key_exists = row
            if not dest_exists:
                return WriteResult.NOT_PENDING
            if sender is None or step is None:
                if key_exists:
                    return WriteResult.OK  # our earlier attempt committed
                # The destination appeared after our snapshot: insert now. (Had an earlier
                # attempt committed and its message been consumed already, this sends it
                # again: an unfenced send is at-least-once across a lost connection.)
                continue
            verdict = explain_refusal(conn, self._sql, retried, sender, step)
            if verdict is not None:
                return verdict

    def receive_message(
        self, fence: Fence, step_id: int, step_name: str, topic: str | None, now_ms: int
    ) -> tuple[WriteResult, str | None]:
        """Consume the oldest message on ``topic`` and checkpoint it, in one statement."""
        params: Params = {
            "wf": fence.workflow_id,
            "owner": fence.owner,
            "topic": topic,
            "step_id": step_id,
            "name": step_name,
            "now": now_ms,
        }
        # What the step looks like once recorded, apart from its output (the message).
        shape = StepRecord(step_id=step_id, name=step_name, started_at=now_ms, completed_at=now_ms)

        def op(conn: Conn, retried: bool) -> tuple[WriteResult, str | None]:
            while True:
                if retried:  # a previous attempt may have consumed the message already
                    state = read_fence_state(conn, self._sql, fence.workflow_id, step_id)
                    got = state.step
                    if (
                        fence_verdict(state, fence.owner) is WriteResult.OK
                        and got is not None
                        and attrs.evolve(got, output=None) == shape
                    ):
                        return WriteResult.OK, got.output
                try:
                    row = conn.execute(self._sql.receive_message, params, prepare=True).fetchone()
                except psycopg.errors.UniqueViolation:
                    row = None  # the step is already recorded; nothing was consumed
                if row is not None and row[0]:
                    return WriteResult.OK, row[1]  # row[1] is None when no message waits
                verdict = explain_refusal(conn, self._sql, False, fence, shape)
                if verdict is not None:
                    return verdict, None

        return self._db.run(op)

    def set_event(
        self, fence: Fence, step: StepRecord, key: str, value: str, now_ms: int
    ) -> WriteResult:
        """Upsert the event and record ``step`` in one fenced statement; notifies ``evt:``."""
        params = step_params(fence.workflow_id, fence.owner, step)
        params.update(key=key, value=value, now=now_ms)
        return self._fenced_write(self._sql.set_event, params, fence, step)

    def get_event(self, workflow_id: str, key: str) -> str | None:
        """The latest value of the event, or None."""

        def op(conn: Conn, _retried: bool) -> str | None:
            row = conn.execute(self._sql.get_event, (workflow_id, key), prepare=True).fetchone()
            return None if row is None else str(row[0])

        return self._db.run(op)

    # -- queues -----------------------------------------------------------------------
    def claim_queued(
        self,
        policy: QueuePolicy,
        *,
        executor_id: str,
        application_version: str,
        owner: str,
        now_ms: int,
    ) -> Claim:
        """Claim what admission allows, in one transaction that first takes the queue's
        advisory lock: claims on one queue take turns, so its budget is never spent
        twice; SKIP LOCKED passes over rows that a resume or cancel is changing."""
        params: Params = {
            "q": policy.name,
            "me": executor_id,
            "v": application_version,
            "owner": owner,
            "now": now_ms,
            "part": policy.partitioned,
            "since": now_ms - (policy.rate_limit.period_ms if policy.rate_limit else 0),
            "lock": f"durakit.queue:{self._schema}:{policy.name}",
        }

        def op(conn: Conn, retried: bool) -> Claim:
            if retried:
                # Our first attempt may have committed: its rows carry our owner token.
                rows = conn.execute(self._sql.claimed_by, params).fetchall()
                if rows:
                    return claim_of([workflow_from_row(r) for r in rows], None)
            with conn.transaction():
                conn.execute(self._sql.lock_queue, params, prepare=True)
                state = conn.execute(self._sql.queue_state, params, prepare=True).fetchone()
                assert state is not None  # the statement always yields one row
                paused, next_visible = state
                if paused:
                    return Claim()
                run = conn.execute(self._sql.queue_running, params, prepare=True).fetchall()
                recent: list[tuple[Any, ...]] = []
                if policy.rate_limit is not None:
                    recent = conn.execute(self._sql.queue_recent, params, prepare=True).fetchall()
                loads = loads_from(run, recent)
                params["limit"] = claim_limit(policy, loads)
                params["full"] = full_partitions(policy, loads)
                statement = (
                    self._sql.queue_candidates_priority
                    if policy.priority_enabled
                    else self._sql.queue_candidates_fifo
                )
                rows = conn.execute(statement, params, prepare=True).fetchall()
                admitted, wake = decide(
                    policy, loads, [candidate_from(r) for r in rows], now_ms, next_visible
                )
                if not admitted:
                    return Claim(retry_at=wake)
                params["ids"] = [c.workflow_id for c in admitted]
                claimed = conn.execute(self._sql.dequeue, params, prepare=True).fetchall()
                return claim_of([workflow_from_row(r) for r in claimed], wake)

        return self._db.run(op)

    def queues_with_work(self, names: Sequence[str], application_version: str) -> set[str]:
        """Those of ``names`` with an ENQUEUED workflow of that version."""
        params: Params = {"names": list(names), "v": application_version}

        def op(conn: Conn, _retried: bool) -> set[str]:
            rows = conn.execute(self._sql.queues_with_work, params, prepare=True).fetchall()
            return {str(r[0]) for r in rows}

        return self._db.run(op)

    def set_queue_paused(self, name: str, paused: bool) -> None:
        """Pause or resume the queue for every executor; notifies ``q:<name>``."""
        params: Params = {"q": name, "paused": paused}
        self._db.run(lambda conn, _retried: conn.execute(self._sql.set_paused, params))
