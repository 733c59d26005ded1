"""The ``SystemStore`` protocol: what durakit needs from a database, one capability each.

Stores persist and compare-and-swap; they never decide what a workflow does next (the
core does). Every method is atomic on its own: a call either applies all of its writes
or none. Payload strings are opaque; times are epoch milliseconds passed in by the
engine. Every method may be called from many threads at once.

*Fenced* writes take a :class:`~durakit.core.records.Fence` (workflow ID + owner token):
they write only while the workflow row is PENDING and its ``owner`` equals the token,
and otherwise write nothing and say why with a :class:`WriteResult` (one exception:
``record_step(..., while_cancelled=True)``). This is what keeps
a stale execution (a zombie process, a superseded recovery) from recording anything.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from durakit.backends.health import StoreHealth
from durakit.core.admission import QueuePolicy
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
from durakit.core.transitions import WorkflowUpdate


class WorkflowStore(Protocol):
    """Workflow rows: create, read, list, finish, and status compare-and-swap."""

    def insert_workflow(self, new: NewWorkflow) -> InsertResult:
        """Create the row unless one with ``new.workflow_id`` exists, and return the row.

        Atomic: among concurrent calls with one ID (threads or processes) exactly one
        gets ``created=True``; the others get the stored row unchanged. ``attempts`` of a
        created row is 1 and ``updated_at`` equals ``created_at``. A PENDING row gets
        ``started_at = created_at`` and, when ``timeout_ms`` is set and ``deadline_ms``
        is not, ``deadline_ms = created_at + timeout_ms``.

        Raises QueueDeduplicatedError, writing nothing, when another workflow holds the
        same ``(queue_name, deduplication_id)`` (IDs are released when a workflow
        finishes).
        """
        ...

    def get_workflow(self, workflow_id: str) -> WorkflowRecord | None:
        """The row with that ID, or None."""
        ...

    def list_workflows(self, query: WorkflowQuery) -> list[WorkflowRecord]:
        """Rows matching every filter of ``query``, ordered by ``created_at`` (then ID).

        With ``load_input``/``load_output`` false, ``input``/``output``/``error`` are None.
        """
        ...

    def finish_workflow(self, fence: Fence, update: WorkflowUpdate) -> WriteResult:
        """Record the final outcome: apply ``update`` (from
        :func:`~durakit.core.transitions.plan_finish`: COMPLETE or FAIL) to the row.

        Fenced: writes only while the row is PENDING and owned by ``fence.owner``, so a
        cancelled workflow never flips to SUCCESS and a stale execution cannot overwrite
        a newer one; otherwise writes nothing and says why. Raises ValueError, writing
        nothing, when ``update`` is not an outcome fenced on ``fence.owner``
        (:func:`~durakit.core.transitions.check_finish`).
        """
        ...

    def transition_workflow(
        self, workflow_id: str, update: WorkflowUpdate
    ) -> WorkflowRecord | None:
        """Apply ``update`` (from :func:`~durakit.core.transitions.plan`) as one
        compare-and-swap: only if the row's status is in ``update.from_statuses`` (and,
        for a fenced update, its owner is ``update.fence_owner``).

        Returns the updated row, or None when the row is missing or did not match
        (nothing written). The store applies the update's effects without interpreting
        them: :func:`~durakit.core.transitions.applied` is their reference semantics.
        """
        ...


class VersionStore(Protocol):
    """Moving active work between application versions."""

    def set_version(self, selection: VersionMove) -> list[str]:
        """Set ``application_version = selection.to_version`` (and ``updated_at``) on the
        active (PENDING or ENQUEUED) workflows that ``selection`` picks; return their IDs,
        sorted. Finished workflows are never changed."""
        ...


class StepStore(Protocol):
    """Step checkpoints, keyed by (workflow_id, step_id)."""

    def load_steps(self, workflow_id: str) -> list[StepRecord]:
        """Every recorded step of the workflow, by ``step_id`` ascending."""
        ...

    def record_step(
        self, fence: Fence, step: StepRecord, *, while_cancelled: bool = False
    ) -> WriteResult:
        """Insert the checkpoint. Fenced; DUPLICATE if that step ID is already recorded
        (nothing is overwritten); CANCELLED if the workflow was cancelled.

        ``while_cancelled`` is for the outcome of a step the execution ran (never for a
        sleep, recv, send, event or child start): it is also written when the row is
        CANCELLED but still carries ``fence.owner`` -- the workflow was cancelled while
        this execution was inside the step, and the step is not run again on resume --
        and the answer is then RECORDED_WHILE_CANCELLED. The decision is
        :func:`durakit.core.rows.fence_verdict`.
        """
        ...

    def copy_steps(self, source_id: str, target_id: str, below_step: int) -> int:
        """Copy the source's steps with ``step_id < below_step`` to the target (fork).
        Returns how many were copied; existing target steps are kept."""
        ...


class MessageStore(Protocol):
    """Messages (send/recv, FIFO per destination and topic) and events (set/get)."""

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
        """Append a message to the destination's topic queue.

        With ``sender``/``sender_step`` (a send made inside a workflow) the sender's step
        is recorded in the same transaction, fenced on the sender: a replayed sender
        finds the step and does not send again. Returns NOT_PENDING, writing nothing,
        when the destination workflow does not exist; DUPLICATE when the sender's step
        is already recorded.
        """
        ...

    def receive_message(
        self, fence: Fence, step_id: int, step_name: str, topic: str | None, now_ms: int
    ) -> tuple[WriteResult, str | None]:
        """Consume the oldest message on ``topic`` for ``fence.workflow_id`` and record
        step ``step_id`` with that message as its output, in one transaction.

        Returns ``(OK, payload)``; ``(OK, None)`` when no message waits (nothing is
        written); or a fenced refusal with None (nothing consumed).
        """
        ...

    def set_event(
        self, fence: Fence, step: StepRecord, key: str, value: str, now_ms: int
    ) -> WriteResult:
        """Upsert the workflow's event ``key`` (latest value wins) and record ``step``,
        in one fenced transaction."""
        ...

    def get_event(self, workflow_id: str, key: str) -> str | None:
        """The latest value of the event, or None if it was never set."""
        ...


class QueueStore(Protocol):
    """Queues: claim ENQUEUED workflows within a queue's limits, pause and resume."""

    def claim_queued(
        self,
        policy: QueuePolicy,
        *,
        executor_id: str,
        application_version: str,
        owner: str,
        now_ms: int,
    ) -> Claim:
        """Dequeue what :func:`durakit.core.admission.admit` lets start now.

        Atomic, and serialized with every other claim on the same queue (by any
        process): the queue's budget is locked while its load (PENDING workflows of the
        queue here and everywhere, starts within the rate-limit window) is read, the
        candidates chosen and claimed, so two executors never spend one budget twice.
        Candidates are the queue's ENQUEUED rows of ``application_version`` (or of
        ``""``: any version, which the claim replaces by ``application_version``) whose
        ``visible_at`` has passed; nothing is claimed while the queue is paused. Each
        claimed row becomes PENDING as by the DEQUEUE event (``owner``, ``executor_id``,
        ``started_at = now_ms``, deadline re-armed from its timeout).
        """
        ...

    def queues_with_work(self, names: Sequence[str], application_version: str) -> set[str]:
        """Those of ``names`` that have an ENQUEUED workflow of ``application_version``
        or ``""`` (visible or not): a cheap check before claiming."""
        ...

    def set_queue_paused(self, name: str, paused: bool) -> None:
        """Pause (nothing is claimed from it) or resume the queue, for every executor."""
        ...


class RetentionStore(Protocol):
    """Garbage collection of finished workflows."""

    def delete_finished(self, cutoff_ms: int, keep: int | None, limit: int) -> int:
        """Delete at most ``limit`` collectable workflows, oldest first, with their
        steps, the messages waiting for them and their events, in one transaction;
        return how many were deleted. Collectable is
        :func:`durakit.core.retention.collectable`: finished, last updated before
        ``cutoff_ms``, not among the ``keep`` most recently finished, and not the child
        of an active (PENDING or ENQUEUED) parent."""
        ...


class SystemStore(
    WorkflowStore, VersionStore, StepStore, MessageStore, QueueStore, RetentionStore, Protocol
):
    """Everything the engine needs from a store, plus its lifecycle."""

    def migrate(self) -> None:
        """Create or upgrade the schema; safe when several processes call it at once."""
        ...

    def close(self) -> None:
        """Release connections; the store is unusable afterwards."""
        ...


@runtime_checkable
class PushNotifications(Protocol):
    """Optional: the store can tell this process that something changed elsewhere.

    Keys are ``"wf:<id>"`` (a workflow finished or changed status), ``"msg:<id>"`` (a
    message for that workflow), ``"evt:<id>"`` (an event of that workflow), ``"q:<name>"``
    (a queue got work or room: an enqueue, a queued workflow finished, a resume of the
    queue). Delivery is
    a hint: waiters always re-check the store, so a lost notification costs latency only.
    """

    def subscribe(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(key)`` from a background thread on each notification."""
        ...


@runtime_checkable
class ReportsHealth(Protocol):
    """Optional: the store keeps one :class:`~durakit.backends.health.StoreHealth`.

    Its own retries report to it, and so does the engine when a workflow pauses on an
    outage, so an outage is logged once when it starts and once when it ends.
    """

    @property
    def health(self) -> StoreHealth:
        """This store's up/down tracker."""
        ...
