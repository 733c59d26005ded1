"""Retention: which finished workflows garbage collection may delete (pure).

A workflow is collectable when it is finished (SUCCESS, ERROR, CANCELLED,
MAX_RECOVERY_ATTEMPTS_EXCEEDED), was last updated before the cutoff, is not among the
``keep`` most recently finished ones (by ``updated_at``, then ID), and its parent, if
it has one, is not still active (PENDING or ENQUEUED: it may yet read the child's
result). Oldest first, at most ``limit`` per batch, so that a store deletes in bounded
transactions. :func:`collectable` is the reference semantics that every store's
``delete_finished`` implements.
"""

from __future__ import annotations

from collections.abc import Iterable

from durakit.core.records import WorkflowRecord
from durakit.core.status import FINISHED, StatusType

ACTIVE = frozenset({StatusType.PENDING, StatusType.ENQUEUED})


def collectable(
    rows: Iterable[WorkflowRecord], cutoff_ms: int, keep: int | None, limit: int
) -> list[str]:
    """IDs of the workflows a batch deletes, oldest first (see the module docstring)."""
    rows = list(rows)
    finished = sorted(
        (r for r in rows if r.status in FINISHED),
        key=lambda r: (r.updated_at, r.workflow_id),
    )
    spared = {r.workflow_id for r in finished[max(0, len(finished) - keep) :]} if keep else set()
    active = {r.workflow_id for r in rows if r.status in ACTIVE}
    doomed = [
        r.workflow_id
        for r in finished
        if r.updated_at < cutoff_ms
        and r.workflow_id not in spared
        and r.parent_workflow_id not in active
    ]
    return doomed[:limit]
