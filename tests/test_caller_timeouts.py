"""Caller timeouts count the caller's real time, also when the engine runs on a FakeClock.

``get_result(timeout=)`` (live, from the store, from a client) and ``get_event(timeout=)``
(engine and client) wait outside any workflow: their timeout is the caller's, so a fake
clock's jump over a day-long sleep must not use it up, and a clock that only moves by
hand must not make it last forever. Inside a workflow, waits keep counting the engine's
clock. Also: ``FakeClock.wait_for_waiters`` counts only waits still to come, so a test
can step a workflow through several sleeps by hand. Every test runs on each store.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import pytest

import durakit as dk
from durakit.testing import FakeClock
from tests.conftest import StoreFactory
from tests.helpers import WAIT
from tests.waiting_support import T0, Engines

pytestmark = pytest.mark.timeout(120)  # a call that hangs must fail, not stall the run

T = TypeVar("T")

DAY = timedelta(days=1)
CALLER_TIMEOUT = 15.0
"""The caller's timeout in the jump tests: far less than the fake day the clock skips."""
BUSY = 0.3
"""Real seconds a workflow is busy in a step before its fake day (so the caller is waiting
when the clock jumps) and after it (so the caller must wait that out)."""
SHORT = 0.3
"""A caller timeout that must end in real time although the fake clock never moves."""


def linger() -> str:
    """A step busy for BUSY real seconds (holding fake time still meanwhile)."""
    threading.Event().wait(BUSY)
    return "done"


def nap_then_work(ctx: dk.Context) -> str:
    ctx.run_step(linger)  # the caller is waiting before the clock can jump
    ctx.sleep(DAY)
    return ctx.run_step(linger)


def nap_then_publish(ctx: dk.Context) -> str:
    ctx.run_step(linger)  # the caller is waiting before the clock can jump
    ctx.sleep(DAY)
    ctx.set_event("status", ctx.run_step(linger))
    return "published"


def three_naps(ctx: dk.Context) -> int:
    for _ in range(3):
        ctx.sleep(60)
    return 3


def child_naps(ctx: dk.Context) -> str:
    ctx.sleep(DAY)
    return "child rested"


def impatient_parent(ctx: dk.Context) -> str:
    child = ctx.run_workflow(child_naps)
    try:
        return child.get_result(timeout=3600)
    except dk.DurakitTimeoutError:
        return "gave up"


WORKFLOWS = (nap_then_work, nap_then_publish, three_naps, child_naps, impatient_parent)


def bounded(call: Callable[[], T]) -> T:
    """``call()`` on a plain thread; fails (instead of hanging) if it has not returned
    within WAIT real seconds."""
    results: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(call())
        except BaseException as exc:  # handed to the test thread
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(WAIT)
    assert not thread.is_alive(), f"the call did not return within {WAIT} real seconds"
    if errors:
        raise errors[0]
    return results[0]


CALLS = [
    "live get_result",
    "stored get_result",
    "client get_result",
    "app get_event",
    "client get_event",
]
"""Where a caller can wait from: the engine running the workflow (live handle), another
engine (which reads the store), a client; and get_event from the engine and a client."""


class Callers:
    """An engine on a FakeClock, a second engine and a client on the same database (and
    clock), and a way to wait with a timeout from each place in CALLS."""

    def __init__(self, engines: Engines, store_factory: StoreFactory, clock: FakeClock) -> None:
        self.app = engines.start(*WORKFLOWS, clock=clock)
        self.other = engines.start(*WORKFLOWS, clock=clock)
        self.client = dk.Client(store=store_factory(), clock=clock)

    def start(self, call: str) -> str:
        """Start the workflow ``call`` waits on: it yields "done" after a fake day, as its
        result or as its event "status"; returns its ID."""
        fn = nap_then_work if call.endswith("get_result") else nap_then_publish
        return self.app.run_workflow(fn).workflow_id

    def wait(self, call: str, workflow_id: str, timeout: float) -> Any:
        where, what = call.split()
        if what == "get_event":
            source = self.app if where == "app" else self.client
            return source.get_event(workflow_id, "status", timeout=timeout)
        reader = {"live": self.app, "stored": self.other, "client": self.client}[where]
        return reader.retrieve_workflow(workflow_id).get_result(timeout=timeout)


@pytest.fixture
def auto_clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def manual_clock() -> FakeClock:
    return FakeClock(T0, auto_advance=False)


@pytest.mark.parametrize("call", CALLS)
def test_a_caller_timeout_outlasts_a_fake_day_jump(
    engines: Engines, store_factory: StoreFactory, auto_clock: FakeClock, call: str
) -> None:
    callers = Callers(engines, store_factory, auto_clock)
    began = time.monotonic()  # before the start: the workflow is busy from there on
    wid = callers.start(call)
    assert bounded(lambda: callers.wait(call, wid, CALLER_TIMEOUT)) == "done"
    assert 2 * BUSY <= time.monotonic() - began < CALLER_TIMEOUT
    assert auto_clock.now() >= T0.timestamp() + DAY.total_seconds()


@pytest.mark.parametrize("call", CALLS)
def test_a_caller_timeout_ends_in_real_time_on_a_clock_that_never_moves(
    engines: Engines, store_factory: StoreFactory, manual_clock: FakeClock, call: str
) -> None:
    callers = Callers(engines, store_factory, manual_clock)
    wid = callers.start(call)
    assert manual_clock.wait_for_waiters(1)
    began = time.monotonic()
    with pytest.raises(dk.DurakitTimeoutError, match=r"within 0\.3"):
        bounded(lambda: callers.wait(call, wid, SHORT))
    assert SHORT <= time.monotonic() - began < WAIT
    assert manual_clock.now() == T0.timestamp()  # the caller's wait never moved fake time


def test_wait_for_waiters_then_advance_steps_through_several_sleeps(
    engines: Engines, manual_clock: FakeClock
) -> None:
    """The docs' pattern: after each advance, wait_for_waiters waits for the *next*
    sleep, not for the one the advance just ended (which is still leaving)."""
    app = engines.start(three_naps, clock=manual_clock)
    handle = app.run_workflow(three_naps)
    for _ in range(3):
        assert manual_clock.wait_for_waiters(1)
        manual_clock.advance(60)
    assert bounded(lambda: handle.get_result(timeout=WAIT)) == 3
    assert manual_clock.now() == T0.timestamp() + 180


def test_inside_a_workflow_a_result_timeout_counts_the_engine_clock(
    engines: Engines, auto_clock: FakeClock
) -> None:
    """A parent awaiting its child waits as a workflow: its timeout is fake time, so the
    clock jumps to it (an hour, before the child's day) and the parent gives up."""
    app = engines.start(*WORKFLOWS, clock=auto_clock)
    began = time.monotonic()
    handle = app.run_workflow(impatient_parent)
    assert bounded(lambda: handle.get_result(timeout=WAIT)) == "gave up"
    assert time.monotonic() - began < WAIT
    assert auto_clock.now() >= T0.timestamp() + 3600
