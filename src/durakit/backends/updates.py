"""The parameters of the one UPDATE statement that applies a core-planned transition.

Both SQL stores apply a :class:`~durakit.core.transitions.WorkflowUpdate` with a single
compare-and-swap statement whose named parameters are these (each store spells the
placeholders its own way). The values are the update's fields, untouched: what an
event changes is decided in the core, and the statement only copies it into the row.
"""

from __future__ import annotations

from durakit.core.transitions import WorkflowUpdate


def update_params(workflow_id: str, update: WorkflowUpdate) -> dict[str, object]:
    """Named parameters for the stores' apply-update statement."""
    return {
        "id": workflow_id,
        "to": update.status.value,
        "now": update.now_ms,
        # Sorted so that one update always yields the same parameters (and a retried
        # statement after an ambiguous commit is byte-identical).
        "from_statuses": sorted(s.value for s in update.from_statuses),
        "fence_owner": update.fence_owner,
        "owner": update.new_owner,
        "executor": update.executor_id,
        "attempts": update.attempts.value,
        "restart_clock": update.restart_clock,
        "release": update.release_deduplication,
        "sets_outcome": update.sets_outcome,
        "output": update.output,
        "error": update.error,
    }
