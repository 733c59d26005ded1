"""The replay decision for the step at position n of a workflow.

When a workflow runs (for the first time or after a crash) each step call asks: was
this position already checkpointed? If so the recorded outcome is returned and the step
body does not run; if not it runs. A position recorded under another step name means
the program changed under a running workflow; that is reported at the first divergent
step, naming workflow, position, recorded and requested names.
"""

from __future__ import annotations

import attrs

from durakit.core.errors import UnexpectedStepError
from durakit.core.records import StepRecord


@attrs.frozen
class Replay:
    """Return the recorded outcome; do not run the step."""

    record: StepRecord


@attrs.frozen
class Execute:
    """Run the step and checkpoint its outcome."""


EXECUTE = Execute()


def decide_step(
    workflow_id: str, step_id: int, requested_name: str, recorded: StepRecord | None
) -> Replay | Execute:
    """Replay, execute, or raise :class:`UnexpectedStepError` for step ``step_id``."""
    if recorded is None:
        return EXECUTE
    if recorded.name != requested_name:
        raise UnexpectedStepError(
            f"workflow {workflow_id!r} step {step_id}: the code asked for step "
            f"{requested_name!r} but the recorded step at this position is "
            f"{recorded.name!r}; the workflow's code changed while it was running",
            workflow_id=workflow_id,
            step_id=step_id,
            step_name=requested_name,
            expected_name=requested_name,
            recorded_name=recorded.name,
        )
    return Replay(recorded)
