"""What the stores share to claim queued work: rows in, the core's inputs out.

The stores read, under the queue's lock, the running counts and the recent starts per
partition, and the candidates in queue order; these helpers turn those rows into the
:mod:`durakit.core.admission` records, so the decision itself stays in the core.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from durakit.core.admission import Candidate, Load, QueuePolicy, admit, retry_at
from durakit.core.records import Claim, WorkflowRecord


def loads_from(
    running: Iterable[Sequence[Any]], recent: Iterable[Sequence[Any]]
) -> dict[str | None, Load]:
    """``running`` rows are (partition, here, total); ``recent`` rows are (partition,
    starts, oldest start)."""
    counts: dict[str | None, dict[str, Any]] = {}
    for key, here, total in running:
        counts.setdefault(key, {}).update(running_here=int(here), running_total=int(total))
    for key, starts, oldest in recent:
        counts.setdefault(key, {}).update(recent_starts=int(starts), oldest_start=oldest)
    return {key: Load(**fields) for key, fields in counts.items()}


def candidate_from(row: Sequence[Any]) -> Candidate:
    """A row of (workflow_id, created_at, priority, queue_partition_key, visible_at)."""
    workflow_id, created_at, priority, partition, visible_at = row
    return Candidate(
        workflow_id=workflow_id,
        created_at=created_at,
        priority=priority,
        partition=partition,
        visible_at=visible_at,
    )


def decide(
    policy: QueuePolicy,
    loads: dict[str | None, Load],
    candidates: list[Candidate],
    now_ms: int,
    next_visible: int | None,
) -> tuple[list[Candidate], int | None]:
    """The candidates to claim, and when time alone may let more start."""
    admitted = admit(policy, loads, candidates, now_ms)
    taken = {c.workflow_id for c in admitted}
    waiting = [c for c in candidates if c.workflow_id not in taken]
    return admitted, retry_at(policy, loads, waiting, next_visible)


def claim_of(claimed: list[WorkflowRecord], wake: int | None) -> Claim:
    """The claim, in queue-admission order of creation (oldest first)."""
    claimed.sort(key=lambda r: (r.priority, r.created_at, r.workflow_id))
    return Claim(claimed=tuple(claimed), retry_at=wake)
