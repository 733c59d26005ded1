"""The rules every store applies to rows, decided once: what a new row holds, and whether
a fenced write may go ahead.

Stores call these instead of restating them (the SQL stores' statements implement the
same rules on the hot path; the contract and model tests hold them to these functions).
"""

from __future__ import annotations

from durakit.core.records import NewWorkflow, WorkflowRecord, WriteResult
from durakit.core.status import StatusType


def created(new: NewWorkflow) -> WorkflowRecord:
    """The row that ``insert_workflow`` creates for ``new``.

    One attempt so far, ``updated_at = created_at``. A workflow created PENDING starts
    now (``started_at = created_at``) and, with a timeout of its own and no inherited
    deadline, gets ``deadline_ms = created_at + timeout_ms``; an ENQUEUED one starts,
    and arms its deadline, when it is dequeued.
    """
    pending = new.status is StatusType.PENDING
    deadline = new.deadline_ms
    if pending and deadline is None and new.timeout_ms is not None:
        deadline = new.created_at + new.timeout_ms
    return WorkflowRecord(
        workflow_id=new.workflow_id,
        name=new.name,
        status=new.status,
        input=new.input,
        executor_id=new.executor_id,
        application_version=new.application_version,
        application_id=new.application_id,
        owner=new.owner,
        created_at=new.created_at,
        updated_at=new.created_at,
        attempts=1,
        queue_name=new.queue_name,
        deduplication_id=new.deduplication_id,
        priority=new.priority,
        timeout_ms=new.timeout_ms,
        deadline_ms=deadline,
        started_at=new.created_at if pending else None,
        queue_partition_key=new.queue_partition_key,
        visible_at=new.visible_at,
        authenticated_user=new.authenticated_user,
        assumed_role=new.assumed_role,
        authenticated_roles=new.authenticated_roles,
        parent_workflow_id=new.parent_workflow_id,
        trace_context=new.trace_context,
    )


def fence_verdict(
    status: StatusType | None,
    owner: str | None,
    fence_owner: str,
    *,
    while_cancelled: bool = False,
) -> WriteResult:
    """May the execution holding ``fence_owner`` write to a row in ``status`` owned by
    ``owner`` (``status`` None: no such row)? OK only while the row is PENDING and
    owned by that execution; otherwise why not, in this order: the row is missing or
    finished (NOT_PENDING), cancelled (CANCELLED), or owned by another execution
    (NOT_OWNER).

    One exception, asked for with ``while_cancelled`` (the outcome of a step the
    execution ran): a CANCELLED row that still carries ``fence_owner`` takes the write,
    RECORDED_WHILE_CANCELLED. Cancellation stops a workflow at its *next* step; a running
    step is not interrupted, and its outcome is kept so that a resume does not run it
    again. A cancel leaves the owner token alone, so such a row was cancelled during this
    very execution; a resume or recovery writes a new token, fencing the old writer out.
    Both OK and RECORDED_WHILE_CANCELLED are :attr:`~WriteResult.written`.
    """
    if status is StatusType.CANCELLED:
        if while_cancelled and owner == fence_owner:
            return WriteResult.RECORDED_WHILE_CANCELLED
        return WriteResult.CANCELLED
    if status is not StatusType.PENDING:
        return WriteResult.NOT_PENDING
    if owner != fence_owner:
        return WriteResult.NOT_OWNER
    return WriteResult.OK
