"""The behavioural contract of ``SystemStore``: every test runs on memory, SQLite and Postgres.

Each test states one clause of a docstring in ``durakit.backends.protocol`` and checks it
with concrete values, including "nothing was written" after every refusal. The last
section holds what only the SQLite store promises (WAL, migrations, several processes).
"""

from __future__ import annotations

import itertools
import multiprocessing
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

from durakit.backends import SystemStore
from durakit.core.errors import InitializationError, QueueDeduplicatedError
from durakit.core.records import (
    InsertResult,
    NewWorkflow,
    VersionMove,
    WorkflowQuery,
    WorkflowRecord,
    WriteResult,
)
from durakit.core.status import StatusType, WorkflowEvent
from durakit.core.transitions import plan, plan_finish
from tests.records_support import OWNER, apply, fence, finish, new_wf, run_threads, step

StoreFactory = Callable[[], SystemStore]

PENDING = StatusType.PENDING
ENQUEUED = StatusType.ENQUEUED
SUCCESS = StatusType.SUCCESS
ERROR = StatusType.ERROR
CANCELLED = StatusType.CANCELLED
DEAD = StatusType.MAX_RECOVERY_ATTEMPTS_EXCEEDED
E = WorkflowEvent


def get(store: SystemStore, workflow_id: str = "wf") -> WorkflowRecord:
    rec = store.get_workflow(workflow_id)
    assert rec is not None
    return rec


# -- insert_workflow / get_workflow ------------------------------------------------


def test_insert_creates_a_pending_row_with_armed_deadline(store: SystemStore) -> None:
    result = store.insert_workflow(new_wf(timeout_ms=500))
    expected = WorkflowRecord(
        workflow_id="wf",
        name="checkout",
        status=PENDING,
        input='{"n": 1}',
        executor_id="exec-a",
        application_version="v1",
        owner=OWNER,
        created_at=1_000,
        updated_at=1_000,
        attempts=1,
        timeout_ms=500,
        deadline_ms=1_500,
        started_at=1_000,
    )
    assert result == InsertResult(created=True, record=expected)
    assert store.get_workflow("wf") == expected


def test_insert_enqueued_row_is_not_started_and_has_no_deadline(store: SystemStore) -> None:
    result = store.insert_workflow(new_wf(status=ENQUEUED, timeout_ms=500, queue_name="q"))
    assert result.created
    assert (result.record.started_at, result.record.deadline_ms) == (None, None)
    assert get(store) == result.record


def test_insert_keeps_an_explicit_deadline(store: SystemStore) -> None:
    rec = store.insert_workflow(new_wf(timeout_ms=500, deadline_ms=777)).record
    assert rec.deadline_ms == 777
    assert get(store).deadline_ms == 777


def test_insert_twice_returns_the_stored_row_unchanged(store: SystemStore) -> None:
    first = store.insert_workflow(new_wf(input="first")).record
    second = store.insert_workflow(new_wf(name="other", input="second", created_at=9_999))
    assert second == InsertResult(created=False, record=first)
    assert get(store).input == "first"


def test_insert_again_returns_the_current_row_not_the_original(store: SystemStore) -> None:
    store.insert_workflow(new_wf(deduplication_id="d", queue_name="q"))
    assert finish(store, fence(), SUCCESS, "out", None, 2_000) is WriteResult.OK
    again = store.insert_workflow(new_wf(deduplication_id="d", queue_name="q"))
    assert not again.created
    assert (again.record.status, again.record.output) == (SUCCESS, "out")


def test_every_field_round_trips(store: SystemStore) -> None:
    new = NewWorkflow(
        workflow_id="wf-☃",
        name="naïve name",
        status=ENQUEUED,
        input='{"emoji": "🎉", "quote": "\'"}',
        executor_id="exec-b",
        application_version="v7",
        application_id="app-1",
        owner="tok",
        created_at=1_700_000_000_123,
        queue_name="queue",
        deduplication_id="dedup",
        priority=-3,
        timeout_ms=60_000,
        deadline_ms=1_700_000_060_000,
        authenticated_user="alice",
        assumed_role="admin",
        authenticated_roles=("admin", "user", '"quoted"'),
        parent_workflow_id="parent",
    )
    store.insert_workflow(new)
    assert get(store, "wf-☃") == WorkflowRecord(
        workflow_id="wf-☃",
        name="naïve name",
        status=ENQUEUED,
        input='{"emoji": "🎉", "quote": "\'"}',
        executor_id="exec-b",
        application_version="v7",
        application_id="app-1",
        owner="tok",
        created_at=1_700_000_000_123,
        updated_at=1_700_000_000_123,
        queue_name="queue",
        deduplication_id="dedup",
        priority=-3,
        timeout_ms=60_000,
        deadline_ms=1_700_000_060_000,
        authenticated_user="alice",
        assumed_role="admin",
        authenticated_roles=("admin", "user", '"quoted"'),
        parent_workflow_id="parent",
    )


@pytest.mark.parametrize("roles", [None, (), ("one",)])
def test_authenticated_roles_keep_none_empty_and_values_apart(
    store: SystemStore, roles: tuple[str, ...] | None
) -> None:
    store.insert_workflow(new_wf(authenticated_roles=roles))
    assert get(store).authenticated_roles == roles


def test_get_missing_workflow_is_none(store: SystemStore) -> None:
    assert store.get_workflow("missing") is None


def test_dedup_conflict_raises_and_writes_nothing(store: SystemStore) -> None:
    store.insert_workflow(new_wf("a", status=ENQUEUED, queue_name="q", deduplication_id="d"))
    with pytest.raises(QueueDeduplicatedError) as info:
        store.insert_workflow(new_wf("b", status=ENQUEUED, queue_name="q", deduplication_id="d"))
    assert (info.value.queue_name, info.value.deduplication_id) == ("q", "d")
    assert store.get_workflow("b") is None
    # Same ID again is not a conflict, and other queues have their own namespace.
    again = new_wf("a", status=ENQUEUED, queue_name="q", deduplication_id="d")
    assert not store.insert_workflow(again).created
    assert store.insert_workflow(new_wf("c", queue_name="q2", deduplication_id="d")).created


def test_concurrent_inserts_of_one_id_create_exactly_once(store: SystemStore) -> None:
    results: dict[int, InsertResult] = {}

    def insert(i: int) -> None:
        results[i] = store.insert_workflow(new_wf("race", input=f"in-{i}"))

    run_threads(8, insert)
    winners = [i for i, r in results.items() if r.created]
    assert len(winners) == 1
    stored = get(store, "race")
    assert stored.input == f"in-{winners[0]}"
    assert all(r.record == stored for r in results.values())


# -- list_workflows ----------------------------------------------------------------

LISTED = ["order-1", "ORDER-3", "order-2", "order_x", "refund-1"]  # created_at, then ID


@pytest.fixture
def listed(store: SystemStore) -> SystemStore:
    rows = [
        new_wf("order-1", authenticated_user="alice", executor_id="e1", created_at=100),
        new_wf(
            "order-2",
            status=ENQUEUED,
            authenticated_user="bob",
            executor_id="e2",
            queue_name="q1",
            created_at=200,
        ),
        new_wf(
            "ORDER-3",
            authenticated_user="alice",
            application_version="v2",
            executor_id="e1",
            queue_name="q2",
            created_at=200,
        ),
        new_wf(
            "order_x",
            name="refund",
            status=ENQUEUED,
            application_version="v2",
            executor_id="e2",
            queue_name="q1",
            created_at=300,
        ),
        new_wf(
            "refund-1", name="refund", authenticated_user="bob", executor_id="e3", created_at=400
        ),
    ]
    for row in rows:
        assert store.insert_workflow(attrs.evolve(row, input=f"in:{row.workflow_id}")).created
    assert finish(store, fence("ORDER-3"), SUCCESS, "out3", None, 250) is WriteResult.OK
    return store


def ids(records: list[WorkflowRecord]) -> list[str]:
    return [r.workflow_id for r in records]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (WorkflowQuery(), LISTED),
        (WorkflowQuery(workflow_ids=("refund-1", "order-2", "nope")), ["order-2", "refund-1"]),
        (WorkflowQuery(workflow_ids=()), []),
        (WorkflowQuery(statuses=(ENQUEUED,)), ["order-2", "order_x"]),
        (WorkflowQuery(statuses=(PENDING, SUCCESS)), ["order-1", "ORDER-3", "refund-1"]),
        (WorkflowQuery(statuses=(CANCELLED,)), []),
        (WorkflowQuery(name="refund"), ["order_x", "refund-1"]),
        (WorkflowQuery(user="alice"), ["order-1", "ORDER-3"]),
        (WorkflowQuery(app_version="v2"), ["ORDER-3", "order_x"]),
        (WorkflowQuery(executor_ids=("e1", "e3")), ["order-1", "ORDER-3", "refund-1"]),
        (WorkflowQuery(workflow_id_prefix="order"), ["order-1", "order-2", "order_x"]),
        # "_" and case are literal, not LIKE wildcards / case-insensitive matches.
        (WorkflowQuery(workflow_id_prefix="order_"), ["order_x"]),
        (WorkflowQuery(workflow_id_prefix="ORDER"), ["ORDER-3"]),
        (WorkflowQuery(workflow_id_prefix="order%"), []),
        (WorkflowQuery(workflow_id_prefix=""), LISTED),
        (WorkflowQuery(queue_name="q1"), ["order-2", "order_x"]),
        (WorkflowQuery(queues_only=True), ["ORDER-3", "order-2", "order_x"]),
        (WorkflowQuery(start_time=200), ["ORDER-3", "order-2", "order_x", "refund-1"]),
        (WorkflowQuery(end_time=200), ["order-1", "ORDER-3", "order-2"]),
        (WorkflowQuery(start_time=200, end_time=300), ["ORDER-3", "order-2", "order_x"]),
        (WorkflowQuery(name="checkout", user="alice", app_version="v2"), ["ORDER-3"]),
        (WorkflowQuery(queue_name="q1", statuses=(PENDING,)), []),
    ],
)
def test_list_filters(listed: SystemStore, query: WorkflowQuery, expected: list[str]) -> None:
    assert ids(listed.list_workflows(query)) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (WorkflowQuery(sort_desc=True), LISTED[::-1]),
        (WorkflowQuery(limit=2), ["order-1", "ORDER-3"]),
        (WorkflowQuery(limit=0), []),
        (WorkflowQuery(offset=1, limit=2), ["ORDER-3", "order-2"]),
        (WorkflowQuery(offset=3), ["order_x", "refund-1"]),
        (WorkflowQuery(offset=10), []),
        (WorkflowQuery(sort_desc=True, limit=2), ["refund-1", "order_x"]),
        (WorkflowQuery(sort_desc=True, offset=1, limit=2), ["order_x", "order-2"]),
        (WorkflowQuery(statuses=(PENDING, ENQUEUED), sort_desc=True, limit=3),
         ["refund-1", "order_x", "order-2"]),
    ],
)  # fmt: skip
def test_list_sort_limit_offset(
    listed: SystemStore, query: WorkflowQuery, expected: list[str]
) -> None:
    assert ids(listed.list_workflows(query)) == expected


def test_list_returns_full_records_by_default(listed: SystemStore) -> None:
    records = listed.list_workflows(WorkflowQuery())
    assert records == [get(listed, i) for i in LISTED]
    assert records[1].output == "out3"
    assert records[0].input == "in:order-1"


def test_list_can_leave_payloads_out(listed: SystemStore) -> None:
    assert finish(listed, fence("refund-1"), ERROR, None, "boom", 500) is WriteResult.OK
    full = {r.workflow_id: r for r in listed.list_workflows(WorkflowQuery())}
    assert full["refund-1"].error == "boom"

    no_input = listed.list_workflows(WorkflowQuery(load_input=False))
    assert no_input == [attrs.evolve(full[i], input=None) for i in LISTED]

    no_output = listed.list_workflows(WorkflowQuery(load_output=False))
    assert no_output == [attrs.evolve(full[i], output=None, error=None) for i in LISTED]

    neither = listed.list_workflows(WorkflowQuery(load_input=False, load_output=False))
    assert neither == [attrs.evolve(full[i], input=None, output=None, error=None) for i in LISTED]


# -- finish_workflow ---------------------------------------------------------------


def test_finish_records_outcome_and_releases_dedup(store: SystemStore) -> None:
    store.insert_workflow(new_wf(queue_name="q", deduplication_id="d"))
    assert finish(store, fence(), SUCCESS, '"ok"', None, 2_000) is WriteResult.OK
    rec = get(store)
    assert (rec.status, rec.output, rec.error) == (SUCCESS, '"ok"', None)
    assert (rec.updated_at, rec.deduplication_id, rec.queue_name) == (2_000, None, "q")
    # Released: another workflow may take the deduplication ID now.
    assert store.insert_workflow(new_wf("wf-2", queue_name="q", deduplication_id="d")).created


def test_finish_with_error(store: SystemStore) -> None:
    store.insert_workflow(new_wf())
    assert finish(store, fence(), ERROR, None, '{"type": "E"}', 2_000) is WriteResult.OK
    rec = get(store)
    assert (rec.status, rec.output, rec.error) == (ERROR, None, '{"type": "E"}')


def test_finish_by_a_stale_owner_is_refused(store: SystemStore) -> None:
    before = store.insert_workflow(new_wf()).record
    assert finish(store, fence(owner="zombie"), SUCCESS, "x", None, 2) is (WriteResult.NOT_OWNER)
    assert get(store) == before


def test_finish_after_cancel_is_refused(store: SystemStore) -> None:
    store.insert_workflow(new_wf())
    cancelled = apply(store, "wf", E.CANCEL, 2_000)
    assert finish(store, fence(), SUCCESS, "x", None, 3_000) is WriteResult.CANCELLED
    assert get(store) == cancelled
    assert get(store).status is CANCELLED


def test_finish_twice_is_refused_and_keeps_the_first_outcome(store: SystemStore) -> None:
    store.insert_workflow(new_wf())
    assert finish(store, fence(), SUCCESS, "first", None, 2_000) is WriteResult.OK
    assert finish(store, fence(), ERROR, None, "late", 3_000) is WriteResult.NOT_PENDING
    rec = get(store)
    assert (rec.status, rec.output, rec.error, rec.updated_at) == (SUCCESS, "first", None, 2_000)


def test_finish_of_enqueued_or_missing_workflow_is_refused(store: SystemStore) -> None:
    before = store.insert_workflow(new_wf(status=ENQUEUED)).record
    assert finish(store, fence(), SUCCESS, "x", None, 2) is WriteResult.NOT_PENDING
    assert get(store) == before
    assert finish(store, fence("nope"), SUCCESS, "x", None, 2) is WriteResult.NOT_PENDING
    assert store.get_workflow("nope") is None


def test_finish_racing_cancel_has_exactly_one_winner(store: SystemStore) -> None:
    count = 20
    for n in range(count):
        store.insert_workflow(new_wf(f"wf-{n}"))
    finished: dict[int, WriteResult] = {}
    cancelled: dict[int, WorkflowRecord | None] = {}

    def race(i: int) -> None:
        for n in range(count):
            if i == 0:
                finished[n] = finish(store, fence(f"wf-{n}"), SUCCESS, "x", None, 5)
            else:
                cancelled[n] = apply(store, f"wf-{n}", E.CANCEL, 6)

    run_threads(2, race)
    for n in range(count):
        status = get(store, f"wf-{n}").status
        if finished[n] is WriteResult.OK:
            assert (status, cancelled[n]) == (SUCCESS, None)
        else:
            assert finished[n] is WriteResult.CANCELLED
            assert cancelled[n] is not None
            assert status is CANCELLED


# -- transition_workflow -----------------------------------------------------------


def test_transition_with_unmatched_status_writes_nothing(store: SystemStore) -> None:
    before = store.insert_workflow(new_wf()).record
    assert apply(store, "wf", E.DEQUEUE, 5_000, owner="thief") is None  # only from ENQUEUED
    assert get(store) == before
    nowhere = attrs.evolve(plan(E.CANCEL, 5), from_statuses=frozenset())
    assert store.transition_workflow("wf", nowhere) is None
    assert get(store) == before


def test_fenced_transition_applies_only_for_its_owner(store: SystemStore) -> None:
    before = store.insert_workflow(new_wf()).record
    stale = attrs.evolve(plan(E.CANCEL, 5), fence_owner="zombie")
    assert store.transition_workflow("wf", stale) is None
    assert get(store) == before
    mine = attrs.evolve(plan(E.CANCEL, 6), fence_owner=OWNER)
    assert store.transition_workflow("wf", mine) == attrs.evolve(
        before, status=CANCELLED, updated_at=6
    )


def test_transition_of_missing_workflow_is_none(store: SystemStore) -> None:
    assert apply(store, "nope", E.CANCEL, 1) is None
    assert store.get_workflow("nope") is None


def test_transition_returns_and_stores_the_updated_row(store: SystemStore) -> None:
    before = store.insert_workflow(new_wf()).record
    moved = apply(store, "wf", E.CANCEL, 2_000)
    assert moved == attrs.evolve(before, status=CANCELLED, updated_at=2_000)
    assert get(store) == moved


def test_recovery_with_new_owner_fences_out_the_old_owner(store: SystemStore) -> None:
    store.insert_workflow(new_wf(executor_id="dead-exec"))
    moved = apply(store, "wf", E.RECOVER, 2_000, owner="owner-2", executor_id="live-exec")
    assert moved is not None
    assert (moved.owner, moved.executor_id, moved.attempts) == ("owner-2", "live-exec", 2)
    # A recovery is not a (re)start: started_at and the deadline stay.
    assert (moved.started_at, moved.updated_at) == (1_000, 2_000)
    assert store.record_step(fence(owner=OWNER), step(0)) is WriteResult.NOT_OWNER
    assert finish(store, fence(owner=OWNER), SUCCESS, "x", None, 3) is WriteResult.NOT_OWNER
    assert store.record_step(fence(owner="owner-2"), step(0)) is WriteResult.OK
    assert [s.step_id for s in store.load_steps("wf")] == [0]


def test_a_stopping_event_keeps_owner_executor_and_attempts(store: SystemStore) -> None:
    store.insert_workflow(new_wf())
    moved = apply(store, "wf", E.TIMEOUT, 2_000)
    assert moved is not None
    assert (moved.status, moved.owner, moved.executor_id, moved.attempts) == (
        CANCELLED,
        OWNER,
        "exec-a",
        1,
    )


def test_recover_counts_attempts_and_resume_resets_them(store: SystemStore) -> None:
    store.insert_workflow(new_wf())
    for now in (2, 3, 4):
        apply(store, "wf", E.RECOVER, now)
    assert get(store).attempts == 4
    dead = apply(store, "wf", E.DEAD_LETTER, 5)
    assert dead is not None
    assert (dead.status, dead.attempts) == (DEAD, 4)
    resumed = apply(store, "wf", E.RESUME, 6)
    assert resumed is not None
    assert (resumed.status, resumed.attempts) == (PENDING, 1)
    assert get(store).attempts == 1


def test_dequeue_starts_the_workflow_and_arms_its_deadline(store: SystemStore) -> None:
    store.insert_workflow(new_wf(status=ENQUEUED, queue_name="q", timeout_ms=300, owner=None))
    moved = apply(store, "wf", E.DEQUEUE, 5_000, owner="runner", executor_id="exec-b")
    assert moved is not None
    assert (moved.status, moved.started_at, moved.deadline_ms) == (PENDING, 5_000, 5_300)
    assert (moved.owner, moved.executor_id, moved.queue_name) == ("runner", "exec-b", "q")
    assert get(store) == moved


def test_dequeue_without_timeout_arms_no_deadline(store: SystemStore) -> None:
    store.insert_workflow(new_wf(status=ENQUEUED))
    moved = apply(store, "wf", E.DEQUEUE, 5_000)
    assert moved is not None
    assert (moved.started_at, moved.deadline_ms) == (5_000, None)


def test_resume_restarts_and_rearms_the_full_timeout(store: SystemStore) -> None:
    store.insert_workflow(new_wf(timeout_ms=100))
    apply(store, "wf", E.CANCEL, 1_200)
    resumed = apply(store, "wf", E.RESUME, 9_000, owner="owner-2")
    assert resumed is not None
    assert (resumed.started_at, resumed.deadline_ms, resumed.owner) == (9_000, 9_100, "owner-2")


def test_resume_keeps_an_inherited_deadline_without_own_timeout(store: SystemStore) -> None:
    store.insert_workflow(new_wf(deadline_ms=1_100))
    apply(store, "wf", E.CANCEL, 1_200)
    resumed = apply(store, "wf", E.RESUME, 9_000)
    assert resumed is not None
    assert (resumed.started_at, resumed.deadline_ms) == (9_000, 1_100)


@pytest.mark.parametrize("event", [E.CANCEL, E.TIMEOUT, E.DEAD_LETTER, E.COMPLETE, E.FAIL])
def test_an_event_that_finishes_releases_dedup(store: SystemStore, event: E) -> None:
    store.insert_workflow(new_wf(queue_name="q", deduplication_id="d"))
    if event in {E.COMPLETE, E.FAIL}:
        status = SUCCESS if event is E.COMPLETE else ERROR
        output, error = ("x", None) if event is E.COMPLETE else (None, "e")
        assert finish(store, fence(), status, output, error, 2) is WriteResult.OK
    else:
        assert apply(store, "wf", event, 2) is not None
    assert get(store).deduplication_id is None
    assert store.insert_workflow(new_wf("wf-2", queue_name="q", deduplication_id="d")).created


def test_dequeue_keeps_dedup(store: SystemStore) -> None:
    store.insert_workflow(new_wf(status=ENQUEUED, queue_name="q", deduplication_id="d"))
    moved = apply(store, "wf", E.DEQUEUE, 2)
    assert moved is not None
    assert moved.deduplication_id == "d"


def test_concurrent_claims_admit_exactly_one(store: SystemStore) -> None:
    store.insert_workflow(new_wf(status=ENQUEUED, owner=None))
    claims: dict[int, WorkflowRecord | None] = {}

    def claim(i: int) -> None:
        claims[i] = apply(store, "wf", E.DEQUEUE, 10 + i, owner=f"runner-{i}")

    run_threads(8, claim)
    won = [i for i, rec in claims.items() if rec is not None]
    assert len(won) == 1
    assert get(store).owner == f"runner-{won[0]}"
    assert get(store).started_at == 10 + won[0]


def test_finish_refuses_an_update_the_core_did_not_plan_for_that_fence(
    store: SystemStore,
) -> None:
    before = store.insert_workflow(new_wf()).record
    with pytest.raises(ValueError, match="does not record an outcome"):
        store.finish_workflow(fence(), plan(E.CANCEL, 2))
    other = plan_finish(E.COMPLETE, owner="someone-else", output="x", error=None, now_ms=2)
    with pytest.raises(ValueError, match="another owner"):
        store.finish_workflow(fence(), other)
    assert get(store) == before


# -- steps -------------------------------------------------------------------------


def test_steps_round_trip_and_load_in_step_order(store: SystemStore) -> None:
    store.insert_workflow(new_wf())
    recorded = [
        step(2, "third", error='{"type": "ValueError"}', started_at=30, completed_at=31),
        step(0, "first", output='"a"', started_at=10, completed_at=11),
        step(10, "child", output='"wf-10"', child_workflow_id="wf-10"),
        step(1, "second", output=None),
    ]
    for s in recorded:
        assert store.record_step(fence(), s) is WriteResult.OK
    assert store.load_steps("wf") == sorted(recorded, key=lambda s: s.step_id)


def test_load_steps_of_unknown_workflow_is_empty(store: SystemStore) -> None:
    assert store.load_steps("nope") == []


def test_duplicate_step_is_refused_and_not_overwritten(store: SystemStore) -> None:
    store.insert_workflow(new_wf())
    assert store.record_step(fence(), step(0, "a", output="1")) is WriteResult.OK
    assert store.record_step(fence(), step(0, "b", output="2")) is WriteResult.DUPLICATE
    assert store.load_steps("wf") == [step(0, "a", output="1")]


def test_steps_are_per_workflow(store: SystemStore) -> None:
    store.insert_workflow(new_wf("a"))
    store.insert_workflow(new_wf("b"))
    assert store.record_step(fence("a"), step(0, "in-a")) is WriteResult.OK
    assert store.record_step(fence("b"), step(0, "in-b")) is WriteResult.OK
    assert store.load_steps("a") == [step(0, "in-a")]
    assert store.load_steps("b") == [step(0, "in-b")]


def test_record_step_is_fenced(store: SystemStore) -> None:
    store.insert_workflow(new_wf())
    store.insert_workflow(new_wf("queued", status=ENQUEUED))
    assert store.record_step(fence(owner="zombie"), step(0)) is WriteResult.NOT_OWNER
    assert store.record_step(fence("queued"), step(0)) is WriteResult.NOT_PENDING
    assert store.record_step(fence("nope"), step(0)) is WriteResult.NOT_PENDING
    apply(store, "wf", E.CANCEL, 2)
    assert store.record_step(fence(), step(0)) is WriteResult.CANCELLED
    for wf in ("wf", "queued", "nope"):
        assert store.load_steps(wf) == []


def test_record_step_while_cancelled_is_fenced_on_the_owner(store: SystemStore) -> None:
    """``while_cancelled``: a CANCELLED row that still carries the writer's token takes
    the step; every other refusal stays what it was."""
    store.insert_workflow(new_wf())
    store.insert_workflow(new_wf("queued", status=ENQUEUED))
    kept = {"while_cancelled": True}
    assert store.record_step(fence(), step(0), **kept) is WriteResult.OK  # PENDING: as usual
    assert store.record_step(fence(owner="zombie"), step(1), **kept) is WriteResult.NOT_OWNER
    assert store.record_step(fence("queued"), step(0), **kept) is WriteResult.NOT_PENDING
    assert store.record_step(fence("nope"), step(0), **kept) is WriteResult.NOT_PENDING
    apply(store, "wf", E.CANCEL, 2)
    assert store.record_step(fence(), step(1), **kept) is WriteResult.RECORDED_WHILE_CANCELLED
    assert store.record_step(fence(), step(1, "again"), **kept) is WriteResult.DUPLICATE
    assert store.record_step(fence(owner="zombie"), step(2), **kept) is WriteResult.CANCELLED
    assert store.record_step(fence(), step(2)) is WriteResult.CANCELLED  # without the flag
    assert store.load_steps("wf") == [step(0), step(1)]
    assert get(store).status is CANCELLED  # the write changed no status
    for wf in ("queued", "nope"):
        assert store.load_steps(wf) == []


def test_record_step_after_finish_is_refused(store: SystemStore) -> None:
    store.insert_workflow(new_wf())
    finish(store, fence(), SUCCESS, "x", None, 2)
    assert store.record_step(fence(), step(0)) is WriteResult.NOT_PENDING
    assert store.load_steps("wf") == []


def test_concurrent_checkpoints_of_one_step_record_once(store: SystemStore) -> None:
    store.insert_workflow(new_wf())
    results: dict[int, WriteResult] = {}

    def record(i: int) -> None:
        results[i] = store.record_step(fence(), step(0, output=f"from-{i}"))

    run_threads(8, record)
    won = [i for i, r in results.items() if r is WriteResult.OK]
    assert len(won) == 1
    assert sorted(r.value for r in results.values()) == ["DUPLICATE"] * 7 + ["OK"]
    assert store.load_steps("wf") == [step(0, output=f"from-{won[0]}")]


def test_copy_steps_copies_below_and_keeps_existing(store: SystemStore) -> None:
    store.insert_workflow(new_wf("src"))
    store.insert_workflow(new_wf("dst"))
    source = [step(i, f"s{i}", output=str(i), started_at=i, completed_at=i + 1) for i in range(4)]
    for s in source:
        store.record_step(fence("src"), s)
    store.record_step(fence("dst"), step(1, "mine"))
    assert store.copy_steps("src", "dst", 3) == 2
    assert store.load_steps("dst") == [source[0], step(1, "mine"), source[2]]
    assert store.load_steps("src") == source
    assert store.copy_steps("src", "dst", 3) == 0
    assert store.copy_steps("src", "fresh", 0) == 0
    assert store.load_steps("fresh") == []


# -- messages ----------------------------------------------------------------------


def recv(
    store: SystemStore, step_id: int, topic: str | None = None, owner: str = OWNER
) -> tuple[WriteResult, str | None]:
    return store.receive_message(fence(owner=owner), step_id, "recv", topic, 5_000 + step_id)


def test_messages_are_fifo_per_topic(store: SystemStore) -> None:
    store.insert_workflow(new_wf())
    sends = [("a", "a1"), (None, "n1"), ("a", "a2"), ("", "e1"), (None, "n2"), ("a", "a3")]
    for i, (topic, payload) in enumerate(sends):
        assert store.send_message("wf", topic, payload, 100 + i) is WriteResult.OK
    assert recv(store, 0, "a") == (WriteResult.OK, "a1")
    assert recv(store, 1, None) == (WriteResult.OK, "n1")
    assert recv(store, 2, "a") == (WriteResult.OK, "a2")
    assert recv(store, 3, None) == (WriteResult.OK, "n2")
    # The empty-string topic is a topic of its own, not the default (None) topic.
    assert recv(store, 4, None) == (WriteResult.OK, None)
    assert recv(store, 5, "") == (WriteResult.OK, "e1")
    assert recv(store, 6, "a") == (WriteResult.OK, "a3")
    assert recv(store, 7, "a") == (WriteResult.OK, None)


def test_receive_records_the_message_as_its_step(store: SystemStore) -> None:
    store.insert_workflow(new_wf())
    store.send_message("wf", "t", '{"hi": 1}', 100)
    assert store.receive_message(fence(), 3, "recv:t", "t", 4_000) == (WriteResult.OK, '{"hi": 1}')
    assert store.load_steps("wf") == [
        step(3, "recv:t", output='{"hi": 1}', started_at=4_000, completed_at=4_000)
    ]


def test_receive_on_empty_topic_writes_nothing(store: SystemStore) -> None:
    store.insert_workflow(new_wf())
    store.send_message("wf", "other", "x", 100)
    assert recv(store, 0, "t") == (WriteResult.OK, None)
    assert store.load_steps("wf") == []
    # The step ID is still free, and the other topic's message still waits.
    assert recv(store, 0, "other") == (WriteResult.OK, "x")


def test_messages_are_per_destination(store: SystemStore) -> None:
    store.insert_workflow(new_wf("wf"))
    store.insert_workflow(new_wf("other"))
    store.send_message("other", None, "for-other", 1)
    assert recv(store, 0) == (WriteResult.OK, None)
    assert store.receive_message(fence("other"), 0, "recv", None, 2) == (
        WriteResult.OK,
        "for-other",
    )


def test_receive_is_fenced_and_consumes_nothing_when_refused(store: SystemStore) -> None:
    store.insert_workflow(new_wf())
    store.send_message("wf", None, "m", 1)
    assert recv(store, 0, owner="zombie") == (WriteResult.NOT_OWNER, None)
    assert store.receive_message(fence("nope"), 0, "r", None, 2) == (WriteResult.NOT_PENDING, None)
    assert store.load_steps("wf") == []
    assert recv(store, 0) == (WriteResult.OK, "m")


def test_receive_after_cancel_is_refused(store: SystemStore) -> None:
    store.insert_workflow(new_wf())
    store.send_message("wf", None, "m", 1)
    apply(store, "wf", E.CANCEL, 2)
    assert recv(store, 0) == (WriteResult.CANCELLED, None)
    assert store.load_steps("wf") == []


def test_receive_into_a_recorded_step_consumes_nothing(store: SystemStore) -> None:
    store.insert_workflow(new_wf())
    store.record_step(fence(), step(0, "earlier", output="kept"))
    store.send_message("wf", None, "m", 1)
    assert recv(store, 0) == (WriteResult.DUPLICATE, None)
    assert store.load_steps("wf") == [step(0, "earlier", output="kept")]
    assert recv(store, 1) == (WriteResult.OK, "m")


def test_send_to_missing_destination_writes_nothing(store: SystemStore) -> None:
    store.insert_workflow(new_wf("sender"))
    result = store.send_message(
        "nope", None, "m", 1, sender=fence("sender"), sender_step=step(0, "send")
    )
    assert result is WriteResult.NOT_PENDING
    assert store.send_message("nope", None, "m", 1) is WriteResult.NOT_PENDING
    assert store.load_steps("sender") == []
    # Had anything been queued, the workflow created later under that ID would see it.
    store.insert_workflow(new_wf("nope"))
    assert store.receive_message(fence("nope"), 0, "r", None, 2) == (WriteResult.OK, None)


def test_send_to_a_finished_workflow_is_accepted(store: SystemStore) -> None:
    store.insert_workflow(new_wf())
    finish(store, fence(), SUCCESS, "x", None, 2)
    assert store.send_message("wf", None, "late", 3) is WriteResult.OK


def test_send_from_a_workflow_records_its_step_once(store: SystemStore) -> None:
    store.insert_workflow(new_wf("sender"))
    store.insert_workflow(new_wf("dest"))
    send_step = step(4, "send", started_at=7, completed_at=7)

    def send(payload: str) -> WriteResult:
        return store.send_message(
            "dest", "t", payload, 7, sender=fence("sender"), sender_step=send_step
        )

    assert send("first") is WriteResult.OK
    assert store.load_steps("sender") == [send_step]
    assert send("replayed") is WriteResult.DUPLICATE
    assert store.receive_message(fence("dest"), 0, "r", "t", 8) == (WriteResult.OK, "first")
    assert store.receive_message(fence("dest"), 1, "r", "t", 9) == (WriteResult.OK, None)


def test_send_from_a_fenced_out_sender_sends_nothing(store: SystemStore) -> None:
    store.insert_workflow(new_wf("sender"))
    store.insert_workflow(new_wf("dest"))
    result = store.send_message(
        "dest", None, "m", 1, sender=fence("sender", "zombie"), sender_step=step(0, "send")
    )
    assert result is WriteResult.NOT_OWNER
    apply(store, "sender", E.CANCEL, 2)
    result = store.send_message(
        "dest", None, "m", 3, sender=fence("sender"), sender_step=step(0, "send")
    )
    assert result is WriteResult.CANCELLED
    assert store.load_steps("sender") == []
    assert store.receive_message(fence("dest"), 0, "r", None, 4) == (WriteResult.OK, None)


def test_concurrent_receivers_consume_each_message_once(store: SystemStore) -> None:
    store.insert_workflow(new_wf())
    total = 40
    for n in range(total):
        store.send_message("wf", "t", f"{n:03}", n)
    step_ids = itertools.count()
    lock = threading.Lock()
    got: dict[int, list[str]] = {}

    def drain(i: int) -> None:
        mine: list[str] = []
        while True:
            with lock:
                step_id = next(step_ids)
            result, payload = store.receive_message(fence(), step_id, "recv", "t", 1)
            assert result is WriteResult.OK
            if payload is None:
                break
            mine.append(payload)
        got[i] = mine

    run_threads(4, drain)
    everything = [p for mine in got.values() for p in mine]
    assert sorted(everything) == [f"{n:03}" for n in range(total)]
    # FIFO: each receiver saw the queue's head move forward only.
    assert all(mine == sorted(mine) for mine in got.values())
    steps = store.load_steps("wf")
    assert sorted(s.output or "" for s in steps) == sorted(everything)


# -- events ------------------------------------------------------------------------


def test_event_latest_value_wins(store: SystemStore) -> None:
    store.insert_workflow(new_wf())
    assert store.get_event("wf", "k") is None
    assert store.set_event(fence(), step(0, "set"), "k", "1", 10) is WriteResult.OK
    assert store.set_event(fence(), step(1, "set"), "k", "2", 11) is WriteResult.OK
    assert store.set_event(fence(), step(2, "set"), "other", "x", 12) is WriteResult.OK
    assert (store.get_event("wf", "k"), store.get_event("wf", "other")) == ("2", "x")
    assert store.load_steps("wf") == [step(0, "set"), step(1, "set"), step(2, "set")]


def test_events_are_per_workflow(store: SystemStore) -> None:
    store.insert_workflow(new_wf("a"))
    store.insert_workflow(new_wf("b"))
    store.set_event(fence("a"), step(0), "k", "from-a", 1)
    assert store.get_event("b", "k") is None
    assert store.get_event("a", "k") == "from-a"


def test_set_event_is_fenced(store: SystemStore) -> None:
    store.insert_workflow(new_wf())
    store.set_event(fence(), step(0, "set"), "k", "kept", 1)
    assert store.set_event(fence(owner="zombie"), step(1), "k", "stale", 2) is (
        WriteResult.NOT_OWNER
    )
    assert store.set_event(fence("nope"), step(1), "k", "stale", 2) is WriteResult.NOT_PENDING
    assert store.get_event("nope", "k") is None
    apply(store, "wf", E.CANCEL, 3)
    assert store.set_event(fence(), step(1), "k", "stale", 4) is WriteResult.CANCELLED
    assert store.get_event("wf", "k") == "kept"
    assert store.load_steps("wf") == [step(0, "set")]


def test_set_event_with_a_recorded_step_changes_nothing(store: SystemStore) -> None:
    store.insert_workflow(new_wf())
    store.set_event(fence(), step(0, "set"), "k", "first", 1)
    assert store.set_event(fence(), step(0, "set"), "k", "replayed", 2) is WriteResult.DUPLICATE
    assert store.get_event("wf", "k") == "first"


# -- lifecycle and durability ------------------------------------------------------


def test_everything_survives_close_and_reopen(store_factory: StoreFactory) -> None:
    first = store_factory()
    first.insert_workflow(new_wf(queue_name="q", deduplication_id="d", timeout_ms=50))
    first.insert_workflow(new_wf("done"))
    first.record_step(fence(), step(0, "a", output="1"))
    first.set_event(fence(), step(1, "set"), "k", "v", 2)
    first.send_message("wf", "t", "m1", 3)
    first.send_message("wf", "t", "m2", 4)
    finish(first, fence("done"), SUCCESS, "out", None, 5)
    workflows = first.list_workflows(WorkflowQuery())
    first.close()

    second = store_factory()
    second.migrate()
    assert second.list_workflows(WorkflowQuery()) == workflows
    assert [(r.workflow_id, r.status) for r in workflows] == [("done", SUCCESS), ("wf", PENDING)]
    assert second.load_steps("wf") == [step(0, "a", output="1"), step(1, "set")]
    assert second.get_event("wf", "k") == "v"
    assert second.receive_message(fence(), 2, "r", "t", 6) == (WriteResult.OK, "m1")
    assert second.receive_message(fence(), 3, "r", "t", 7) == (WriteResult.OK, "m2")


def test_a_second_store_sees_writes_without_a_close(store_factory: StoreFactory) -> None:
    """Two live store objects on one database (two processes, in effect) see each other."""
    first = store_factory()
    second = store_factory()
    first.insert_workflow(new_wf())
    assert second.record_step(fence(), step(0)) is WriteResult.OK
    assert first.load_steps("wf") == [step(0)]
    assert not second.insert_workflow(new_wf()).created


# -- SQLite only -------------------------------------------------------------------

sqlite_only = pytest.mark.usefixtures("_require_sqlite")


@pytest.fixture
def _require_sqlite(store_kind: str) -> None:
    if store_kind != "sqlite":
        pytest.skip("SQLite-specific")


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "durakit.db"


def _sqlite_store(path: Path) -> SystemStore:
    from durakit.backends.sqlite import SQLiteStore

    store = SQLiteStore(path)
    store.migrate()
    return store


def _pragma(path: Path, name: str) -> object:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]
    finally:
        conn.close()


@sqlite_only
def test_sqlite_uses_wal_and_full_sync(store: SystemStore, tmp_path: Path) -> None:
    from durakit.backends.sqlite import SQLiteStore

    assert isinstance(store, SQLiteStore)
    store.insert_workflow(new_wf())
    assert _pragma(tmp_path / "durakit.db", "journal_mode") == "wal"
    with store._pool.connection() as db:
        assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert db.execute("PRAGMA busy_timeout").fetchone()[0] >= 10_000


@sqlite_only
def test_sqlite_refuses_a_database_from_a_newer_durakit(db_path: Path) -> None:
    from durakit.backends.sqlite_schema import LATEST_VERSION

    _sqlite_store(db_path).close()
    assert _pragma(db_path, "user_version") == LATEST_VERSION
    conn = sqlite3.connect(db_path)
    conn.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
    conn.close()
    with pytest.raises(
        InitializationError, match=rf"version {LATEST_VERSION + 1}.*{LATEST_VERSION}"
    ):
        _sqlite_store(db_path)


@sqlite_only
def test_sqlite_rejects_an_in_memory_database() -> None:
    from durakit.backends.sqlite import SQLiteStore

    with pytest.raises(InitializationError, match="MemoryStore"):
        SQLiteStore(":memory:")


@sqlite_only
def test_sqlite_close_closes_other_threads_connections(store: SystemStore) -> None:
    store.insert_workflow(new_wf())
    used = threading.Event()
    closed = threading.Event()
    after_close: list[BaseException] = []

    def worker() -> None:
        store.record_step(fence(), step(0))
        used.set()
        closed.wait(10)
        try:
            store.get_workflow("wf")
        except sqlite3.ProgrammingError as exc:
            after_close.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    assert used.wait(10)
    store.close()
    closed.set()
    thread.join()
    assert len(after_close) == 1
    with pytest.raises(sqlite3.ProgrammingError):
        store.get_workflow("wf")


def _process_insert(path: str, barrier: Any, results: Any, index: int) -> None:
    barrier.wait(30)  # all processes open and migrate the fresh file at once
    store = _sqlite_store(Path(path))
    try:
        barrier.wait(30)
        result = store.insert_workflow(new_wf("race", input=f"proc-{index}"))
        results.put((index, result.created, result.record.input))
    finally:
        store.close()


@sqlite_only
def test_sqlite_two_processes_migrate_and_insert_one_id_once(db_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    count = 3
    barrier = ctx.Barrier(count)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_process_insert, args=(str(db_path), barrier, results, i))
        for i in range(count)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * count
    rows = sorted(results.get(timeout=5) for _ in range(count))
    winners = [index for index, created, _ in rows if created]
    assert len(winners) == 1
    assert {stored for _, _, stored in rows} == {f"proc-{winners[0]}"}
    store = _sqlite_store(db_path)
    try:
        assert get(store, "race").input == f"proc-{winners[0]}"
    finally:
        store.close()


# -- delete_finished (retention) -----------------------------------------------------


def finished_wf(store: SystemStore, wid: str, at: int, **changes: Any) -> None:
    """A workflow that finished at ``at``, with a step, a waiting message and an event."""
    store.insert_workflow(new_wf(wid, created_at=at - 5, **changes))
    assert store.record_step(fence(wid), step(0)) is WriteResult.OK
    assert store.set_event(fence(wid), step(1), "k", '"v"', at - 2) is WriteResult.OK
    assert store.send_message(wid, None, '"m"', at - 1) is WriteResult.OK
    assert finish(store, fence(wid), SUCCESS, '"ok"', None, at) is WriteResult.OK


def test_delete_finished_removes_old_workflows_with_their_steps_messages_and_events(
    store: SystemStore,
) -> None:
    finished_wf(store, "old", 1_000)
    finished_wf(store, "young", 9_000)
    store.insert_workflow(new_wf("running", created_at=10))
    assert store.delete_finished(5_000, None, 100) == 1
    assert store.get_workflow("old") is None
    assert store.load_steps("old") == []
    assert store.get_event("old", "k") is None
    # A new workflow with the same ID starts clean: no message or event left over.
    store.insert_workflow(new_wf("old", created_at=20_000))
    assert recv_for(store, "old") == (WriteResult.OK, None)
    assert get(store, "young").status is SUCCESS
    assert [s.step_id for s in store.load_steps("young")] == [0, 1]
    assert store.get_event("young", "k") == '"v"'
    assert get(store, "running").status is PENDING
    assert store.delete_finished(5_000, None, 100) == 0


def recv_for(store: SystemStore, wid: str) -> tuple[WriteResult, str | None]:
    return store.receive_message(fence(wid), 7, "recv", None, 30_000)


def test_delete_finished_in_bounded_batches_keeping_the_newest(store: SystemStore) -> None:
    for i in range(5):
        finished_wf(store, f"wf-{i}", 1_000 + i)
    assert store.delete_finished(5_000, 2, 2) == 2  # the oldest two
    assert [w.workflow_id for w in store.list_workflows(WorkflowQuery())] == [
        "wf-2",
        "wf-3",
        "wf-4",
    ]
    assert store.delete_finished(5_000, 2, 2) == 1  # wf-3 and wf-4 are kept
    assert store.delete_finished(5_000, 2, 2) == 0
    assert {w.workflow_id for w in store.list_workflows(WorkflowQuery())} == {"wf-3", "wf-4"}


def test_delete_finished_keeps_children_of_active_parents(store: SystemStore) -> None:
    store.insert_workflow(new_wf("parent"))
    finished_wf(store, "child", 1_000, parent_workflow_id="parent")
    finished_wf(store, "orphan", 1_000, parent_workflow_id="gone")
    assert store.delete_finished(5_000, None, 100) == 1
    assert store.get_workflow("child") is not None
    assert store.get_workflow("orphan") is None
    assert finish(store, fence("parent"), SUCCESS, "x", None, 2_000) is WriteResult.OK
    assert store.delete_finished(5_000, None, 100) == 2  # the parent and its child


# -- set_version ---------------------------------------------------------------------


def test_set_version_moves_active_work_of_the_selection(store: SystemStore) -> None:
    store.insert_workflow(new_wf("p", application_id="shop", application_version="v1"))
    store.insert_workflow(
        new_wf("q", application_id="shop", application_version="v1", status=ENQUEUED)
    )
    store.insert_workflow(new_wf("done", application_id="shop", application_version="v1"))
    assert finish(store, fence("done"), SUCCESS, "x", None, 1_500) is WriteResult.OK
    store.insert_workflow(new_wf("other-app", application_id="billing", application_version="v1"))
    store.insert_workflow(new_wf("old", application_id="shop", application_version="v0"))

    moved = store.set_version(
        VersionMove(to_version="v2", now_ms=2_000, application_id="shop", from_version="v1")
    )
    assert moved == ["p", "q"]
    assert (get(store, "p").application_version, get(store, "p").updated_at) == ("v2", 2_000)
    assert get(store, "q").application_version == "v2"
    for untouched in ("done", "other-app"):
        assert get(store, untouched).application_version == "v1"
    assert get(store, "old").application_version == "v0"

    by_id = store.set_version(
        VersionMove(to_version="v3", now_ms=3_000, workflow_ids=("old", "done"))
    )
    assert by_id == ["old"]  # a finished workflow is never moved
    assert get(store, "old").application_version == "v3"
    assert store.set_version(VersionMove(to_version="v3", now_ms=4, workflow_ids=("nope",))) == []
