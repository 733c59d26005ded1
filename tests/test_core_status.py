"""Properties of the workflow status machine (``durakit.core.status``).

The pair properties enumerate all (status, event) pairs: there are only 48, so checking
every one is both cheaper and stronger than sampling them. Hypothesis drives the event
*sequences*, where the space is too large to enumerate.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from durakit.core.status import (
    ABSORB,
    FINISHED,
    TERMINAL,
    TRANSITIONS,
    IllegalTransitionError,
    StatusType,
    WorkflowEvent,
    sources,
    target,
    targets_of,
    transition,
)

PAIRS = list(itertools.product(StatusType, WorkflowEvent))
INITIAL = (StatusType.PENDING, StatusType.ENQUEUED)


def legal_events(status: StatusType) -> list[WorkflowEvent]:
    return [e for e in WorkflowEvent if (status, e) in TRANSITIONS]


def outcome_of(status: StatusType, event: WorkflowEvent) -> StatusType | None:
    """The status after ``event``, or None if the event is illegal in ``status``."""
    try:
        return transition(status, event)
    except IllegalTransitionError:
        return None


@pytest.mark.parametrize(("status", "event"), PAIRS)
def test_every_pair_is_legal_or_raises_a_named_error(
    status: StatusType, event: WorkflowEvent
) -> None:
    if (status, event) in TRANSITIONS:
        outcome = TRANSITIONS[status, event]
        expected = status if outcome is ABSORB else outcome
        assert transition(status, event) is expected
    else:
        with pytest.raises(IllegalTransitionError) as info:
            transition(status, event)
        err = info.value
        assert err.status is status
        assert err.event is event
        assert status.value in str(err)
        assert event.value in str(err)
        # `from None`: the KeyError of the table lookup is an implementation detail.
        assert err.__cause__ is None
        assert err.__suppress_context__


def test_table_keys_and_outcomes_are_well_typed() -> None:
    # The table's keys really are (StatusType, WorkflowEvent) pairs and every outcome is a
    # status or ABSORB: a typo such as a bare string would slip past the lookup otherwise.
    for (status, event), outcome in TRANSITIONS.items():
        assert isinstance(status, StatusType)
        assert isinstance(event, WorkflowEvent)
        assert outcome is ABSORB or isinstance(outcome, StatusType)


@pytest.mark.parametrize("status", [s for s in StatusType if s in TERMINAL])
def test_terminal_statuses_absorb_every_legal_event(status: StatusType) -> None:
    events = legal_events(status)
    assert events, "a terminal status with no legal event would make cancel/resume raise"
    for event in events:
        assert TRANSITIONS[status, event] is ABSORB
        assert transition(status, event) is status


def test_terminal_is_exactly_the_set_of_statuses_that_absorb_everything() -> None:
    absorbing = {
        status
        for status in StatusType
        if all(transition(status, e) is status for e in legal_events(status))
    }
    assert absorbing == TERMINAL
    # The rule: SUCCESS and ERROR are terminal; CANCELLED and the dead letter resume.
    assert {StatusType.SUCCESS, StatusType.ERROR} == TERMINAL


def test_finished_statuses_are_the_ones_without_a_live_or_due_execution() -> None:
    assert TERMINAL <= FINISHED
    assert set(StatusType) - FINISHED == set(INITIAL)
    # Nothing finished can complete or fail: those come only from a running body.
    for status in FINISHED:
        for event in (WorkflowEvent.COMPLETE, WorkflowEvent.FAIL):
            assert outcome_of(status, event) in (None, status)


@pytest.mark.parametrize("event", list(WorkflowEvent))
def test_sources_are_the_statuses_where_the_event_writes(event: WorkflowEvent) -> None:
    expected = {
        status
        for status in StatusType
        if (status, event) in TRANSITIONS and TRANSITIONS[status, event] is not ABSORB
    }
    assert sources(event) == expected
    assert isinstance(sources(event), frozenset)


@pytest.mark.parametrize(("status", "event"), PAIRS)
def test_a_status_change_is_always_covered_by_sources(
    status: StatusType, event: WorkflowEvent
) -> None:
    after = outcome_of(status, event)
    if after is not None and after is not status:
        assert status in sources(event)
    if status not in sources(event):
        # Outside the sources, the event is illegal or a no-op: a store's
        # `UPDATE ... WHERE status IN sources` that matches nothing loses nothing.
        assert after in (None, status)


def test_the_only_explicit_self_transition_is_recover() -> None:
    # In sources yet not changing the status: the event still writes (RECOVER replaces
    # the owner and counts an attempt). Pinned so that a new one is a deliberate choice.
    self_writes = {
        (status, event)
        for status, event in PAIRS
        if status in sources(event) and transition(status, event) is status
    }
    assert self_writes == {(StatusType.PENDING, WorkflowEvent.RECOVER)}


@pytest.mark.parametrize("event", list(WorkflowEvent))
def test_each_event_has_a_single_target(event: WorkflowEvent) -> None:
    # Stores apply an event as `UPDATE ... SET status = target WHERE status IN sources`:
    # that is only right if every source goes to the same target.
    targets = {TRANSITIONS[status, event] for status in sources(event)}
    assert len(targets) == 1
    assert sources(event), f"{event} never writes: dead entry in WorkflowEvent"


@pytest.mark.parametrize("event", [WorkflowEvent.CANCEL, WorkflowEvent.TIMEOUT])
def test_stop_events_go_to_cancelled(event: WorkflowEvent) -> None:
    # The engine and the client write CANCELLED for both (timeouts are cancellations).
    assert {TRANSITIONS[status, event] for status in sources(event)} == {StatusType.CANCELLED}


@pytest.mark.parametrize(
    "event", [WorkflowEvent.CANCEL, WorkflowEvent.TIMEOUT, WorkflowEvent.RESUME]
)
def test_management_events_are_legal_in_every_status(event: WorkflowEvent) -> None:
    # cancel_workflow / resume_workflow and deadline expiry hit rows in any status,
    # concurrently with everything else; they must never raise.
    for status in StatusType:
        assert outcome_of(status, event) is not None


def test_every_status_is_reachable_from_creation() -> None:
    seen = set(INITIAL)
    frontier = list(INITIAL)
    while frontier:
        status = frontier.pop()
        for event in legal_events(status):
            after = transition(status, event)
            if after not in seen:
                seen.add(after)
                frontier.append(after)
    assert seen == set(StatusType)


@given(
    start=st.sampled_from(INITIAL),
    events=st.lists(st.sampled_from(list(WorkflowEvent)), max_size=40),
)
def test_random_event_sequences_never_leave_a_terminal_status(
    start: StatusType, events: list[WorkflowEvent]
) -> None:
    status = start
    reached_terminal: StatusType | None = None
    for event in events:
        if (status, event) not in TRANSITIONS:
            # Refused, naming itself; the core holds no state, so nothing changed.
            with pytest.raises(IllegalTransitionError) as info:
                transition(status, event)
            assert (info.value.status, info.value.event) == (status, event)
            continue
        after = transition(status, event)
        status = after
        if reached_terminal is not None:
            assert status is reached_terminal
        elif status in TERMINAL:
            reached_terminal = status


@given(
    start=st.sampled_from(INITIAL),
    events=st.lists(st.sampled_from(list(WorkflowEvent)), max_size=40),
)
def test_sequences_agree_with_the_store_rule(
    start: StatusType, events: list[WorkflowEvent]
) -> None:
    # Applying events the way a store does (compare-and-swap on sources, else leave the
    # row alone) gives the same status as the pure function, whenever the event is legal.
    status = start
    for event in events:
        after = outcome_of(status, event)
        if after is None:
            continue
        stored = TRANSITIONS[status, event] if status in sources(event) else status
        assert stored is after
        status = after


@pytest.mark.parametrize("event", list(WorkflowEvent))
def test_target_is_where_the_event_leads_from_every_source(event: WorkflowEvent) -> None:
    assert sources(event)
    for status in sources(event):
        assert transition(status, event) is target(event)


def test_a_table_giving_an_event_two_targets_or_none_is_refused() -> None:
    two = dict(TRANSITIONS)
    two[(StatusType.ERROR, WorkflowEvent.CANCEL)] = StatusType.PENDING
    with pytest.raises(ValueError, match="exactly one target"):
        targets_of(two)
    none = {k: v for k, v in TRANSITIONS.items() if k[1] is not WorkflowEvent.DEQUEUE}
    with pytest.raises(ValueError, match="exactly one target"):
        targets_of(none)
