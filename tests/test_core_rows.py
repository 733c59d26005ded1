"""The row rules of the core: what a new row holds, and the fence verdict."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from durakit.core.records import NewWorkflow, WriteResult
from durakit.core.rows import created, fence_verdict
from durakit.core.status import StatusType

S = StatusType


def new(status: StatusType = S.PENDING, **fields: object) -> NewWorkflow:
    return NewWorkflow(
        workflow_id="wf",
        name="n",
        status=status,
        input="{}",
        executor_id="x",
        application_version="v",
        owner="o",
        created_at=1_000,
        **fields,  # type: ignore[arg-type]
    )


def test_a_pending_row_starts_now_and_arms_its_own_timeout() -> None:
    row = created(new(timeout_ms=250))
    assert (row.started_at, row.deadline_ms, row.attempts, row.updated_at) == (
        1_000,
        1_250,
        1,
        1_000,
    )


def test_an_inherited_deadline_wins_over_the_own_timeout() -> None:
    assert created(new(timeout_ms=250, deadline_ms=1_100)).deadline_ms == 1_100


def test_an_enqueued_row_starts_and_arms_its_deadline_only_at_dequeue() -> None:
    row = created(new(S.ENQUEUED, timeout_ms=250, queue_name="q"))
    assert (row.started_at, row.deadline_ms, row.queue_name) == (None, None, "q")


def test_no_timeout_no_deadline() -> None:
    assert created(new()).deadline_ms is None


@pytest.mark.parametrize(
    ("status", "owner", "verdict"),
    [
        (None, None, WriteResult.NOT_PENDING),
        (S.PENDING, "me", WriteResult.OK),
        (S.PENDING, "other", WriteResult.NOT_OWNER),
        (S.CANCELLED, "me", WriteResult.CANCELLED),
        (S.SUCCESS, "me", WriteResult.NOT_PENDING),
        (S.ENQUEUED, None, WriteResult.NOT_PENDING),
    ],
)
def test_fence_verdict(status: StatusType | None, owner: str | None, verdict: WriteResult) -> None:
    assert fence_verdict(status, owner, "me") is verdict


@given(status=st.none() | st.sampled_from(list(S)), owner=st.none() | st.sampled_from(["a", "b"]))
def test_only_the_owner_of_a_pending_row_may_write(
    status: StatusType | None, owner: str | None
) -> None:
    ok = fence_verdict(status, owner, "a") is WriteResult.OK
    assert ok == (status is S.PENDING and owner == "a")


def test_a_step_outcome_is_kept_when_cancelled_during_the_same_execution() -> None:
    verdict = fence_verdict(S.CANCELLED, "me", "me", while_cancelled=True)
    assert verdict is WriteResult.RECORDED_WHILE_CANCELLED
    assert verdict.written
    # Resumed by another execution and cancelled again: the new token is not ours.
    assert fence_verdict(S.CANCELLED, "other", "me", while_cancelled=True) is WriteResult.CANCELLED


@given(
    status=st.none() | st.sampled_from(list(S)),
    owner=st.none() | st.sampled_from(["a", "b"]),
    writer=st.sampled_from(["a", "b"]),
)
def test_while_cancelled_changes_only_a_cancelled_row_of_ours(
    status: StatusType | None, owner: str | None, writer: str
) -> None:
    plain = fence_verdict(status, owner, writer)
    flagged = fence_verdict(status, owner, writer, while_cancelled=True)
    if status is S.CANCELLED and owner == writer:
        assert (plain, flagged) == (WriteResult.CANCELLED, WriteResult.RECORDED_WHILE_CANCELLED)
    else:
        assert flagged is plain
    assert plain.written == (status is S.PENDING and owner == writer)


def test_which_results_mean_written() -> None:
    assert {r for r in WriteResult if r.written} == {
        WriteResult.OK,
        WriteResult.RECORDED_WHILE_CANCELLED,
    }
