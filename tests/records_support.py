"""Record builders and a thread race shared by the store tests (test_store_contract.py,
test_postgres.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import attrs

from durakit.backends.protocol import WorkflowStore
from durakit.core.records import Fence, NewWorkflow, StepRecord, WorkflowRecord, WriteResult
from durakit.core.status import StatusType, WorkflowEvent
from durakit.core.transitions import plan, plan_finish

OWNER = "owner-1"


def new_wf(workflow_id: str = "wf", **changes: Any) -> NewWorkflow:
    """A PENDING workflow owned by OWNER, created at t=1000; ``changes`` override fields."""
    base = NewWorkflow(
        workflow_id=workflow_id,
        name="checkout",
        status=StatusType.PENDING,
        input='{"n": 1}',
        executor_id="exec-a",
        application_version="v1",
        owner=OWNER,
        created_at=1_000,
    )
    return attrs.evolve(base, **changes)


def fence(workflow_id: str = "wf", owner: str = OWNER) -> Fence:
    return Fence(workflow_id=workflow_id, owner=owner)


def step(step_id: int, name: str = "step", **changes: Any) -> StepRecord:
    return StepRecord(step_id=step_id, name=name, **changes)


def finish(  # noqa: PLR0917 -- mirrors the outcome's fields, as the engine passes them
    store: WorkflowStore,
    fence: Fence,
    status: StatusType,
    output: str | None,
    error: str | None,
    now_ms: int,
) -> WriteResult:
    """Finish as the engine does: the core's COMPLETE (SUCCESS) or FAIL (ERROR) update."""
    event = WorkflowEvent.FAIL if status is StatusType.ERROR else WorkflowEvent.COMPLETE
    update = plan_finish(event, owner=fence.owner, output=output, error=error, now_ms=now_ms)
    return store.finish_workflow(fence, update)


def apply(
    store: WorkflowStore,
    workflow_id: str,
    event: WorkflowEvent,
    now_ms: int,
    *,
    owner: str | None = None,
    executor_id: str | None = None,
) -> WorkflowRecord | None:
    """Apply a claiming or stopping event as the engine does: the core's planned update.
    A claiming event without an explicit owner/executor gets fresh test values."""
    claims = event in {WorkflowEvent.DEQUEUE, WorkflowEvent.RECOVER, WorkflowEvent.RESUME}
    if claims:
        owner = owner or f"owner-at-{now_ms}"
        executor_id = executor_id or "exec-claim"
    return store.transition_workflow(
        workflow_id, plan(event, now_ms, owner=owner, executor_id=executor_id)
    )


def run_threads(count: int, target: Callable[[int], None]) -> None:
    """Run ``target(i)`` on ``count`` threads released together; re-raise any failure."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def body(i: int) -> None:
        try:
            barrier.wait()
            target(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
