"""The fence rule (``durakit.core.fencing``): who may write to a workflow row, and why not.

Every status and owner combination is tried, with and without ``while_cancelled``; the
only difference the flag makes is on a CANCELLED row that still carries the writer's
token."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from durakit.core.fencing import fence_verdict
from durakit.core.records import WriteResult
from durakit.core.status import StatusType

OWNERS = st.none() | st.sampled_from(["o1", "o2"])
STATUSES = st.none() | st.sampled_from(StatusType)
W = WriteResult


def test_the_owner_of_a_pending_row_writes() -> None:
    assert fence_verdict(StatusType.PENDING, "o1", "o1") is W.OK
    assert fence_verdict(StatusType.PENDING, "o1", "o1", while_cancelled=True) is W.OK


def test_refusals_say_why() -> None:
    assert fence_verdict(None, None, "o1") is W.NOT_PENDING  # no such row
    assert fence_verdict(StatusType.PENDING, "o2", "o1") is W.NOT_OWNER
    assert fence_verdict(StatusType.PENDING, None, "o1") is W.NOT_OWNER
    assert fence_verdict(StatusType.CANCELLED, "o1", "o1") is W.CANCELLED
    for status in (
        StatusType.ENQUEUED,
        StatusType.SUCCESS,
        StatusType.ERROR,
        StatusType.MAX_RECOVERY_ATTEMPTS_EXCEEDED,
    ):
        assert fence_verdict(status, "o1", "o1") is W.NOT_PENDING, status
        assert fence_verdict(status, "o1", "o1", while_cancelled=True) is W.NOT_PENDING


def test_a_step_outcome_is_kept_when_cancelled_during_the_same_execution() -> None:
    verdict = fence_verdict(StatusType.CANCELLED, "o1", "o1", while_cancelled=True)
    assert verdict is W.RECORDED_WHILE_CANCELLED
    assert verdict.written


def test_a_cancelled_row_of_another_execution_stays_refused() -> None:
    # Resumed by another execution and cancelled again: the new token is not ours.
    assert fence_verdict(StatusType.CANCELLED, "o2", "o1", while_cancelled=True) is W.CANCELLED
    assert fence_verdict(StatusType.CANCELLED, None, "o1", while_cancelled=True) is W.CANCELLED


@given(status=STATUSES, owner=OWNERS, writer=st.sampled_from(["o1", "o2"]))
def test_while_cancelled_changes_only_a_cancelled_row_of_ours(
    status: StatusType | None, owner: str | None, writer: str
) -> None:
    plain = fence_verdict(status, owner, writer)
    flagged = fence_verdict(status, owner, writer, while_cancelled=True)
    if status is StatusType.CANCELLED and owner == writer:
        assert (plain, flagged) == (W.CANCELLED, W.RECORDED_WHILE_CANCELLED)
    else:
        assert flagged is plain
    assert plain.written == (status is StatusType.PENDING and owner == writer)


def test_which_results_mean_written() -> None:
    assert {r for r in W if r.written} == {W.OK, W.RECORDED_WHILE_CANCELLED}
