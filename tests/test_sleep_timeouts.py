"""Durable sleep and workflow timeouts (deadlines), on every store, under the fake clock.

A sleep records its absolute wake time; a workflow recovered mid-sleep wakes at that
time. A timeout is a deadline stored in the row, inherited by attached children,
re-armed after recovery; its expiry cancels the workflow, even one busy in a step.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest

import durakit as dk
from durakit.testing import FakeClock
from tests.helpers import Counts, wait_until
from tests.waiting_support import (
    RECV,
    SLEEP,
    T0,
    BlockingStep,
    Engines,
    ms,
    settled,
    status_of,
    step_names,
    wait_for_step,
)

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
CANCELLED = dk.StatusType.CANCELLED


# -- sleep ----------------------------------------------------------------------------------


def test_sleep_returns_its_duration(engines: Engines) -> None:
    def sleeper(ctx: dk.Context) -> list[float]:
        return [ctx.sleep(1.5).total_seconds(), ctx.sleep(timedelta(minutes=2)).total_seconds()]

    app = engines.start(sleeper, clock=FakeClock(T0))
    assert settled(app.run_workflow(sleeper)).get_result() == [1.5, 120.0]


def test_a_one_day_sleep_takes_milliseconds_and_records_its_wake_time(engines: Engines) -> None:
    clock = FakeClock(T0)

    def sleeper(ctx: dk.Context) -> None:
        ctx.sleep(DAY)

    app = engines.start(sleeper, clock=clock)
    started = time.monotonic()
    settled(app.run_workflow(sleeper, workflow_id="sleeper")).get_result()
    assert time.monotonic() - started < 2
    assert clock.now_datetime() == T0 + DAY
    [wake] = app.get_workflow_steps("sleeper")
    assert (wake.step_id, wake.name, wake.output) == (0, SLEEP, ms(T0 + DAY))


@pytest.mark.parametrize(
    ("recovered_at", "finished_at"),
    [
        (T0 + timedelta(minutes=20), T0 + HOUR),  # wakes at the recorded time
        (T0 + 2 * HOUR, T0 + 2 * HOUR),  # past it: wakes at once
    ],
    ids=["before the wake time", "after the wake time"],
)
def test_a_recovered_sleep_wakes_at_the_original_time(
    engines: Engines, recovered_at: datetime, finished_at: datetime
) -> None:
    counts = Counts()

    def sleeper(ctx: dk.Context) -> None:
        ctx.run_step(lambda: counts.bump("before"), name="before")
        ctx.sleep(HOUR)

    first = engines.start(sleeper, clock=FakeClock(T0, auto_advance=False))
    first.run_workflow(sleeper, workflow_id="sleeper")
    wait_for_step(first, "sleeper", SLEEP)
    first.shutdown()

    clock = FakeClock(recovered_at)
    second = engines.start(sleeper, clock=clock)
    handle = settled(second.retrieve_workflow("sleeper"))
    handle.get_result()
    assert handle.get_status().updated_at == finished_at
    assert clock.now_datetime() == finished_at
    assert counts["before"] == 1
    assert step_names(second, "sleeper") == ["before", SLEEP]


# -- timeouts -------------------------------------------------------------------------------


def fail() -> None:
    raise RuntimeError("try again later")


@pytest.mark.parametrize("wait", ["sleep", "recv", "get_event", "retry backoff"])
def test_a_timeout_is_a_stored_deadline_whose_expiry_cancels(engines: Engines, wait: str) -> None:
    """Whatever the workflow waits in when its deadline passes, it is cancelled then."""
    counts = Counts()

    def sleeper(ctx: dk.Context) -> None:
        if wait == "sleep":
            ctx.sleep(DAY)
        elif wait == "recv":
            ctx.recv(timeout=DAY)
        elif wait == "get_event":
            ctx.get_event("nobody", "never", timeout=DAY)
        else:
            day = DAY.total_seconds()
            ctx.run_step(fail, name="fail", max_retries=1, base_interval=day, max_interval=day)
        ctx.run_step(lambda: counts.bump("after"), name="after")

    clock = FakeClock(T0)
    app = engines.start(sleeper, clock=clock)
    handle = app.run_workflow(sleeper, workflow_id="sleeper", timeout=HOUR)
    with pytest.raises(dk.AwaitedWorkflowCancelledError):
        settled(handle).get_result()
    status = handle.get_status()
    assert status.status is CANCELLED
    assert status.timeout == HOUR
    assert status.deadline == T0 + HOUR
    assert status.updated_at == T0 + HOUR  # cancelled at the deadline, not at the wake time
    assert clock.now_datetime() == T0 + HOUR
    assert counts["after"] == 0


def test_children_inherit_the_parents_deadline(engines: Engines) -> None:
    def child(ctx: dk.Context) -> None:
        ctx.sleep(DAY)

    def parent(ctx: dk.Context) -> None:
        ctx.run_workflow(child, workflow_id="plain")
        ctx.run_workflow(child, workflow_id="tighter", timeout=timedelta(minutes=10))
        ctx.run_workflow(child, workflow_id="looser", timeout=5 * HOUR)
        ctx.sleep(DAY)

    app = engines.start(child, parent, clock=FakeClock(T0))
    handle = app.run_workflow(parent, workflow_id="parent", timeout=HOUR)
    settled(handle)
    deadlines = {}
    for wid in ("parent", "plain", "tighter", "looser"):
        status = settled(app.retrieve_workflow(wid)).get_status()
        assert status.status is CANCELLED, wid
        assert status.updated_at == status.deadline, wid  # each one expired at its deadline
        deadlines[wid] = status.deadline
    assert deadlines == {
        "parent": T0 + HOUR,
        "plain": T0 + HOUR,
        "tighter": T0 + timedelta(minutes=10),
        "looser": T0 + HOUR,
    }


def test_a_detached_child_outlives_its_parents_deadline(engines: Engines) -> None:
    def child(ctx: dk.Context) -> str:
        ctx.sleep(2 * HOUR)
        return "done"

    def parent(ctx: dk.Context) -> None:
        ctx.run_workflow(child, workflow_id="attached")
        ctx.run_workflow(child, workflow_id="detached", detached=True)
        ctx.sleep(DAY)

    clock = FakeClock(T0)
    app = engines.start(child, parent, clock=clock)
    settled(app.run_workflow(parent, workflow_id="parent", timeout=HOUR))
    attached = settled(app.retrieve_workflow("attached", str))
    detached = settled(app.retrieve_workflow("detached", str))
    assert status_of(app, "parent") is CANCELLED
    with pytest.raises(dk.AwaitedWorkflowCancelledError):
        attached.get_result()
    assert detached.get_result() == "done"
    assert detached.get_status().deadline is None
    assert detached.get_status().updated_at == T0 + 2 * HOUR


@pytest.mark.parametrize(
    "recovered_after", [timedelta(minutes=10), 2 * HOUR], ids=["in time", "too late"]
)
def test_the_deadline_is_rearmed_after_recovery(
    engines: Engines, recovered_after: timedelta
) -> None:
    """A new engine expires a recovered workflow at its original deadline (at once if
    that has passed), not a full timeout after the recovery."""
    counts = Counts()

    def sleeper(ctx: dk.Context) -> None:
        ctx.sleep(DAY)
        ctx.run_step(lambda: counts.bump("after"), name="after")

    first = engines.start(sleeper, clock=FakeClock(T0, auto_advance=False))
    first.run_workflow(sleeper, workflow_id="sleeper", timeout=HOUR)
    wait_for_step(first, "sleeper", SLEEP)
    first.shutdown()

    clock = FakeClock(T0 + recovered_after)
    second = engines.start(sleeper, clock=clock)
    handle = settled(second.retrieve_workflow("sleeper"))
    with pytest.raises(dk.AwaitedWorkflowCancelledError):
        handle.get_result()
    expired_at = max(T0 + HOUR, T0 + recovered_after)
    assert handle.get_status().updated_at == expired_at
    assert handle.get_status().deadline == T0 + HOUR
    assert clock.now_datetime() == expired_at
    assert counts["after"] == 0


def test_a_workflow_busy_in_a_step_is_cancelled_at_its_deadline(engines: Engines) -> None:
    """The watcher marks it CANCELLED at the deadline while the step still runs; the step
    is not interrupted and its outcome is recorded, but nothing runs after it."""
    counts = Counts()
    long_step = BlockingStep()

    def busy(ctx: dk.Context) -> None:
        ctx.run_step(long_step, name="long")
        ctx.run_step(lambda: counts.bump("next"), name="next")

    clock = FakeClock(T0)
    app = engines.start(busy, clock=clock)
    handle = app.run_workflow(busy, workflow_id="busy", timeout=HOUR)
    try:
        assert long_step.started.wait(10)
        clock.advance(30 * 60)
        time.sleep(0.05)  # the watcher has had time to act, wrongly, if it were to
        assert status_of(app, "busy") is dk.StatusType.PENDING  # not yet at the deadline
        clock.advance(30 * 60)  # exactly the deadline
        wait_until(lambda: status_of(app, "busy") is CANCELLED)
        assert long_step.finished == 0  # the step is still running
    finally:
        long_step.release.set()
    with pytest.raises(dk.AwaitedWorkflowCancelledError):
        settled(handle).get_result()
    wait_until(lambda: long_step.finished == 1)
    assert handle.get_status().updated_at == T0 + HOUR
    assert step_names(app, "busy") == ["long"]  # its outcome is kept (no re-run on resume)
    assert counts["next"] == 0


def test_a_recovered_workflow_busy_in_a_step_expires_at_its_original_deadline(
    engines: Engines,
) -> None:
    """The new engine's deadline watcher knows the recovered workflow's deadline."""
    counts = Counts()
    long_step = BlockingStep()

    def busy(ctx: dk.Context) -> None:
        ctx.recv("go", timeout=DAY)
        ctx.run_step(long_step, name="long")
        ctx.run_step(lambda: counts.bump("next"), name="next")

    first = engines.start(busy, clock=FakeClock(T0, auto_advance=False))
    first.run_workflow(busy, workflow_id="busy", timeout=HOUR)
    wait_for_step(first, "busy", SLEEP)
    first.shutdown()

    clock = FakeClock(T0 + timedelta(minutes=10), auto_advance=False)
    second = engines.start(busy, clock=clock)
    second.send("busy", "go", topic="go")
    try:
        assert long_step.started.wait(10)
        clock.advance(timedelta(minutes=50))  # exactly the original deadline
        wait_until(lambda: status_of(second, "busy") is CANCELLED)
        assert long_step.finished == 0  # the step is still running
    finally:
        long_step.release.set()
    with pytest.raises(dk.AwaitedWorkflowCancelledError):
        settled(second.retrieve_workflow("busy")).get_result()
    assert second.get_workflow_status("busy").updated_at == T0 + HOUR
    wait_for_step(second, "busy", "long")  # its outcome is kept (no re-run on resume)
    assert step_names(second, "busy") == [SLEEP, RECV, "long"]
    assert counts["next"] == 0
