"""Step bookkeeping shared by every context (the engine's, the mock's, sync and async).

- :class:`StepCursor`: step IDs are taken at call time, in program order, from 0, so a
  replay asks for the same IDs in the same order. recv and get_event take two (their
  durable timeout is a sleep step of its own, then the receive).
- :func:`child_workflow_id`: the ID of a child started without one.
- :func:`after_failure`: what a step does after an attempt raised: retry after a delay,
  or give up with the error to record (the step's own, or MaxStepRetriesExceededError
  carrying every attempt's error when retries were allowed).
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from durakit.core.errors import MaxStepRetriesExceededError
from durakit.core.retry import RetryPolicy


class StepCursor:
    """Hands out step IDs in call order; ``last`` is the latest one taken (-1 before any)."""

    __slots__ = ("_next",)

    def __init__(self) -> None:
        self._next = 0

    def take(self) -> int:
        """The next step ID."""
        step_id = self._next
        self._next += 1
        return step_id

    @property
    def last(self) -> int:
        """The ID of the latest step taken; -1 before the first."""
        return self._next - 1


def child_workflow_id(parent_id: str, step_id: int) -> str:
    """The ID of a child workflow started at ``step_id`` without an explicit ID."""
    return f"{parent_id}-{step_id}"


def describe(error: BaseException) -> str:
    """``repr(error)``, or its class name when that repr raises: a user's exception must
    not break the message that reports it."""
    try:
        return repr(error)
    except Exception:  # noqa: BLE001 - any failure of user code falls back to the class
        return f"<{type(error).__qualname__} whose repr() raised>"


@attrs.frozen
class RetryAfter:
    """Run the step again after ``delay`` seconds."""

    delay: float


@attrs.frozen
class GiveUp:
    """Record ``error`` as the step's outcome and raise it."""

    error: Exception


def after_failure(
    policy: RetryPolicy,
    errors: Sequence[Exception],
    *,
    workflow_id: str,
    step_name: str,
    step_id: int,
) -> RetryAfter | GiveUp:
    """Decide what follows the failure of attempt ``len(errors)`` (errors oldest first)."""
    failed = len(errors)
    if failed == 0:
        raise ValueError("after_failure needs at least one error")
    if policy.may_retry(failed):
        return RetryAfter(policy.delay_before_retry(failed))
    if policy.max_retries == 0:
        return GiveUp(errors[-1])
    return GiveUp(
        MaxStepRetriesExceededError(
            f"step {step_name!r} of workflow {workflow_id!r} failed {failed} times; "
            f"last error: {describe(errors[-1])}",
            errors=errors,
            workflow_id=workflow_id,
            step_name=step_name,
            step_id=step_id,
            max_retries=policy.max_retries,
        )
    )
