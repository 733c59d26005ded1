"""Cancellation and resume, on every store.

A cancelled workflow is CANCELLED at once; its body stops at its next durable operation
(step, sleep, recv, child start, ...) with a BaseException that ``except Exception``
cannot swallow; a running step is not interrupted and its outcome is still recorded (see
also tests/test_cancel_step_outcome.py). Cancel cascades to attached children. Resume
continues from the last completed step.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any, cast

import pytest

import durakit as dk
from durakit.core.records import Fence, StepRecord, WriteResult
from durakit.testing import FakeClock
from tests.helpers import Counts, ThreadLog, new_app, wait_until
from tests.waiting_support import (
    RECV,
    SLEEP,
    T0,
    BlockingStep,
    Engines,
    StoreFactory,
    settled,
    status_of,
    step_names,
    wait_for_step,
)

DAY = timedelta(days=1)
CANCELLED = dk.StatusType.CANCELLED
PENDING = dk.StatusType.PENDING
SUCCESS = dk.StatusType.SUCCESS


def assert_cancelled(handle: dk.WorkflowHandle[Any]) -> None:
    """Awaiting it raises AwaitedWorkflowCancelledError (within real seconds: the wait
    it was in, a day long, was cut short)."""
    with pytest.raises(dk.AwaitedWorkflowCancelledError) as caught:
        handle.get_result(timeout=10)
    assert caught.value.workflow_id == handle.workflow_id
    assert handle.get_status().status is CANCELLED


# -- where the body stops ---------------------------------------------------------------------


@pytest.mark.parametrize("wait", ["sleep", "recv"])
def test_cancel_during_a_wait_stops_the_workflow(engines: Engines, wait: str) -> None:
    counts = Counts()
    exited = threading.Event()

    def waiter(ctx: dk.Context) -> None:
        try:
            if wait == "sleep":
                ctx.sleep(DAY)
            else:
                ctx.recv(timeout=DAY)
            ctx.run_step(lambda: counts.bump("after"), name="after")
        finally:
            exited.set()

    app = engines.start(waiter)
    handle = app.run_workflow(waiter, workflow_id="waiter")
    wait_for_step(app, "waiter", SLEEP)
    app.cancel_workflow("waiter")
    assert status_of(app, "waiter") is CANCELLED  # at once, not when the body notices
    assert_cancelled(handle)
    assert exited.wait(10)
    assert counts["after"] == 0
    assert step_names(app, "waiter") == [SLEEP]


def test_except_exception_cannot_swallow_the_cancellation(engines: Engines) -> None:
    counts = Counts()

    def stubborn(ctx: dk.Context) -> str:
        try:
            ctx.sleep(DAY)
        except Exception:
            counts.bump("swallowed")
        try:
            ctx.run_step(lambda: counts.bump("after"), name="after")
        except Exception:
            counts.bump("swallowed")
        return "finished anyway"

    app = engines.start(stubborn)
    handle = app.run_workflow(stubborn, workflow_id="stubborn")
    wait_for_step(app, "stubborn", SLEEP)
    app.cancel_workflow("stubborn")
    assert_cancelled(handle)
    assert counts.as_dict() == {}


@pytest.mark.parametrize(
    "operation", ["step", "sleep", "recv", "child", "send", "set_event", "get_event"]
)
def test_cancel_between_operations_stops_at_the_next_one(engines: Engines, operation: str) -> None:
    """The body is cancelled while in plain code between two operations: the next
    operation, whatever it is, does not start."""
    counts = Counts()
    between, release = threading.Event(), threading.Event()

    def child(ctx: dk.Context) -> None:
        counts.bump("child")

    def target(ctx: dk.Context) -> None:
        ctx.recv(timeout=30)

    nexts: dict[str, Callable[[dk.Context], object]] = {
        "step": lambda ctx: ctx.run_step(lambda: counts.bump("step"), name="next"),
        "sleep": lambda ctx: ctx.sleep(0),
        "recv": lambda ctx: ctx.recv(timeout=0),
        "child": lambda ctx: ctx.run_workflow(child, workflow_id="child"),
        "send": lambda ctx: ctx.send("target", "hello"),
        "set_event": lambda ctx: ctx.set_event("k", 1),
        "get_event": lambda ctx: ctx.get_event("target", "k", timeout=0),
    }

    def workflow(ctx: dk.Context) -> None:
        ctx.run_step(lambda: counts.bump("first"), name="first")
        between.set()
        release.wait(10)  # plain code, not a step
        nexts[operation](ctx)
        counts.bump("body went on")

    app = engines.start(workflow, child, target)
    app.run_workflow(target, workflow_id="target")
    handle = app.run_workflow(workflow, workflow_id="wf")
    try:
        assert between.wait(10)
        app.cancel_workflow("wf")
    finally:
        release.set()
    assert_cancelled(handle)
    assert counts.as_dict() == {"first": 1}
    assert step_names(app, "wf") == ["first"]
    with pytest.raises(dk.NonExistentWorkflowError):
        app.retrieve_workflow("child")
    app.send("target", "the one message")
    assert app.retrieve_workflow("target").get_result(timeout=10) is None
    with pytest.raises(dk.DurakitTimeoutError):
        app.get_event("wf", "k", timeout=0)


def test_a_running_step_is_not_interrupted_and_its_outcome_is_recorded(
    engines: Engines,
) -> None:
    counts = Counts()
    slow = BlockingStep()

    def workflow(ctx: dk.Context) -> None:
        ctx.run_step(slow, name="slow")
        ctx.run_step(lambda: counts.bump("next"), name="next")

    app = engines.start(workflow)
    handle = app.run_workflow(workflow, workflow_id="wf")
    try:
        assert slow.started.wait(10)
        app.cancel_workflow("wf")
        assert status_of(app, "wf") is CANCELLED
        assert slow.finished == 0  # still running
    finally:
        slow.release.set()
    assert_cancelled(handle)
    assert slow.finished == 1  # it completed...
    assert counts["next"] == 0  # ...and the next step never started
    steps = app.get_workflow_steps("wf")
    assert [(s.name, s.output) for s in steps] == [("slow", 1)]  # its outcome was kept


# -- cascade ----------------------------------------------------------------------------------


def family(engines: Engines) -> dk.Durakit:
    """parent -> attached child -> grandchild, and parent -> detached child; all wait
    for a message "go" and are waiting when this returns."""

    def leaf(ctx: dk.Context) -> str:
        go: str = ctx.recv("go", timeout=DAY)
        return go

    def middle(ctx: dk.Context) -> str:
        ctx.run_workflow(leaf, workflow_id="grandchild")
        go: str = ctx.recv("go", timeout=DAY)
        return go

    def parent(ctx: dk.Context) -> None:
        ctx.run_workflow(middle, workflow_id="child")
        ctx.run_workflow(leaf, workflow_id="detached", detached=True)
        ctx.recv("go", timeout=DAY)

    app = engines.start(leaf, middle, parent)
    app.run_workflow(parent, workflow_id="parent")
    for wid in ("parent", "child", "grandchild", "detached"):
        wait_for_step(app, wid, SLEEP)
    return app


def test_cancel_cascades_to_attached_children_not_detached_ones(engines: Engines) -> None:
    app = family(engines)
    app.cancel_workflow("parent")
    for wid in ("parent", "child", "grandchild"):
        assert status_of(app, wid) is CANCELLED, wid
        assert_cancelled(app.retrieve_workflow(wid))
    assert status_of(app, "detached") is PENDING
    app.send("detached", "still here", topic="go")
    assert app.retrieve_workflow("detached").get_result(timeout=10) == "still here"


def test_cancel_without_cascade_leaves_the_children_running(engines: Engines) -> None:
    app = family(engines)
    app.cancel_workflow("parent", cascade=False)
    assert_cancelled(app.retrieve_workflow("parent"))
    for wid in ("child", "grandchild", "detached"):
        assert status_of(app, wid) is PENDING, wid
        app.send(wid, wid, topic="go")
        assert app.retrieve_workflow(wid).get_result(timeout=10) == wid


def test_a_detached_child_survives_its_parents_cancellation_while_it_runs(
    engines: Engines,
) -> None:
    def leaf(ctx: dk.Context) -> str:
        ctx.recv("go", timeout=DAY)
        return "done"

    def parent(ctx: dk.Context) -> str:
        ctx.run_workflow(leaf, workflow_id="attached")
        handle = ctx.run_workflow(leaf, workflow_id="detached", detached=True)
        return handle.get_result()

    app = engines.start(leaf, parent)
    parent_handle = app.run_workflow(parent, workflow_id="parent")
    wait_until(lambda: len(step_names(app, "parent")) == 2)  # both children recorded
    wait_for_step(app, "detached", SLEEP)
    wait_for_step(app, "attached", SLEEP)
    app.cancel_workflow("parent")
    assert_cancelled(app.retrieve_workflow("attached"))
    app.send("detached", None, topic="go")
    assert app.retrieve_workflow("detached").get_result(timeout=10) == "done"
    assert_cancelled(parent_handle)


class CancelAtChildStart:
    """A store that cancels the parent right before it records a child's start: the
    child exists, but the parent's steps do not name it yet."""

    def __init__(self, inner: dk.SystemStore) -> None:
        self.inner = inner
        self.app: dk.Durakit | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def record_step(
        self, fence: Fence, step: StepRecord, *, while_cancelled: bool = False
    ) -> WriteResult:
        if step.child_workflow_id is not None and self.app is not None:
            self.app.cancel_workflow(fence.workflow_id)
        return self.inner.record_step(fence, step, while_cancelled=while_cancelled)


def test_a_cancel_between_a_childs_start_and_its_record_cancels_the_child(
    store_factory: StoreFactory,
) -> None:
    def leaf(ctx: dk.Context) -> None:
        ctx.recv(timeout=DAY)

    def parent(ctx: dk.Context) -> None:
        ctx.run_workflow(leaf, workflow_id="attached")

    store = CancelAtChildStart(store_factory())
    app = new_app(cast(dk.SystemStore, store))
    app.register_workflow(leaf)
    app.register_workflow(parent)
    with app:
        store.app = app
        assert_cancelled(app.run_workflow(parent, workflow_id="parent"))
        assert_cancelled(app.retrieve_workflow("attached"))
        assert step_names(app, "parent") == []


# -- awaiting ---------------------------------------------------------------------------------


def test_awaiting_a_cancelled_workflow_raises_everywhere(engines: Engines) -> None:
    def child(ctx: dk.Context) -> None:
        ctx.recv(timeout=DAY)

    def parent(ctx: dk.Context) -> str:
        handle = ctx.run_workflow(child, workflow_id="child")
        try:
            handle.get_result()
        except dk.AwaitedWorkflowCancelledError as exc:
            return f"child {exc.workflow_id} was cancelled"
        return "child finished"

    app = engines.start(child, parent)
    parent_handle = app.run_workflow(parent, workflow_id="parent")
    wait_for_step(app, "child", SLEEP)
    app.cancel_workflow("child")
    assert parent_handle.get_result(timeout=10) == "child child was cancelled"
    assert_cancelled(app.retrieve_workflow("child"))
    with engines.client() as client:
        assert_cancelled(client.retrieve_workflow("child"))


def test_cancel_unknown_or_finished_workflows(engines: Engines) -> None:
    def quick(ctx: dk.Context) -> int:
        return 5

    app = engines.start(quick)
    with pytest.raises(dk.NonExistentWorkflowError):
        app.cancel_workflow("nobody")
    assert app.run_workflow(quick, workflow_id="quick").get_result(timeout=10) == 5
    app.cancel_workflow("quick")
    assert status_of(app, "quick") is SUCCESS
    assert app.retrieve_workflow("quick").get_result(timeout=10) == 5


# -- from another process ---------------------------------------------------------------------


@pytest.mark.parametrize("where", ["in a step", "in a recv", "in a sleep"])
def test_a_cancel_from_a_client_is_noticed(engines: Engines, where: str) -> None:
    """The client has a store object of its own (as another process would): the running
    workflow notices the cancellation at its next checkpoint at the latest."""
    counts = Counts()
    slow = BlockingStep()

    def workflow(ctx: dk.Context) -> None:
        if where == "in a step":
            ctx.run_step(slow, name="slow")
        elif where == "in a recv":
            ctx.recv(timeout=DAY)
        else:
            ctx.sleep(DAY)
        ctx.run_step(lambda: counts.bump("next"), name="next")

    clock = FakeClock(T0, auto_advance=False)
    app = engines.start(workflow, clock=clock)
    handle = app.run_workflow(workflow, workflow_id="wf")
    try:
        if where == "in a step":
            assert slow.started.wait(10)
        else:
            wait_for_step(app, "wf", SLEEP)
        with engines.client() as client:
            client.cancel_workflow("wf")
            assert client.get_workflow_status("wf").status is CANCELLED
        clock.advance(DAY)  # a sleep that no signal reached ends now
    finally:
        slow.release.set()
    assert_cancelled(settled(handle))
    assert counts["next"] == 0
    assert "next" not in step_names(app, "wf")


# -- resume -----------------------------------------------------------------------------------


def test_resume_continues_from_the_last_completed_step(engines: Engines) -> None:
    counts = Counts()
    in_step, release = threading.Event(), threading.Event()

    def second() -> int:
        if counts.bump("b") == 1:  # the first execution is cancelled in here
            in_step.set()
            release.wait(10)
        return 2

    def workflow(ctx: dk.Context) -> list[int]:
        a = ctx.run_step(lambda: counts.bump("a"), name="a")
        b = ctx.run_step(second, name="b")
        c = ctx.run_step(lambda: counts.bump("c"), name="c")
        return [a, b, c]

    app = engines.start(workflow)
    handle = app.run_workflow(workflow, workflow_id="wf")
    try:
        assert in_step.wait(10)
        app.cancel_workflow("wf")
    finally:
        release.set()
    assert_cancelled(handle)
    assert step_names(app, "wf") == ["a", "b"]  # "b" ran to its end and was recorded

    resumed = app.resume_workflow("wf")
    assert resumed.get_result(timeout=10) == [1, 2, 1]
    assert counts.as_dict() == {"a": 1, "b": 1, "c": 1}  # neither "a" nor "b" ran again
    assert step_names(app, "wf") == ["a", "b", "c"]
    assert status_of(app, "wf") is SUCCESS


def test_resume_after_a_cancelled_recv_waits_again(engines: Engines) -> None:
    def waiter(ctx: dk.Context) -> str:
        got: str = ctx.recv(timeout=DAY)
        return got

    app = engines.start(waiter)
    handle = app.run_workflow(waiter, workflow_id="wf")
    wait_for_step(app, "wf", SLEEP)
    app.cancel_workflow("wf")
    assert_cancelled(handle)
    resumed = app.resume_workflow("wf")
    wait_until(lambda: status_of(app, "wf") is PENDING)
    app.send("wf", "after resume")
    assert resumed.get_result(timeout=10) == "after resume"
    assert step_names(app, "wf") == [SLEEP, RECV]


def test_resume_is_a_noop_on_a_finished_workflow(engines: Engines) -> None:
    counts = Counts()

    def workflow(ctx: dk.Context) -> int:
        return ctx.run_step(lambda: counts.bump("ran"), name="ran")

    def failing(ctx: dk.Context) -> None:
        counts.bump("failing")
        raise ValueError("no")

    app = engines.start(workflow, failing)
    assert app.run_workflow(workflow, workflow_id="ok").get_result(timeout=10) == 1
    with pytest.raises(ValueError, match="no"):
        app.run_workflow(failing, workflow_id="bad").get_result(timeout=10)

    assert app.resume_workflow("ok").get_result(timeout=10) == 1
    with pytest.raises(ValueError, match="no"):
        app.resume_workflow("bad").get_result(timeout=10)
    assert counts.as_dict() == {"ran": 1, "failing": 1}
    assert status_of(app, "ok") is SUCCESS
    assert status_of(app, "bad") is dk.StatusType.ERROR


def test_a_second_cancel_reaches_a_resumed_execution(engines: Engines) -> None:
    """Resumed while the cancelled execution is still inside its step: when that old
    execution ends, the new one must still be the one the engine tracks, so that a
    second cancel interrupts its day-long sleep at once."""
    entered = Counts()
    release = threading.Event()
    threads = ThreadLog()

    def slow() -> None:
        threads.here()
        entered.bump("slow")
        release.wait(10)

    def workflow(ctx: dk.Context) -> None:
        ctx.run_step(slow, name="slow")
        ctx.sleep(DAY)

    app = engines.start(workflow)
    app.run_workflow(workflow, workflow_id="wf")
    try:
        wait_until(lambda: entered["slow"] == 1)
        app.cancel_workflow("wf")
        second = app.resume_workflow("wf")
        wait_until(lambda: entered["slow"] == 2)
    finally:
        release.set()
    old = threads.threads[0]
    old.join(10)  # the cancelled execution has ended (the resumed one goes on)
    assert not old.is_alive()
    wait_for_step(app, "wf", SLEEP)
    app.cancel_workflow("wf")
    assert_cancelled(second)
