"""Crash recovery, simulated in one process: engine A stops while a workflow is blocked
inside a step (its row stays PENDING), and engine B, a new engine on a new store object
over the same database with the same executor ID and application version, recovers it.

A blocked step is not interrupted by ``shutdown``, so A's execution lives on as a
zombie; releasing it later checks fencing: its writes must be refused."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import attrs
import pytest

import durakit as dk
from tests.conftest import StoreFactory
from tests.helpers import WAIT, Counts, ThreadLog, leave_pending, new_app


@attrs.frozen
class Parcel:
    sku: str
    weight_grams: int


@dk.step(name="pick")
def pick(sku: str, counts: Counts) -> Parcel:
    counts.bump("pick")
    return Parcel(sku, 1200)


class Gates:
    """Blocking points for the steps of a crash test; everything opens at teardown."""

    def __init__(self) -> None:
        self.entered: dict[int, threading.Event] = {}
        self.release: dict[int, threading.Event] = {}
        self.stale = ThreadLog()

    def block(self, attempt: int) -> None:
        """Called from a step body on its ``attempt``-th run: signal, then wait."""
        self.entered.setdefault(attempt, threading.Event())
        self.release.setdefault(attempt, threading.Event())
        if attempt == 1:
            self.stale.here()
        self.entered[attempt].set()
        assert self.release[attempt].wait(WAIT), "test never released the step"

    def wait_entered(self, attempt: int) -> None:
        event = self.entered.setdefault(attempt, threading.Event())
        assert event.wait(WAIT), f"attempt {attempt} never reached the blocking step"

    def open(self, attempt: int) -> None:
        self.release.setdefault(attempt, threading.Event()).set()

    def open_all(self) -> None:
        for attempt in range(1, 5):
            self.open(attempt)


@pytest.fixture
def gates() -> Iterator[Gates]:
    g = Gates()
    yield g
    g.open_all()
    g.stale.join_all()


ShipWorkflow = Callable[[dk.Context, str], list[str]]


def register_shipping(
    app: dk.Durakit, counts: Counts, gates: Gates, block: set[int]
) -> ShipWorkflow:
    """Step 0 picks a parcel (typed output), step 1 starts and awaits a child workflow,
    step 2 blocks on the attempts listed in ``block``, step 3 runs after it."""

    @app.workflow(name="label")
    def label(ctx: dk.Context, parcel: Parcel) -> str:
        counts.bump("child")
        return f"{parcel.sku}/{parcel.weight_grams}g"

    @app.workflow(name="ship")
    def ship(ctx: dk.Context, sku: str) -> list[str]:
        counts.bump("body")
        parcel = pick(sku, counts)
        text = ctx.run_workflow(label, parcel).get_result()

        def carrier() -> str:
            attempt = counts.bump("carrier")
            if attempt in block:
                gates.block(attempt)
            return f"carrier attempt {attempt}"

        booked = ctx.run_step(carrier, name="carrier")
        done = ctx.run_step(lambda: f"notified #{counts.bump('notify')}", name="notify")
        return [parcel.sku, text, booked, done]

    return ship


def test_a_recovered_workflow_resumes_after_its_last_completed_step(
    store_factory: StoreFactory, gates: Gates
) -> None:
    counts = Counts()
    a = new_app(store_factory())
    ship = register_shipping(a, counts, gates, block={1, 2})
    a.launch()
    handle_a = a.run_workflow(ship, "sku-9", workflow_id="crash")
    gates.wait_entered(1)
    a.shutdown(timeout=0.1)  # the step is still blocked: the workflow stays PENDING
    assert handle_a.get_status().status is dk.StatusType.PENDING
    assert [s.name for s in a.get_workflow_steps("crash")] == ["pick", "label"]

    b = new_app(store_factory())
    register_shipping(b, counts, gates, block={1, 2})
    with b:
        gates.wait_entered(2)  # B replayed steps 0 and 1 and is now inside step 2
        status = b.retrieve_workflow("crash").get_status()
        assert status.status is dk.StatusType.PENDING
        assert status.attempts == 2

        # The zombie execution of A finishes its step while B owns the workflow:
        # its checkpoint must be refused, and it must not go on to step 3.
        gates.open(1)
        gates.stale.join_all()
        assert [s.step_id for s in b.get_workflow_steps("crash")] == [0, 1]
        assert counts["notify"] == 0

        gates.open(2)
        result = b.retrieve_workflow("crash").get_result(timeout=WAIT)
        steps = b.get_workflow_steps("crash")
        final = b.retrieve_workflow("crash").get_status()

    expected = ["sku-9", "sku-9/1200g", "carrier attempt 2", "notified #1"]
    assert result == expected
    assert handle_a.get_result(timeout=WAIT) == expected  # A's handle sees B's outcome
    assert final.status is dk.StatusType.SUCCESS
    assert final.attempts == 2
    assert [(s.step_id, s.name, s.output) for s in steps] == [
        (0, "pick", {"sku": "sku-9", "weight_grams": 1200}),
        (1, "label", None),
        (2, "carrier", "carrier attempt 2"),
        (3, "notify", "notified #1"),
    ]
    assert steps[1].child_workflow_id == "crash-1"
    # Completed steps did not run again; the child workflow was not started twice.
    assert counts.as_dict() == {"body": 2, "pick": 1, "child": 1, "carrier": 2, "notify": 1}


def test_a_stale_execution_cannot_overwrite_a_finished_recovery(
    store_factory: StoreFactory, gates: Gates
) -> None:
    counts = Counts()
    a = new_app(store_factory())
    ship = register_shipping(a, counts, gates, block={1})
    a.launch()
    a.run_workflow(ship, "sku-1", workflow_id="late")
    gates.wait_entered(1)
    a.shutdown(timeout=0.1)

    b = new_app(store_factory())
    register_shipping(b, counts, gates, block={1})
    with b:
        result = b.retrieve_workflow("late").get_result(timeout=WAIT)
        gates.open(1)
        gates.stale.join_all()
        status = b.retrieve_workflow("late").get_status()
        steps = b.get_workflow_steps("late")
    assert result == ["sku-1", "sku-1/1200g", "carrier attempt 2", "notified #1"]
    assert status.status is dk.StatusType.SUCCESS
    assert status.output == result
    assert steps[2].output == "carrier attempt 2"
    assert counts["notify"] == 1


def test_a_finished_workflow_is_not_run_again_by_a_new_engine(
    store_factory: StoreFactory, gates: Gates
) -> None:
    counts = Counts()
    a = new_app(store_factory())
    ship = register_shipping(a, counts, gates, block=set())
    with a:
        assert a.run_workflow(ship, "x", workflow_id="done").get_result(WAIT)[2] == (
            "carrier attempt 1"
        )
    before = counts.as_dict()
    b = new_app(store_factory())
    register_shipping(b, counts, gates, block=set())
    with b:
        assert b.recover_pending_workflows() == []
        assert b.retrieve_workflow("done").get_result(WAIT)[3] == "notified #1"
    assert counts.as_dict() == before


def test_recovery_takes_only_this_executors_pending_work_of_this_version(
    store: dk.SystemStore,
) -> None:
    counts = Counts()
    leave_pending(store, "mine", executor_id="local", version="v1")
    leave_pending(store, "other-executor", executor_id="elsewhere", version="v1")
    leave_pending(store, "old-version", executor_id="local", version="v0")
    app = new_app(store, executor_id="local", application_version="v1")

    @app.workflow(name="echo")
    def echo(ctx: dk.Context, text: str) -> str:
        counts.bump(text)
        return text.upper()

    with app:
        assert app.retrieve_workflow("mine").get_result(timeout=WAIT) == "MINE"
        by_id = {s.workflow_id: s for s in app.list_workflows()}
        assert by_id["mine"].attempts == 2
        for untouched in ("other-executor", "old-version"):
            assert by_id[untouched].status is dk.StatusType.PENDING
            assert by_id[untouched].attempts == 1
        assert counts.as_dict() == {"mine": 1}

        # Taking over another executor's work is explicit.
        assert app.recover_pending_workflows(executor_ids=["elsewhere"]) == ["other-executor"]
        assert app.retrieve_workflow("other-executor").get_result(WAIT) == "OTHER-EXECUTOR"
        taken = app.retrieve_workflow("other-executor").get_status()
        assert taken.executor_id == "local"
        assert app.retrieve_workflow("old-version").get_status().status is dk.StatusType.PENDING
    assert counts.as_dict() == {"mine": 1, "other-executor": 1}


def test_a_pending_workflow_this_engine_does_not_know_is_left_alone(
    store: dk.SystemStore,
) -> None:
    leave_pending(store, "unknown", executor_id="local", version="v1", name="not-registered-here")
    app = new_app(store)

    @app.workflow(name="echo")
    def echo(ctx: dk.Context, text: str) -> str:
        return text

    with app:
        status = app.retrieve_workflow("unknown").get_status()
    assert status.status is dk.StatusType.PENDING
    assert status.attempts == 1  # not counted as a recovery


def test_a_workflow_recovered_too_often_is_dead_lettered(
    store_factory: StoreFactory, gates: Gates
) -> None:
    counts = Counts()

    def register(app: dk.Durakit) -> Callable[[dk.Context], int]:
        @app.workflow(name="fragile", max_recovery_attempts=1)
        def fragile(ctx: dk.Context) -> int:
            counts.bump("body")

            def stuck() -> int:
                gates.block(counts.bump("stuck"))
                return 1

            return ctx.run_step(stuck, name="stuck")

        return fragile

    first, second, third = (new_app(store_factory()) for _ in range(3))
    fragile = register(first)
    register(second)
    register(third)

    first.launch()
    first.run_workflow(fragile, workflow_id="dlq")
    gates.wait_entered(1)
    first.shutdown(timeout=0.1)

    second.launch()  # recovery 1 of at most 1: runs again
    gates.wait_entered(2)
    second.shutdown(timeout=0.1)
    assert second.retrieve_workflow("dlq").get_status().attempts == 2

    with third:  # recovery 2: one too many
        status = third.retrieve_workflow("dlq").get_status()
        assert status.status is dk.StatusType.MAX_RECOVERY_ATTEMPTS_EXCEEDED
        assert status.attempts == 3
        with pytest.raises(dk.DeadLetterQueueError) as caught:
            third.retrieve_workflow("dlq").get_result(timeout=WAIT)
        assert caught.value.workflow_id == "dlq"
        assert caught.value.code is dk.ErrorCode.DEAD_LETTER_QUEUE

        # The zombie executions finish their steps: nothing of theirs is recorded.
        gates.open(1)
        gates.open(2)
        gates.stale.join_all()
        assert third.get_workflow_steps("dlq") == []
        assert (
            third.retrieve_workflow("dlq").get_status().status
            is dk.StatusType.MAX_RECOVERY_ATTEMPTS_EXCEEDED
        )
    assert counts.as_dict() == {"body": 2, "stuck": 2}


def test_a_changed_program_fails_the_recovered_workflow_with_unexpected_step(
    store_factory: StoreFactory, gates: Gates
) -> None:
    counts = Counts()
    a = new_app(store_factory())

    def ship() -> str:
        gates.block(counts.bump("ship"))
        return "c"

    @a.workflow(name="evolving")
    def original(ctx: dk.Context) -> str:
        ctx.run_step(lambda: "a", name="reserve")
        ctx.run_step(lambda: "b", name="charge")
        return ctx.run_step(ship, name="ship")

    a.launch()
    a.run_workflow(original, workflow_id="drift")
    gates.wait_entered(1)
    a.shutdown(timeout=0.1)

    b = new_app(store_factory())

    @b.workflow(name="evolving")
    def changed(ctx: dk.Context) -> str:
        ctx.run_step(lambda: counts.bump("reserve-again") and "a", name="reserve")
        ctx.run_step(lambda: counts.bump("bill") and "b", name="bill")
        return "never"

    with b:
        handle = b.retrieve_workflow("drift")
        with pytest.raises(dk.UnexpectedStepError) as caught:
            handle.get_result(timeout=WAIT)
        assert handle.get_status().status is dk.StatusType.ERROR
        gates.open(1)
        gates.stale.join_all()  # the zombie's checkpoint of "ship" is refused
        assert [s.name for s in b.get_workflow_steps("drift")] == ["reserve", "charge"]
        assert handle.get_status().status is dk.StatusType.ERROR

    err = caught.value
    assert err.code is dk.ErrorCode.UNEXPECTED_STEP
    assert (err.workflow_id, err.step_id, err.recorded_name, err.expected_name) == (
        "drift",
        1,
        "charge",
        "bill",
    )
    for part in ("'drift'", "step 1", "'charge'", "'bill'"):
        assert part in str(err)
    assert counts.as_dict() == {"ship": 1}  # replayed and divergent steps did not run
