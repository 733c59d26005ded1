"""Properties of whole transitions (``durakit.core.transitions``): the effects of each
event, decided as data, and their reference semantics on a record."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from durakit.core.records import Fence, WorkflowRecord
from durakit.core.status import FINISHED, StatusType, WorkflowEvent, sources, target
from durakit.core.transitions import Attempts, applied, check_finish, matches, plan, plan_finish

E = WorkflowEvent
CLAIMING = (E.DEQUEUE, E.RECOVER, E.RESUME)
STOPPING = (E.CANCEL, E.TIMEOUT, E.DEAD_LETTER, E.REQUEUE)
FINISHING = (E.COMPLETE, E.FAIL)

records = st.builds(
    WorkflowRecord,
    workflow_id=st.text(min_size=1, max_size=5),
    name=st.sampled_from(["a", "b"]),
    status=st.sampled_from(StatusType),
    input=st.none() | st.just('{"v":1,"d":1}'),
    output=st.none() | st.just('{"v":1,"d":2}'),
    error=st.none(),
    executor_id=st.sampled_from(["x1", "x2"]),
    application_version=st.just("v1"),
    owner=st.none() | st.sampled_from(["o1", "o2"]),
    created_at=st.integers(0, 10**6),
    updated_at=st.integers(0, 10**6),
    attempts=st.integers(1, 50),
    deduplication_id=st.none() | st.just("d"),
    timeout_ms=st.none() | st.integers(0, 10**6),
    deadline_ms=st.none() | st.integers(0, 10**7),
    started_at=st.none() | st.integers(0, 10**6),
)
now = st.integers(10**6, 2 * 10**6)


def update_for(event: WorkflowEvent, now_ms: int):  # type: ignore[no-untyped-def]
    if event in CLAIMING:
        return plan(event, now_ms, owner="new", executor_id="x9")
    if event in STOPPING:
        return plan(event, now_ms)
    return plan_finish(
        event,
        owner="o1",
        output="out" if event is E.COMPLETE else None,
        error="err" if event is E.FAIL else None,
        now_ms=now_ms,
    )


@pytest.mark.parametrize("event", list(WorkflowEvent))
def test_every_update_is_the_tables_compare_and_swap(event: WorkflowEvent) -> None:
    update = update_for(event, 5)
    assert update.event is event
    assert update.from_statuses == sources(event)
    assert update.status is target(event)
    assert update.release_deduplication == (target(event) in FINISHED)
    assert (update.fence_owner is not None) == (event in FINISHING)


@given(record=records, event=st.sampled_from(WorkflowEvent), now_ms=now, data=st.data())
def test_applied_changes_exactly_what_the_event_says(
    record: WorkflowRecord, event: WorkflowEvent, now_ms: int, data: st.DataObject
) -> None:
    if data.draw(st.booleans(), label="make the update apply"):
        status = data.draw(st.sampled_from(sorted(sources(event), key=lambda s: s.value)))
        record = attrs.evolve(record, status=status, owner="o1")
    update = update_for(event, now_ms)
    if not matches(record, update):
        assert record.status not in update.from_statuses or record.owner != update.fence_owner
        return
    after = applied(record, update)
    assert after.status is target(event)
    assert after.updated_at == now_ms
    # Identity and payload never change; the input stays as written.
    keep = ("workflow_id", "name", "input", "created_at", "timeout_ms", "application_version")
    assert all(getattr(after, f) == getattr(record, f) for f in keep)
    if event in CLAIMING:
        assert (after.owner, after.executor_id) == ("new", "x9")
    else:
        assert (after.owner, after.executor_id) == (record.owner, record.executor_id)
    expected_attempts = {E.RECOVER: record.attempts + 1, E.RESUME: 1}
    assert after.attempts == expected_attempts.get(event, record.attempts)
    if event in (E.DEQUEUE, E.RESUME):
        assert after.started_at == now_ms
        rearmed = None if record.timeout_ms is None else now_ms + record.timeout_ms
        assert after.deadline_ms == (rearmed if rearmed is not None else record.deadline_ms)
    else:
        assert (after.started_at, after.deadline_ms) == (record.started_at, record.deadline_ms)
    if target(event) in FINISHED:
        assert after.deduplication_id is None
    else:
        assert after.deduplication_id == record.deduplication_id
    if event in FINISHING:
        assert (after.output, after.error) == (update.output, update.error)
    else:
        assert (after.output, after.error) == (record.output, record.error)


@given(record=records, event=st.sampled_from(FINISHING), now_ms=now)
def test_a_finish_applies_only_for_its_owner_while_pending(
    record: WorkflowRecord, event: WorkflowEvent, now_ms: int
) -> None:
    update = update_for(event, now_ms)
    assert matches(record, update) == (record.status is StatusType.PENDING and record.owner == "o1")


def test_a_resume_restarts_the_timeout_but_keeps_an_inherited_deadline() -> None:
    base = WorkflowRecord(
        workflow_id="w",
        name="n",
        status=StatusType.CANCELLED,
        input=None,
        executor_id="x",
        application_version="v",
        created_at=0,
        updated_at=0,
        deadline_ms=500,
    )
    resumed = applied(base, plan(E.RESUME, 1000, owner="o", executor_id="x"))
    assert resumed.deadline_ms == 500  # inherited from a parent: kept
    own = applied(
        attrs.evolve(base, timeout_ms=300), plan(E.RESUME, 1000, owner="o", executor_id="x")
    )
    assert own.deadline_ms == 1300


@pytest.mark.parametrize("event", CLAIMING)
def test_a_claim_needs_an_owner_and_an_executor(event: WorkflowEvent) -> None:
    with pytest.raises(ValueError, match="needs owner"):
        plan(event, 1)
    with pytest.raises(ValueError, match="needs owner"):
        plan(event, 1, owner="o")


@pytest.mark.parametrize("event", STOPPING)
def test_a_stop_takes_no_owner(event: WorkflowEvent) -> None:
    with pytest.raises(ValueError, match="takes no owner"):
        plan(event, 1, owner="o", executor_id="x")


@pytest.mark.parametrize("event", FINISHING)
def test_plan_refuses_finishing_events(event: WorkflowEvent) -> None:
    with pytest.raises(ValueError, match="plan_finish"):
        plan(event, 1)


@pytest.mark.parametrize("event", CLAIMING + STOPPING)
def test_plan_finish_refuses_other_events(event: WorkflowEvent) -> None:
    with pytest.raises(ValueError, match="use plan"):
        plan_finish(event, owner="o", output=None, error=None, now_ms=1)


def test_an_outcome_matches_its_event() -> None:
    with pytest.raises(ValueError, match="COMPLETE records"):
        plan_finish(E.COMPLETE, owner="o", output=None, error="e", now_ms=1)
    with pytest.raises(ValueError, match="COMPLETE records"):
        plan_finish(E.FAIL, owner="o", output=None, error=None, now_ms=1)
    assert plan_finish(E.COMPLETE, owner="o", output=None, error=None, now_ms=1).output is None
    assert Attempts.KEEP is update_for(E.CANCEL, 1).attempts


@pytest.mark.parametrize("event", FINISHING)
def test_a_finish_records_the_outcome_and_releases_the_deduplication_id(
    event: WorkflowEvent,
) -> None:
    running = WorkflowRecord(
        workflow_id="w",
        name="n",
        status=StatusType.PENDING,
        input=None,
        executor_id="x",
        application_version="v",
        owner="o1",
        created_at=0,
        updated_at=0,
        deduplication_id="d",
    )
    update = update_for(event, 7)
    assert matches(running, update)
    done = applied(running, update)
    assert done.status is target(event)
    assert (done.output, done.error) == (update.output, update.error)
    assert done.deduplication_id is None
    assert done.owner == "o1"
    assert not matches(attrs.evolve(running, owner="o2"), update)


@pytest.mark.parametrize(("event", "attempts"), [(E.RECOVER, 8), (E.RESUME, 1), (E.CANCEL, 7)])
def test_attempts_count_recoveries_and_restart_at_a_resume(
    event: WorkflowEvent, attempts: int
) -> None:
    # Deterministic companion of the property above, so every branch is taken in each run.
    record = WorkflowRecord(
        workflow_id="w",
        name="n",
        status=StatusType.PENDING,
        input=None,
        executor_id="x",
        application_version="v",
        created_at=0,
        updated_at=0,
        attempts=7,
        owner="o1",
    )
    if event is E.RESUME:
        record = attrs.evolve(record, status=StatusType.CANCELLED)
    update = update_for(event, 10)
    assert matches(record, update)
    assert applied(record, update).attempts == attempts


def test_check_finish_accepts_only_an_outcome_fenced_on_that_fence() -> None:
    fence = Fence(workflow_id="wf", owner="o")
    check_finish(fence, plan_finish(E.COMPLETE, owner="o", output="1", error=None, now_ms=1))
    with pytest.raises(ValueError, match="does not record an outcome"):
        check_finish(fence, plan(E.CANCEL, 1))
    with pytest.raises(ValueError, match="another owner"):
        check_finish(fence, plan_finish(E.FAIL, owner="x", output=None, error="e", now_ms=1))
