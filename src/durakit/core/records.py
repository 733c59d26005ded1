"""The records that cross the store boundary: frozen, keyword-only attrs classes.

Payload fields (``input``, ``output``, ``error``, message and event values) are the
serialized text the API layer produced; stores store and return them verbatim and never
look inside. Times are integer milliseconds since the Unix epoch, read from the engine's
injected clock and passed in, so stores never read a clock of their own.
"""

from __future__ import annotations

import enum

import attrs

from durakit.core.status import StatusType


@attrs.frozen(kw_only=True)
class NewWorkflow:
    """A workflow row to create (``status`` is PENDING, or ENQUEUED for queued work)."""

    workflow_id: str
    name: str
    status: StatusType
    input: str | None
    executor_id: str
    application_version: str
    application_id: str | None = None
    owner: str | None = None
    created_at: int
    queue_name: str | None = None
    deduplication_id: str | None = None
    priority: int = 0
    timeout_ms: int | None = None
    deadline_ms: int | None = None
    queue_partition_key: str | None = None
    visible_at: int | None = None  # a delayed enqueue: not to be dequeued before this
    authenticated_user: str | None = None
    assumed_role: str | None = None
    authenticated_roles: tuple[str, ...] | None = None
    parent_workflow_id: str | None = None
    # The starter's trace context (OpenTelemetry propagator fields as JSON), so that
    # every execution, in any process, continues the starter's trace.
    trace_context: str | None = None


@attrs.frozen(kw_only=True)
class WorkflowRecord:
    """A stored workflow row as a store returns it."""

    workflow_id: str
    name: str
    status: StatusType
    input: str | None
    output: str | None = None
    error: str | None = None
    executor_id: str
    application_version: str
    application_id: str | None = None
    owner: str | None = None
    created_at: int
    updated_at: int
    attempts: int = 1
    queue_name: str | None = None
    deduplication_id: str | None = None
    priority: int = 0
    timeout_ms: int | None = None
    deadline_ms: int | None = None
    started_at: int | None = None
    queue_partition_key: str | None = None
    visible_at: int | None = None
    authenticated_user: str | None = None
    assumed_role: str | None = None
    authenticated_roles: tuple[str, ...] | None = None
    parent_workflow_id: str | None = None
    # The starter's trace context (OpenTelemetry propagator fields as JSON), so that
    # every execution, in any process, continues the starter's trace.
    trace_context: str | None = None


@attrs.frozen(kw_only=True)
class Claim:
    """What one queue claim did: the rows it dequeued (now PENDING, owned by the
    claimer), and when time alone may let more start (a delay ending, the rate-limit
    window moving on), in epoch ms, or None."""

    claimed: tuple[WorkflowRecord, ...] = ()
    retry_at: int | None = None


@attrs.frozen(kw_only=True)
class StepRecord:
    """One checkpointed step: its outcome is ``output`` or ``error`` (never both)."""

    step_id: int
    name: str
    output: str | None = None
    error: str | None = None
    child_workflow_id: str | None = None
    started_at: int | None = None
    completed_at: int | None = None


@attrs.frozen(kw_only=True)
class InsertResult:
    """What :meth:`WorkflowStore.insert_workflow` found: the row, and whether it made it."""

    created: bool
    record: WorkflowRecord


class WriteResult(enum.Enum):
    """Why a fenced write (checkpoint, outcome, recv) did or did not happen."""

    OK = "OK"
    NOT_OWNER = "NOT_OWNER"  # another execution owns the workflow now
    CANCELLED = "CANCELLED"  # the workflow was cancelled (or timed out)
    NOT_PENDING = "NOT_PENDING"  # finished some other way, or does not exist
    DUPLICATE = "DUPLICATE"  # the step ID is already recorded
    # Written (a step's own outcome, ``while_cancelled=True``) although the workflow had
    # been cancelled meanwhile: the writer still owns it and must stop at its next
    # durable operation.
    RECORDED_WHILE_CANCELLED = "RECORDED_WHILE_CANCELLED"

    @property
    def written(self) -> bool:
        """Whether the write happened (OK, or recorded while cancelled)."""
        return self in _WRITTEN


_WRITTEN = frozenset({WriteResult.OK, WriteResult.RECORDED_WHILE_CANCELLED})


@attrs.frozen(kw_only=True)
class WorkflowQuery:
    """Filters for :meth:`WorkflowStore.list_workflows`; ``None`` means "any"."""

    workflow_ids: tuple[str, ...] | None = None
    statuses: tuple[StatusType, ...] | None = None
    name: str | None = None
    user: str | None = None
    app_version: str | None = None
    application_id: str | None = None  # the app_name that started the workflow
    executor_ids: tuple[str, ...] | None = None
    workflow_id_prefix: str | None = None
    queue_name: str | None = None
    queues_only: bool = False
    start_time: int | None = None  # created_at >= start_time (ms)
    end_time: int | None = None  # created_at <= end_time (ms)
    limit: int | None = None
    offset: int | None = None
    sort_desc: bool = False
    load_input: bool = True
    load_output: bool = True


@attrs.frozen(kw_only=True)
class VersionMove:
    """Which active workflows :meth:`VersionStore.set_version` moves, and where to.

    A workflow is picked when it is PENDING or ENQUEUED, of ``application_id`` (None:
    any application), and in ``workflow_ids`` and of ``from_version`` (each None: any);
    at least one of the two is given.
    """

    to_version: str
    now_ms: int
    application_id: str | None = None
    workflow_ids: tuple[str, ...] | None = None
    from_version: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.workflow_ids is None and self.from_version is None:
            raise ValueError("give workflow_ids or from_version: which work to move")

    def picks(self, record: WorkflowRecord) -> bool:
        """The reference semantics of the selection."""
        return (
            record.status in (StatusType.PENDING, StatusType.ENQUEUED)
            and (self.application_id is None or record.application_id == self.application_id)
            and (self.workflow_ids is None or record.workflow_id in self.workflow_ids)
            and (self.from_version is None or record.application_version == self.from_version)
        )


@attrs.frozen(kw_only=True)
class Fence:
    """Identifies the execution that writes: only the owner of a PENDING row may write."""

    workflow_id: str
    owner: str
