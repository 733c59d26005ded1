"""Properties of the step bookkeeping every context shares (``durakit.core.steps``)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from durakit.core.errors import MaxStepRetriesExceededError
from durakit.core.retry import RetryPolicy
from durakit.core.steps import (
    GiveUp,
    RetryAfter,
    StepCursor,
    after_failure,
    child_workflow_id,
    describe,
)


@given(st.integers(0, 200))
def test_the_cursor_hands_out_ids_in_call_order_from_zero(n: int) -> None:
    cursor = StepCursor()
    assert cursor.last == -1
    taken = [cursor.take() for _ in range(n)]
    assert taken == list(range(n))
    assert cursor.last == n - 1


def test_a_child_id_names_its_parent_and_step() -> None:
    assert child_workflow_id("order-7", 3) == "order-7-3"


@given(
    max_retries=st.integers(0, 6),
    failures=st.integers(1, 8),
    base=st.floats(0, 10),
    factor=st.floats(1, 4),
)
def test_retries_until_the_policy_allows_no_more(
    max_retries: int, failures: int, base: float, factor: float
) -> None:
    policy = RetryPolicy(max_retries=max_retries, base_interval=base, backoff_factor=factor)
    errors = [ValueError(i) for i in range(failures)]
    decision = after_failure(policy, errors, workflow_id="w", step_name="s", step_id=4)
    if failures <= max_retries:
        assert decision == RetryAfter(policy.delay_before_retry(failures))
        return
    assert isinstance(decision, GiveUp)
    if max_retries == 0:
        assert decision.error is errors[-1]  # no retries allowed: the step's own error
    else:
        err = decision.error
        assert isinstance(err, MaxStepRetriesExceededError)
        assert err.errors == errors
        assert (err.workflow_id, err.step_name, err.step_id, err.max_retries) == (
            "w",
            "s",
            4,
            max_retries,
        )
        assert f"failed {failures} times" in str(err)


def test_no_failure_is_not_a_decision() -> None:
    with pytest.raises(ValueError, match="at least one error"):
        after_failure(RetryPolicy(), [], workflow_id="w", step_name="s", step_id=0)


class _Unprintable(Exception):
    def __repr__(self) -> str:
        raise RuntimeError("repr is broken")


def test_an_exception_whose_repr_raises_is_still_reported() -> None:
    decision = after_failure(
        RetryPolicy(max_retries=1),
        [_Unprintable(), _Unprintable()],
        workflow_id="w",
        step_name="s",
        step_id=0,
    )
    assert isinstance(decision, GiveUp)
    assert isinstance(decision.error, MaxStepRetriesExceededError)
    assert "<_Unprintable whose repr() raised>" in str(decision.error)
    assert describe(ValueError("x")) == "ValueError('x')"
