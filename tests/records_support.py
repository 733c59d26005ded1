"""Record builders and a thread race shared by the store tests (test_store_contract.py,
test_postgres.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import attrs

from durakit.core.records import Fence, NewWorkflow, StepRecord
from durakit.core.status import StatusType

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
