"""The test kit users get in ``durakit.testing``: FakeClock, MockContext, pytest fixtures.

The blocks of docs/testing.md are written out and run under pytest by the last test here;
the tests marked "docs example" mirror them.
"""

from __future__ import annotations

import functools
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import attrs
import pytest

import durakit as dk
from durakit.api.clock import TracksWorkflows
from durakit.api.waiting import CURRENT
from durakit.testing import Call, FakeClock, MockContext
from durakit.testing.pytest_plugin import AppFactory

pytestmark = pytest.mark.timeout(60)  # a clock that fails to move hangs, not fails

START = datetime(2030, 1, 1, tzinfo=UTC)
T0 = START.timestamp()
START_2025 = datetime(2025, 1, 1, tzinfo=UTC)
"""Where the ``durakit_clock`` fixture starts."""
HOUR = 3600.0
DAY = 24 * HOUR
REAL = 5.0
"""Real-time bound for joins in these tests; a healthy run never gets near it."""


# -- helpers ---------------------------------------------------------------------------
def run_as_workflow(clock: FakeClock, body: Callable[[], object]) -> threading.Thread:
    """Run ``body`` on a thread the clock sees as a workflow, as the engine would: counted
    by ``workflow_started`` before the thread starts, marked as running a workflow body."""
    clock.workflow_started()

    def run() -> None:
        CURRENT.set(cast(Any, object()))
        try:
            body()
        finally:
            clock.workflow_finished()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def sleeper(clock: FakeClock, until: float, woke: list[tuple[str, float]], name: str) -> None:
    """A workflow-like sleep: wait until ``until``, then note when it woke."""
    event = threading.Event()
    while clock.now() < until:
        clock.wait(event, until)
    woke.append((name, clock.now()))


def join(*threads: threading.Thread) -> None:
    for thread in threads:
        thread.join(REAL)
        assert not thread.is_alive(), "thread did not finish"


def in_thread(fn: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    """Run ``fn`` on a plain (non-workflow) thread; its result lands in the list."""
    out: list[object] = []
    thread = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    thread.start()
    return thread, out


# -- FakeClock: reading and moving time ------------------------------------------------
def test_fake_clock_implements_the_clock_protocols() -> None:
    clock = FakeClock()
    assert isinstance(clock, dk.Clock)
    assert isinstance(clock, TracksWorkflows)


def test_fake_clock_starts_where_told() -> None:
    assert FakeClock(START).now() == T0
    assert FakeClock(START).now_datetime() == START
    assert FakeClock(datetime(2030, 1, 1)).now() == T0  # naive: taken as UTC
    assert FakeClock().now_datetime() == datetime(2025, 1, 1, tzinfo=UTC)


def test_time_stands_still_until_advanced() -> None:
    clock = FakeClock(START)
    time.sleep(0.02)
    assert clock.now() == T0
    clock.advance(timedelta(hours=2))
    assert clock.now() == T0 + 2 * HOUR
    clock.advance(1.5)
    assert clock.now() == T0 + 2 * HOUR + 1.5
    clock.advance(0)
    assert clock.now() == T0 + 2 * HOUR + 1.5


def test_advance_refuses_to_go_back() -> None:
    clock = FakeClock(START)
    with pytest.raises(ValueError, match="cannot go back"):
        clock.advance(timedelta(seconds=-1))
    assert clock.now() == T0


def test_wait_returns_at_once_when_the_event_is_set_or_the_time_has_passed() -> None:
    clock = FakeClock(START)
    done = threading.Event()
    done.set()
    assert clock.wait(done, T0 + DAY) is True
    assert clock.wait(threading.Event(), T0) is False
    assert clock.wait(threading.Event(), T0 - 1) is False


def test_wait_wakes_when_the_event_is_set() -> None:
    clock = FakeClock(START)
    event = threading.Event()
    thread, out = in_thread(lambda: clock.wait(event, T0 + DAY))
    time.sleep(0.02)
    assert thread.is_alive()
    event.set()
    join(thread)
    assert out == [True]
    assert clock.now() == T0


def test_advance_wakes_the_waiters_whose_time_has_come() -> None:
    clock = FakeClock(START)
    soon, later = threading.Event(), threading.Event()
    t_soon, out_soon = in_thread(lambda: clock.wait(soon, T0 + 60))
    t_later, out_later = in_thread(lambda: clock.wait(later, T0 + 120))
    time.sleep(0.05)  # no workflows: nothing may jump
    assert t_soon.is_alive()
    assert t_later.is_alive()
    assert clock.now() == T0
    clock.advance(30)
    time.sleep(0.02)
    assert t_soon.is_alive()
    clock.advance(30)
    join(t_soon)
    assert out_soon == [False]
    assert t_later.is_alive()
    clock.advance(timedelta(minutes=1))
    join(t_later)
    assert out_later == [False]


def test_poll_bounds_a_wait_in_real_time_without_moving_the_clock() -> None:
    clock = FakeClock(START)
    for until in (T0 + DAY, None):
        began = time.monotonic()
        assert clock.wait(threading.Event(), until, poll=0.05) is False
        took = time.monotonic() - began
        assert 0.04 <= took < 1.0
        assert clock.now() == T0


# -- FakeClock: auto-jump ------------------------------------------------------------
def test_a_lone_waiting_workflow_makes_the_clock_jump_to_its_wake_up() -> None:
    clock = FakeClock(START)
    woke: list[tuple[str, float]] = []
    began = time.monotonic()
    join(run_as_workflow(clock, lambda: sleeper(clock, T0 + DAY, woke, "a")))
    assert time.monotonic() - began < 0.5
    assert woke == [("a", T0 + DAY)]
    assert clock.now() == T0 + DAY


def test_several_waiting_workflows_wake_in_time_order_at_their_own_times() -> None:
    clock = FakeClock(START)
    woke: list[tuple[str, float]] = []
    release = threading.Event()

    def gated(name: str, until: float) -> Callable[[], None]:
        def body() -> None:
            release.wait(REAL)  # busy (not in a clock wait) until all three are running
            sleeper(clock, until, woke, name)

        return body

    threads = [
        run_as_workflow(clock, gated("c", T0 + 30 * HOUR)),
        run_as_workflow(clock, gated("a", T0 + 10 * HOUR)),
        run_as_workflow(clock, gated("b", T0 + 20 * HOUR)),
    ]
    release.set()
    join(*threads)
    assert woke == [("a", T0 + 10 * HOUR), ("b", T0 + 20 * HOUR), ("c", T0 + 30 * HOUR)]
    assert clock.now() == T0 + 30 * HOUR


def test_a_busy_workflow_holds_time_back() -> None:
    clock = FakeClock(START)
    woke: list[tuple[str, float]] = []
    busy = threading.Event()
    with clock.hold():  # both running before time may move
        waiting = run_as_workflow(clock, lambda: sleeper(clock, T0 + HOUR, woke, "waiting"))
        working = run_as_workflow(clock, lambda: busy.wait(REAL))  # e.g. running step code
        assert clock.wait_for_waiters(1)
    time.sleep(0.05)
    assert clock.now() == T0
    assert woke == []
    busy.set()  # the busy workflow ends: now every running workflow waits
    join(waiting, working)
    assert woke == [("waiting", T0 + HOUR)]


def test_a_workflow_waiting_without_a_wake_up_counts_as_waiting() -> None:
    """A parent awaiting its child's result waits on an event only: it must not keep the
    child's sleep from ending, but alone it gives the clock nowhere to jump to."""
    clock = FakeClock(START)
    child_done = threading.Event()
    woke: list[tuple[str, float]] = []

    def parent() -> None:
        clock.wait(child_done, None)
        woke.append(("parent", clock.now()))

    parent_thread = run_as_workflow(clock, parent)
    assert clock.wait_for_waiters(1)
    time.sleep(0.03)
    assert clock.now() == T0  # nothing to jump to

    def child() -> None:
        sleeper(clock, T0 + DAY, woke, "child")
        child_done.set()

    join(run_as_workflow(clock, child), parent_thread)
    assert woke == [("child", T0 + DAY), ("parent", T0 + DAY)]


def test_an_outside_waiter_neither_moves_time_nor_holds_it_back() -> None:
    clock = FakeClock(START)
    outside, out = in_thread(lambda: (clock.wait(threading.Event(), T0 + 60), clock.now()))
    time.sleep(0.05)
    assert outside.is_alive()  # an outside wait alone never makes time move
    assert clock.now() == T0
    woke: list[tuple[str, float]] = []
    join(run_as_workflow(clock, lambda: sleeper(clock, T0 + HOUR, woke, "wf")))
    join(outside)  # woke because the jump passed its wake-up time...
    assert out == [(False, T0 + HOUR)]  # ...which was not a stop on the way
    assert woke == [("wf", T0 + HOUR)]
    assert clock.now() == T0 + HOUR  # the jump went to the workflow's wake-up


def test_a_polling_workflow_still_counts_as_waiting_on_time() -> None:
    """The engine re-checks the store on a short real-time poll and waits again with the
    same wake-up time; the other workflow's jump must still happen."""
    clock = FakeClock(START)
    woke: list[tuple[str, float]] = []

    def polling() -> None:
        event = threading.Event()
        until = T0 + 2 * HOUR
        while clock.now() < until:
            clock.wait(event, until, poll=0.001)
        woke.append(("polling", clock.now()))

    with clock.hold():  # both running before time may move
        threads = [
            run_as_workflow(clock, polling),
            run_as_workflow(clock, lambda: sleeper(clock, T0 + HOUR, woke, "sleeping")),
        ]
    join(*threads)
    assert woke == [("sleeping", T0 + HOUR), ("polling", T0 + 2 * HOUR)]


def test_hold_suspends_jumps_and_releasing_it_lets_time_move() -> None:
    clock = FakeClock(START)
    woke: list[tuple[str, float]] = []
    with clock.hold():
        thread = run_as_workflow(clock, lambda: sleeper(clock, T0 + HOUR, woke, "a"))
        assert clock.wait_for_waiters(1)
        time.sleep(0.03)
        assert clock.now() == T0
        clock.advance(60)  # advancing by hand still works under a hold
        assert clock.now() == T0 + 60
    join(thread)
    assert woke == [("a", T0 + HOUR)]


def test_without_auto_advance_only_advance_moves_time() -> None:
    clock = FakeClock(START, auto_advance=False)
    woke: list[tuple[str, float]] = []
    thread = run_as_workflow(clock, lambda: sleeper(clock, T0 + HOUR, woke, "a"))
    assert clock.wait_for_waiters(1)
    time.sleep(0.03)
    assert clock.now() == T0
    clock.advance(timedelta(hours=1))
    join(thread)
    assert woke == [("a", T0 + HOUR)]


def test_wait_for_waiters_gives_up_after_its_timeout() -> None:
    clock = FakeClock(START)
    began = time.monotonic()
    assert clock.wait_for_waiters(1, timeout=0.03) is False
    assert time.monotonic() - began < 1.0


# -- MockContext -----------------------------------------------------------------------
def test_mock_context_fits_the_context_protocol() -> None:
    ctx: dk.Context = MockContext()  # checked by mypy: MockContext is structurally a Context
    assert ctx.workflow_id == "mock-workflow"
    assert ctx.step_id == -1
    assert MockContext("wf-7").workflow_id == "wf-7"


def test_run_step_runs_inline_and_takes_a_step_id() -> None:
    ctx = MockContext()
    seen: list[int] = []

    def step() -> int:
        seen.append(ctx.step_id)
        return 42

    assert ctx.run_step(step, name="answer") == 42
    assert ctx.run_step(step) == 42
    assert seen == [0, 1]  # inside a step body, step_id is that step's ID
    assert ctx.step_id == 1
    assert ctx.calls[0] == Call(
        "run_step",
        (step,),
        {
            "name": "answer",
            "max_retries": 0,
            "backoff_factor": 2.0,
            "base_interval": 0.1,
            "max_interval": 5.0,
            "output_type": None,
        },
    )


def test_run_step_retries_without_waiting() -> None:
    ctx = MockContext()
    attempts: list[int] = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("down")
        return "up"

    began = time.monotonic()
    assert ctx.run_step(flaky, max_retries=3, base_interval=1000.0) == "up"
    assert time.monotonic() - began < 0.5
    assert len(attempts) == 3
    assert ctx.step_id == 0


def test_run_step_exhausted_retries_raise_max_step_retries_exceeded() -> None:
    ctx = MockContext("wf")
    attempts: list[int] = []

    def broken() -> None:
        attempts.append(1)
        raise ConnectionError(f"attempt {len(attempts)}")

    with pytest.raises(dk.MaxStepRetriesExceededError) as info:
        ctx.run_step(broken, name="call", max_retries=2, base_interval=1000.0)
    assert len(attempts) == 3
    assert [str(e) for e in info.value.errors] == ["attempt 1", "attempt 2", "attempt 3"]
    assert info.value.step_name == "call"
    assert info.value.workflow_id == "wf"
    assert info.value.max_retries == 2


class _BadRepr(Exception):
    def __repr__(self) -> str:
        raise RuntimeError("repr is broken")


def test_exhausted_retries_of_an_unprintable_error_still_raise_the_retries_error() -> None:
    def broken() -> None:
        raise _BadRepr("down")

    with pytest.raises(dk.MaxStepRetriesExceededError, match="whose repr\\(\\) raised") as info:
        MockContext("wf").run_step(broken, name="call", max_retries=1)
    assert [type(e) for e in info.value.errors] == [_BadRepr, _BadRepr]


def test_run_step_without_retries_raises_the_steps_own_error() -> None:
    ctx = MockContext()
    attempts: list[int] = []

    def broken() -> None:
        attempts.append(1)
        raise KeyError("missing")

    with pytest.raises(KeyError, match="missing"):
        ctx.run_step(broken)
    assert len(attempts) == 1


def test_run_step_rejects_an_invalid_retry_policy_like_the_engine() -> None:
    with pytest.raises(ValueError, match="max_retries"):
        MockContext().run_step(lambda: 1, max_retries=-1)


def child_doubles(ctx: dk.Context, n: int) -> int:
    ctx.set_event("seen", n)
    return 2 * n


def child_fails(ctx: dk.Context) -> None:
    raise RuntimeError("child broke")


def test_run_workflow_runs_the_child_inline_with_its_own_context() -> None:
    ctx = MockContext("parent")
    ctx.run_step(lambda: None)
    handle = ctx.run_workflow(child_doubles, 21)
    assert handle.workflow_id == "parent-1"
    assert handle.get_result() == 42
    assert handle.get_status().status is dk.StatusType.SUCCESS
    assert handle.get_status().output == 42
    child = ctx.children["parent-1"]
    assert child.workflow_id == "parent-1"
    assert child.calls == [Call("set_event", ("seen", 21), {})]
    assert child.events_set == {"seen": 21}
    assert ctx.get_event("parent-1", "seen") == 21  # the event board is shared
    assert ctx.calls[1] == Call(
        "run_workflow",
        (child_doubles, 21),
        {"workflow_id": None, "timeout": None, "detached": False},
    )


def test_run_workflow_with_an_id_and_a_failing_child() -> None:
    ctx = MockContext("parent")
    handle = ctx.run_workflow(child_fails, workflow_id="kid", timeout=30.0, detached=True)
    assert handle.workflow_id == "kid"
    assert list(ctx.children) == ["kid"]
    status = handle.get_status()
    assert status.status is dk.StatusType.ERROR
    assert isinstance(status.error, RuntimeError)
    with pytest.raises(RuntimeError, match="child broke"):
        handle.get_result()
    assert ctx.calls == [
        Call(
            "run_workflow",
            (child_fails,),
            {"workflow_id": "kid", "timeout": 30.0, "detached": True},
        )
    ]


def test_send_is_recorded_and_takes_a_step_id() -> None:
    ctx = MockContext()
    ctx.send("other", {"n": 1})
    ctx.send("other", "hi", topic="greetings")
    assert ctx.calls == [
        Call("send", ("other", {"n": 1}, None), {}),
        Call("send", ("other", "hi", "greetings"), {}),
    ]
    assert ctx.step_id == 1


def test_recv_answers_fifo_per_topic_then_times_out() -> None:
    scripted: dict[str | None, list[Any]] = {None: ["d1", "d2"], "t": [1, 2]}
    ctx = MockContext("wf", messages=scripted)
    assert ctx.recv("t") == 1
    assert ctx.recv() == "d1"
    assert ctx.recv("t", timedelta(seconds=5)) == 2
    assert ctx.recv(timeout=3.0) == "d2"
    assert ctx.step_id == 7  # a recv takes two step IDs
    with pytest.raises(dk.DurakitTimeoutError) as info:
        ctx.recv("t")
    assert info.value.workflow_id == "wf"
    assert info.value.step_id == 9
    assert isinstance(info.value, TimeoutError)
    with pytest.raises(dk.DurakitTimeoutError):
        ctx.recv("never-scripted")
    assert scripted == {None: ["d1", "d2"], "t": [1, 2]}  # the script is not consumed
    assert ctx.calls[:2] == [
        Call("recv", ("t", 60.0), {"type": None}),
        Call("recv", (None, 60.0), {"type": None}),
    ]


def test_recv_with_a_type_returns_the_scripted_value() -> None:
    ctx = MockContext(messages={None: [7]})
    value: int = ctx.recv(None, 1.0, type=int)
    assert value == 7
    assert ctx.calls == [Call("recv", (None, 1.0), {"type": int})]


def test_get_event_answers_from_the_script_or_times_out() -> None:
    ctx = MockContext("wf", events={("other", "status"): "ready"})
    assert ctx.get_event("other", "status") == "ready"
    assert ctx.get_event("other", "status", 5.0, type=str) == "ready"
    assert ctx.step_id == 3  # a get_event takes two step IDs
    with pytest.raises(dk.DurakitTimeoutError) as info:
        ctx.get_event("other", "missing", timeout=timedelta(minutes=1))
    assert info.value.step_id == 5
    assert ctx.calls == [
        Call("get_event", ("other", "status", 60.0), {"type": None}),
        Call("get_event", ("other", "status", 5.0), {"type": str}),
        Call("get_event", ("other", "missing", timedelta(minutes=1)), {"type": None}),
    ]


def test_set_event_keeps_the_latest_value_and_get_event_sees_it() -> None:
    ctx = MockContext("wf")
    ctx.set_event("progress", 1)
    ctx.set_event("progress", 2)
    ctx.set_event("done", True)
    assert ctx.events_set == {"progress": 2, "done": True}
    assert ctx.get_event("wf", "progress") == 2
    assert ctx.calls[0] == Call("set_event", ("progress", 1), {})
    assert ctx.step_id == 4


def test_sleep_returns_at_once() -> None:
    ctx = MockContext()
    began = time.monotonic()
    assert ctx.sleep(timedelta(days=1)) == timedelta(days=1)
    assert ctx.sleep(90) == timedelta(seconds=90)
    assert time.monotonic() - began < 0.5
    assert ctx.calls == [Call("sleep", (timedelta(days=1),), {}), Call("sleep", (90,), {})]
    assert ctx.step_id == 1


# docs example: unit-testing a workflow body with MockContext
@attrs.frozen
class Order:
    order_id: str
    amount: int


def charge_card(order: Order) -> str:
    raise AssertionError("unit tests must not reach the payment provider")


def checkout(ctx: dk.Context, order: Order) -> str:
    charge = ctx.run_step(lambda: charge_card(order), name="charge", max_retries=3)
    ctx.set_event("status", "charged")
    approved = ctx.recv("approval", timeout=timedelta(hours=1))
    if not approved:
        ctx.send("refunds", charge)
        return "refunded"
    ctx.sleep(timedelta(days=1))
    return f"shipped {order.order_id}"


def test_checkout_ships_an_approved_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "charge_card", lambda order: "ch_1")
    ctx = MockContext("order-1", messages={"approval": [True]})

    assert checkout(ctx, Order("order-1", 30)) == "shipped order-1"

    assert [c.method for c in ctx.calls] == ["run_step", "set_event", "recv", "sleep"]
    assert ctx.events_set == {"status": "charged"}
    assert ctx.calls[-1] == Call("sleep", (timedelta(days=1),), {})


def test_checkout_refunds_a_rejected_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "charge_card", lambda order: "ch_2")
    ctx = MockContext("order-2", messages={"approval": [False]})

    assert checkout(ctx, Order("order-2", 30)) == "refunded"

    assert Call("send", ("refunds", "ch_2", None), {}) in ctx.calls


def test_checkout_times_out_without_approval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "charge_card", lambda order: "ch_3")
    with pytest.raises(dk.DurakitTimeoutError):
        checkout(MockContext("order-3"), Order("order-3", 30))


# -- @dk.step functions under a MockContext ----------------------------------------------
class Flaky:
    """A step body that fails ``failures`` times, then returns its call count."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts = 0

    def __call__(self) -> int:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise ConnectionError(f"attempt {self.attempts} failed")
        return self.attempts


FLAKY = Flaky(0)


@dk.step(name="reserve", max_retries=3, base_interval=60.0)
def reserve(sku: str) -> str:
    return f"{sku}:{FLAKY()}"


@dk.step(name="outer")
def outer_step() -> str:
    return f"outer({reserve('inner')})"  # a step inside a step is a plain call


def _reserving(ctx: dk.Context, sku: str) -> str:
    return reserve(sku)


def _nested(ctx: dk.Context) -> str:
    return outer_step()


def _parent_of_reserving(ctx: dk.Context) -> str:
    return ctx.run_workflow(_reserving, "child-sku").get_result()


def _mock_app() -> tuple[dk.Durakit, Any, Any, Any]:
    app = dk.Durakit(dk.Config(app_name="mock", store=dk.MemoryStore()))
    return (
        app,
        app.register_workflow(_reserving, name="reserving"),
        app.register_workflow(_nested, name="nested"),
        app.register_workflow(_parent_of_reserving, name="parent"),
    )


def test_a_step_function_runs_through_the_mock_with_its_retry_policy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys.modules[__name__], "FLAKY", Flaky(2))
    _, reserving, _, _ = _mock_app()
    ctx = MockContext("order-9")
    began = time.monotonic()

    assert reserving(ctx, "sku-1") == "sku-1:3"  # two failures retried, backoff not waited

    assert time.monotonic() - began < 5
    assert [c.method for c in ctx.calls] == ["run_step"]
    call = ctx.calls[0]
    assert call.kwargs["name"] == "reserve"
    assert call.kwargs["max_retries"] == 3
    assert call.kwargs["output_type"] is str
    assert ctx.step_id == 0


def test_a_step_function_that_keeps_failing_exhausts_its_retries_under_the_mock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    flaky = Flaky(10)
    monkeypatch.setattr(sys.modules[__name__], "FLAKY", flaky)
    _, reserving, _, _ = _mock_app()
    with pytest.raises(dk.MaxStepRetriesExceededError) as caught:
        reserving(MockContext(), "sku-2")
    assert flaky.attempts == 4
    assert [type(e) for e in caught.value.errors] == [ConnectionError] * 4


@pytest.fixture
def fresh_flaky(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "FLAKY", Flaky(0))


@pytest.mark.usefixtures("fresh_flaky")
def test_a_step_inside_a_step_is_a_plain_call_under_the_mock() -> None:
    _, _, nested, _ = _mock_app()
    ctx = MockContext()
    assert nested(ctx) == "outer(inner:1)"
    assert [c.kwargs["name"] for c in ctx.calls] == ["outer"]


@pytest.mark.usefixtures("fresh_flaky")
def test_a_childs_step_functions_run_through_the_childs_mock() -> None:
    _, _, _, parent = _mock_app()
    ctx = MockContext("p")
    assert parent(ctx) == "child-sku:1"
    assert [c.method for c in ctx.calls] == ["run_workflow"]
    child = ctx.children["p-0"]
    assert [c.kwargs["name"] for c in child.calls] == ["reserve"]


@pytest.mark.usefixtures("fresh_flaky")
def test_outside_any_context_a_step_function_is_a_plain_call() -> None:
    assert reserve("loose") == "loose:1"


# -- the engine under a fake clock -------------------------------------------------------
def new_engine(clock: FakeClock) -> dk.Durakit:
    return dk.Durakit(dk.Config(app_name="kit", store=dk.MemoryStore(), clock=clock))


def test_a_one_day_sleep_finishes_in_milliseconds() -> None:
    clock = FakeClock(START)
    app = new_engine(clock)

    @app.workflow()
    def nap(ctx: dk.Context) -> str:
        ctx.sleep(timedelta(days=1))
        return "rested"

    with app:
        began = time.monotonic()
        assert app.run_workflow(nap).get_result() == "rested"
        assert time.monotonic() - began < 0.5
    assert clock.now() - T0 >= DAY


def test_workflows_queued_for_a_concurrency_slot_let_the_clock_jump() -> None:
    clock = FakeClock(START)
    app = dk.Durakit(
        dk.Config(app_name="kit", store=dk.MemoryStore(), clock=clock, max_concurrent_workflows=1)
    )

    @app.workflow()
    def nap(ctx: dk.Context) -> str:
        ctx.sleep(timedelta(days=1))
        return "rested"

    with app:
        with clock.hold():
            handles = [app.run_workflow(nap) for _ in range(2)]
        assert [h.get_result(timeout=REAL * DAY) for h in handles] == ["rested", "rested"]
    # One slot: the second sleep starts only after the first ends.
    assert clock.now() - T0 >= 2 * DAY


def test_a_recv_timeout_of_an_hour_fires_at_once() -> None:
    clock = FakeClock(START)
    app = new_engine(clock)

    @app.workflow()
    def waiter(ctx: dk.Context) -> str:
        return str(ctx.recv("nothing", timeout=timedelta(hours=1)))

    with app:
        began = time.monotonic()
        with pytest.raises(dk.DurakitTimeoutError):
            app.run_workflow(waiter).get_result()
        assert time.monotonic() - began < 0.5
    assert clock.now() == T0 + HOUR


def test_step_retry_backoff_runs_on_fake_time() -> None:
    clock = FakeClock(START)
    app = new_engine(clock)
    attempts: list[float] = []

    def flaky() -> int:
        attempts.append(clock.now() - T0)
        if len(attempts) < 4:
            raise ConnectionError("try again")
        return len(attempts)

    @app.workflow()
    def retrying(ctx: dk.Context) -> int:
        return ctx.run_step(flaky, max_retries=3, base_interval=10, max_interval=100)

    with app:
        began = time.monotonic()
        assert app.run_workflow(retrying).get_result() == 4
        assert time.monotonic() - began < 0.5
    assert attempts == [0.0, 10.0, 30.0, 70.0]  # delays 10, 20, 40 fake seconds


def test_a_get_event_timeout_fires_at_once() -> None:
    clock = FakeClock(START)
    app = new_engine(clock)

    @app.workflow()
    def watcher(ctx: dk.Context) -> str:
        return str(ctx.get_event("nobody", "status", timeout=timedelta(minutes=30)))

    with app, pytest.raises(dk.DurakitTimeoutError):
        app.run_workflow(watcher).get_result()
    assert clock.now() == T0 + 1800


# docs example: integration tests with the fixtures
def send_report(day: int) -> str:
    return f"report {day}"


def test_nightly_report_waits_a_day_between_runs(
    durakit_app_factory: AppFactory, durakit_clock: FakeClock
) -> None:
    app = durakit_app_factory()
    started = durakit_clock.now_datetime()

    @app.workflow()
    def reports(ctx: dk.Context, days: int) -> list[str]:
        sent: list[str] = []
        for day in range(1, days + 1):
            ctx.sleep(timedelta(days=1))
            sent.append(ctx.run_step(functools.partial(send_report, day)))
        return sent

    with app:
        handle = app.run_workflow(reports, 3)
        assert handle.get_result() == ["report 1", "report 2", "report 3"]  # in milliseconds
    assert durakit_clock.now_datetime() - started == timedelta(days=3)


def test_messages_arrive_before_a_longer_timeout(
    durakit_app_factory: AppFactory, durakit_clock: FakeClock
) -> None:
    """The receiver waits up to a day; the sender sends after an hour. The clock jumps
    to the sender's wake-up first, so the message arrives, not the timeout."""
    app = durakit_app_factory()

    @app.workflow()
    def receiver(ctx: dk.Context) -> str:
        return str(ctx.recv("ping", timeout=timedelta(days=1)))

    @app.workflow()
    def sender(ctx: dk.Context, to: str) -> None:
        ctx.sleep(timedelta(hours=1))
        ctx.send(to, "pong", topic="ping")

    with app:
        with durakit_clock.hold():  # start both before time may move
            received = app.run_workflow(receiver, workflow_id="rx")
            sent = app.run_workflow(sender, "rx")
        sent.get_result()
        assert received.get_result() == "pong"
        assert received.get_status().updated_at == START_2025 + timedelta(hours=1)


def test_a_pending_wake_up_keeps_the_clock_still(
    durakit_app_factory: AppFactory, durakit_clock: FakeClock
) -> None:
    """The sender's message wakes the receiver; the sender then sleeps at once. When the
    sender starts its sleep the receiver may not have run yet, but its wake-up is pending,
    so time must not jump to the receiver's timeout."""
    app = durakit_app_factory()
    go = threading.Event()

    @app.workflow()
    def receiver(ctx: dk.Context) -> str:
        return str(ctx.recv(timeout=timedelta(hours=1)))

    @app.workflow()
    def sender(ctx: dk.Context, to: str) -> None:
        ctx.run_step(lambda: go.wait(REAL))  # busy until the test says go
        ctx.send(to, "hello")
        ctx.sleep(timedelta(days=1))

    with app:
        for n in range(10):
            go.clear()
            with durakit_clock.hold():
                received = app.run_workflow(receiver, workflow_id=f"rx-{n}")
                sent = app.run_workflow(sender, f"rx-{n}")
                assert durakit_clock.wait_for_waiters(1)  # the receiver waits
            began = durakit_clock.now_datetime()
            go.set()
            assert received.get_result() == "hello"
            assert received.get_status().updated_at == began
            sent.get_result()


def test_many_workflows_wake_in_order_of_their_sleeps(
    durakit_app_factory: AppFactory, durakit_clock: FakeClock
) -> None:
    app = durakit_app_factory()

    @app.workflow()
    def collector(ctx: dk.Context, n: int) -> list[int]:
        return [int(ctx.recv(timeout=timedelta(days=2))) for _ in range(n)]

    @app.workflow()
    def delayed(ctx: dk.Context, n: int) -> None:
        ctx.sleep(timedelta(hours=n))
        ctx.send("collector", n)

    order = [5, 2, 8, 0, 7, 3, 9, 1, 6, 4]
    with app:
        with durakit_clock.hold():  # start them all at the same fake instant
            collected = app.run_workflow(collector, len(order), workflow_id="collector")
            handles = [app.run_workflow(delayed, n) for n in order]
        assert collected.get_result() == sorted(order)
        for handle in handles:
            handle.get_result()
    assert durakit_clock.now_datetime() == START_2025 + timedelta(hours=9)


def test_a_parent_awaiting_a_sleeping_child(durakit_app_factory: AppFactory) -> None:
    app = durakit_app_factory()

    @app.workflow()
    def child(ctx: dk.Context) -> str:
        ctx.sleep(timedelta(days=7))
        return "a week later"

    @app.workflow()
    def parent(ctx: dk.Context) -> str:
        return ctx.run_workflow(child).get_result()

    with app:
        began = time.monotonic()
        assert app.run_workflow(parent).get_result() == "a week later"
        assert time.monotonic() - began < 0.5


def test_hold_lets_a_test_send_before_timeouts_fire(
    durakit_app_factory: AppFactory, durakit_clock: FakeClock
) -> None:
    app = durakit_app_factory()

    @app.workflow()
    def approval(ctx: dk.Context) -> bool:
        return bool(ctx.recv("decision", timeout=timedelta(hours=1)))

    with app:
        with durakit_clock.hold():  # no timeout may fire until the test has sent
            handle = app.run_workflow(approval)
            app.send(handle.workflow_id, True, topic="decision")
        assert handle.get_result() is True
    assert durakit_clock.now_datetime() == START_2025


def test_the_factory_builds_in_memory_engines_on_the_fake_clock(
    durakit_app_factory: AppFactory, durakit_clock: FakeClock
) -> None:
    first = durakit_app_factory()
    second = durakit_app_factory("other", executor_id="exec-2")
    assert first.clock is durakit_clock
    assert second.clock is durakit_clock
    assert first.config.app_name == "test"
    assert second.config.app_name == "other"
    assert second.executor_id == "exec-2"
    assert isinstance(first.config.store, dk.MemoryStore)
    assert first.config.store is not second.config.store
    own = FakeClock()
    assert durakit_app_factory(clock=own).clock is own


DOCS = Path(__file__).resolve().parent.parent / "docs" / "testing.md"
FENCE = re.compile(r"^```python\n# (\S+\.py)\n(.*?)^```$", flags=re.DOTALL | re.MULTILINE)

TEARDOWN_CHECK = """
import pytest
import durakit as dk

made = []


@pytest.fixture
def after_teardown():
    yield
    assert len(made) == 2
    for app in made:  # shut down: starting a workflow is refused
        with pytest.raises(dk.InitializationError):
            app.run_workflow(noop)


def noop(ctx: dk.Context) -> None:
    pass


def test_uses_factory(after_teardown, durakit_app_factory):
    for name in ("a", "b"):
        app = durakit_app_factory(name)
        app.register_workflow(noop)
        app.launch()
        app.run_workflow(noop).get_result()
        made.append(app)
"""


def test_the_docs_examples_pass_in_a_project_that_only_installed_durakit(
    tmp_path: Path,
) -> None:
    """docs/testing.md's blocks, written to the files they name, pass under pytest in a
    directory of their own: the fixtures come from the entry-point plugin alone, and
    every engine the factory made is shut down at teardown."""
    files: dict[str, str] = {}
    for match in FENCE.finditer(DOCS.read_text()):
        files[match.group(1)] = files.get(match.group(1), "") + match.group(2) + "\n"
    assert sorted(files) == ["shop.py", "test_shop.py"]
    files["test_teardown.py"] = TEARDOWN_CHECK
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    expected = sum(text.count("\ndef test_") for text in files.values())

    base = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"]

    def pytest_in_tmp(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*base, *args], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
        )

    listed = pytest_in_tmp("--fixtures")
    assert "durakit_clock" in listed.stdout
    assert "durakit_app_factory" in listed.stdout
    ran = pytest_in_tmp("-W", "error")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert f"{expected} passed" in ran.stdout
