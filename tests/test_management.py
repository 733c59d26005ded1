"""Management: list, retrieve, steps, cancel, resume and fork, on every store kind."""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import attrs
import pytest

import durakit as dk
from tests.conftest import StoreFactory
from tests.helpers import WAIT, Counts, ManualClock, ThreadLog, new_app, wait_until

T0 = 1_700_000_000.0


def at(offset: float) -> datetime:
    return datetime.fromtimestamp(T0 + offset, tz=UTC)


@attrs.frozen
class Parcel:
    sku: str
    weight_grams: int


# -- list_workflows ------------------------------------------------------------------------


class Listing:
    """Five workflows at known times, statuses, versions and executors:

    ======  ========  =======  =======  ========  =========  ====
    id      name      created  status   version   executor   user
    ======  ========  =======  =======  ========  =========  ====
    a-1     alpha     T0+10    SUCCESS  v1        e1         alice
    a-2     alpha     T0+20    ERROR    v1        e1
    b-1     beta      T0+30    SUCCESS  v2        e1
    a-3     alpha     T0+40    PENDING  v1        e1
    x-1     alpha     T0+50    SUCCESS  v1        e2
    ======  ========  =======  =======  ========  =========  ====
    """

    def __init__(self, store_factory: StoreFactory) -> None:
        self.gate = threading.Event()
        gate = self.gate
        self.clock = ManualClock(T0)
        self.e1 = new_app(store_factory(), executor_id="e1", clock=self.clock)
        self.e2 = new_app(store_factory(), executor_id="e2", clock=self.clock)

        def alpha(ctx: dk.Context, x: int) -> int:
            if x < 0:
                raise ValueError(f"negative: {x}")
            if x == 0:
                gate.wait(WAIT)
            return x * 2

        def beta(ctx: dk.Context) -> str:
            return "b"

        for engine in (self.e1, self.e2):
            engine.register_workflow(alpha, name="alpha")
            engine.register_workflow(beta, name="beta")
        self.e1.launch()
        self.e2.launch()
        e1, e2 = self.e1, self.e2
        self.clock.set(T0 + 10)
        e1.run_workflow(alpha, 1, workflow_id="a-1", authenticated_user="alice").get_result()
        self.clock.set(T0 + 20)
        with pytest.raises(ValueError, match="negative"):
            e1.run_workflow(alpha, -1, workflow_id="a-2").get_result()
        self.clock.set(T0 + 30)
        e1.run_workflow(beta, workflow_id="b-1", application_version="v2").get_result()
        self.clock.set(T0 + 40)
        e1.run_workflow(alpha, 0, workflow_id="a-3")
        self.clock.set(T0 + 50)
        e2.run_workflow(alpha, 5, workflow_id="x-1").get_result()

    def ids(self, **filters: Any) -> list[str]:
        return [w.workflow_id for w in self.e1.list_workflows(**filters)]

    def close(self) -> None:
        self.gate.set()
        self.e1.shutdown()
        self.e2.shutdown()


@pytest.fixture
def listing(store_factory: StoreFactory) -> Iterator[Callable[[], Listing]]:
    made: list[Listing] = []

    def make() -> Listing:
        made.append(Listing(store_factory))
        return made[-1]

    yield make
    for listing in made:
        listing.close()


def test_list_workflows_by_id_status_name_version_executor_and_prefix(
    listing: Callable[[], Listing],
) -> None:
    ws = listing()
    S = dk.StatusType
    assert ws.ids() == ["a-1", "a-2", "b-1", "a-3", "x-1"]
    assert ws.ids(workflow_ids=["x-1", "a-2", "missing"]) == ["a-2", "x-1"]
    assert ws.ids(status=S.SUCCESS) == ["a-1", "b-1", "x-1"]
    assert ws.ids(status=[S.ERROR, S.PENDING]) == ["a-2", "a-3"]
    assert ws.ids(status=S.CANCELLED) == []
    assert ws.ids(name="beta") == ["b-1"]
    assert ws.ids(app_version="v2") == ["b-1"]
    assert ws.ids(executor_ids=["e2"]) == ["x-1"]
    assert ws.ids(executor_ids=["e1", "e2"]) == ["a-1", "a-2", "b-1", "a-3", "x-1"]
    assert ws.ids(workflow_id_prefix="a-") == ["a-1", "a-2", "a-3"]
    assert ws.ids(user="alice") == ["a-1"]
    assert ws.ids(name="alpha", status=S.SUCCESS, executor_ids=["e1"]) == ["a-1"]


def test_list_workflows_by_time_range_and_pages(
    listing: Callable[[], Listing],
) -> None:
    ws = listing()
    assert ws.ids(start_time=at(20), end_time=at(40)) == ["a-2", "b-1", "a-3"]
    assert ws.ids(start_time=at(41)) == ["x-1"]
    assert ws.ids(end_time=at(19)) == ["a-1"]
    assert ws.ids(limit=2) == ["a-1", "a-2"]
    assert ws.ids(limit=2, offset=1) == ["a-2", "b-1"]
    assert ws.ids(offset=4) == ["x-1"]
    assert ws.ids(sort_desc=True) == ["x-1", "a-3", "b-1", "a-2", "a-1"]
    assert ws.ids(sort_desc=True, limit=2, offset=1) == ["a-3", "b-1"]
    assert ws.ids(name="alpha", sort_desc=True, limit=1) == ["x-1"]


def test_list_workflows_decodes_or_skips_payloads(
    listing: Callable[[], Listing],
) -> None:
    ws = listing()
    full = {w.workflow_id: w for w in ws.e1.list_workflows()}
    a1, a2, b1, a3 = full["a-1"], full["a-2"], full["b-1"], full["a-3"]
    assert (a1.input, a1.output, a1.error) == (1, 2, None)
    assert a1.status is dk.StatusType.SUCCESS
    assert a1.name == "alpha"
    assert a1.created_at == at(10)
    assert a1.executor_id == "e1"
    assert a1.application_version == "v1"
    assert a1.application_id == "t"
    assert a1.authenticated_user == "alice"
    assert a1.attempts == 1
    assert (a2.input, a2.output) == (-1, None)
    assert isinstance(a2.error, ValueError)
    assert str(a2.error) == "negative: -1"
    assert (b1.input, b1.output, b1.application_version) == (None, "b", "v2")
    assert (a3.status, a3.input, a3.output) == (dk.StatusType.PENDING, 0, None)
    assert full["x-1"].executor_id == "e2"

    no_input = {w.workflow_id: w for w in ws.e1.list_workflows(load_input=False)}
    assert [w.input for w in no_input.values()] == [None] * 5
    assert no_input["a-1"].output == 2
    assert isinstance(no_input["a-2"].error, ValueError)
    no_output = {w.workflow_id: w for w in ws.e1.list_workflows(load_output=False)}
    assert [(w.output, w.error) for w in no_output.values()] == [(None, None)] * 5
    assert no_output["a-1"].input == 1
    assert no_output["a-1"].status is dk.StatusType.SUCCESS


# -- retrieve and steps --------------------------------------------------------------------


def test_retrieve_workflow_and_its_steps(store_factory: StoreFactory) -> None:
    app = new_app(store_factory())

    @app.workflow(name="pack")
    def pack(ctx: dk.Context, sku: str) -> Parcel:
        weight = ctx.run_step(lambda: 1200, name="weigh")
        with contextlib.suppress(KeyError):
            ctx.run_step(lambda: {"missing": sku}["nope"], name="lookup")
        return Parcel(sku, weight)

    with app:
        app.run_workflow(pack, "sku-3", workflow_id="pk").get_result(WAIT)
        handle = app.retrieve_workflow("pk")
        assert handle.workflow_id == "pk"
        assert handle.get_result(timeout=WAIT) == Parcel("sku-3", 1200)
        steps = app.get_workflow_steps("pk")
        with pytest.raises(dk.NonExistentWorkflowError) as caught:
            app.retrieve_workflow("nope")
        assert caught.value.workflow_id == "nope"
    assert [(s.step_id, s.name, s.output) for s in steps] == [
        (0, "weigh", 1200),
        (1, "lookup", None),
    ]
    assert isinstance(steps[1].error, KeyError)
    assert steps[1].child_workflow_id is None

    # An engine that does not know the workflow decodes plain JSON, unless told the type.
    stranger = new_app(store_factory())
    with stranger:
        assert stranger.retrieve_workflow("pk").get_result(WAIT) == {
            "sku": "sku-3",
            "weight_grams": 1200,
        }
        typed = stranger.retrieve_workflow("pk", Parcel).get_result(WAIT)
        assert typed == Parcel("sku-3", 1200)


# -- cancel and resume ---------------------------------------------------------------------


def _in_wait(app: dk.Durakit, workflow_id: str, steps: int) -> Callable[[], bool]:
    """True once the workflow recorded ``steps`` steps (the last one a durable wait)."""
    return lambda: len(app.get_workflow_steps(workflow_id)) >= steps


@pytest.mark.parametrize("wait", ["sleep", "recv"])
def test_cancel_stops_a_workflow_blocked_in_a_wait(store: dk.SystemStore, wait: str) -> None:
    counts = Counts()
    app = new_app(store)

    @app.workflow(name="waiter")
    def waiter(ctx: dk.Context) -> str:
        ctx.run_step(lambda: counts.bump("before"), name="before")
        if wait == "sleep":
            ctx.sleep(60)
        else:
            ctx.recv("go", timeout=60)
        counts.bump("after")
        return "finished"

    with app:
        handle = app.run_workflow(waiter, workflow_id="c")
        wait_until(_in_wait(app, "c", 2))
        started = time.monotonic()
        app.cancel_workflow("c")
        with pytest.raises(dk.AwaitedWorkflowCancelledError) as caught:
            handle.get_result(timeout=WAIT)
        assert time.monotonic() - started < 5  # woken, not timed out
        assert caught.value.workflow_id == "c"
        assert caught.value.code is dk.ErrorCode.AWAITED_WORKFLOW_CANCELLED
        assert handle.get_status().status is dk.StatusType.CANCELLED
        with pytest.raises(dk.AwaitedWorkflowCancelledError):
            app.retrieve_workflow("c").get_result(timeout=WAIT)
    assert counts.as_dict() == {"before": 1}


def test_cancel_does_not_interrupt_a_running_step_but_stops_before_the_next(
    store: dk.SystemStore,
) -> None:
    counts = Counts()
    entered, release = threading.Event(), threading.Event()
    app = new_app(store)

    def slow() -> int:
        counts.bump("slow")
        entered.set()
        release.wait(WAIT)
        return counts.bump("slow finished")

    @app.workflow()
    def wf(ctx: dk.Context) -> int:
        ctx.run_step(slow, name="slow")
        return ctx.run_step(lambda: counts.bump("next"), name="next")

    with app:
        handle = app.run_workflow(wf, workflow_id="mid-step")
        assert entered.wait(WAIT)
        app.cancel_workflow("mid-step")
        release.set()
        with pytest.raises(dk.AwaitedWorkflowCancelledError):
            handle.get_result(timeout=WAIT)
        assert handle.get_status().status is dk.StatusType.CANCELLED
    assert counts.as_dict() == {"slow": 1, "slow finished": 1}


def test_cancel_is_a_no_op_on_a_finished_workflow_and_rejects_unknown_ids(
    store: dk.SystemStore,
) -> None:
    app = new_app(store)

    @app.workflow()
    def quick(ctx: dk.Context) -> int:
        return 3

    with app:
        handle = app.run_workflow(quick, workflow_id="done")
        assert handle.get_result(WAIT) == 3
        app.cancel_workflow("done")
        assert handle.get_status().status is dk.StatusType.SUCCESS
        assert app.retrieve_workflow("done").get_result(WAIT) == 3
        with pytest.raises(dk.NonExistentWorkflowError):
            app.cancel_workflow("missing")


def test_resume_continues_a_cancelled_workflow_from_its_last_completed_step(
    store: dk.SystemStore,
) -> None:
    counts = Counts()
    app = new_app(store)

    @app.workflow(name="resumable")
    def resumable(ctx: dk.Context) -> str:
        a = ctx.run_step(lambda: f"a{counts.bump('a')}", name="a")
        message = ctx.recv("go", timeout=60, type=str)
        b = ctx.run_step(lambda: f"b{counts.bump('b')}", name="b")
        return f"{a}+{message}+{b}"

    with app:
        handle = app.run_workflow(resumable, workflow_id="res")
        wait_until(_in_wait(app, "res", 2))
        app.cancel_workflow("res")
        with pytest.raises(dk.AwaitedWorkflowCancelledError):
            handle.get_result(timeout=WAIT)

        resumed = app.resume_workflow("res")
        assert resumed.workflow_id == "res"
        app.send("res", "go!", topic="go")
        assert resumed.get_result(timeout=WAIT) == "a1+go!+b1"
        status = app.retrieve_workflow("res").get_status()
        assert status.status is dk.StatusType.SUCCESS
        assert [s.name for s in app.get_workflow_steps("res")] == [
            "a",
            "durakit.sleep",
            "durakit.recv",
            "b",
        ]

        # Resuming a finished workflow changes nothing and runs nothing.
        again = app.resume_workflow("res")
        assert again.get_result(timeout=WAIT) == "a1+go!+b1"
        assert app.retrieve_workflow("res").get_status().updated_at == status.updated_at
    assert counts.as_dict() == {"a": 1, "b": 1}


def test_resume_is_a_no_op_on_a_failed_workflow(store: dk.SystemStore) -> None:
    counts = Counts()
    app = new_app(store)

    @app.workflow()
    def fails(ctx: dk.Context) -> int:
        counts.bump("body")
        raise RuntimeError("boom")

    with app:
        with pytest.raises(RuntimeError):
            app.run_workflow(fails, workflow_id="f").get_result(WAIT)
        with pytest.raises(RuntimeError, match="boom"):
            app.resume_workflow("f").get_result(WAIT)
        assert app.retrieve_workflow("f").get_status().status is dk.StatusType.ERROR
    assert counts["body"] == 1


def test_a_cancelled_execution_ending_late_does_not_detach_the_resumed_one(
    store: dk.SystemStore,
) -> None:
    """Cancel while a step runs, resume at once (the cancelled execution is still
    inside its step), then let the old execution end: cancelling the resumed execution
    must still wake it from its sleep."""
    counts = Counts()
    entered, release = threading.Event(), threading.Event()
    stale = ThreadLog()
    app = new_app(store)

    def step_once() -> int:
        attempt = counts.bump("step")
        if attempt == 1:
            stale.here()
            entered.set()
            release.wait(WAIT)
        return attempt

    @app.workflow()
    def wf(ctx: dk.Context) -> int:
        value = ctx.run_step(step_once, name="step")
        ctx.sleep(60)
        return value

    with app:
        first = app.run_workflow(wf, workflow_id="twice")
        assert entered.wait(WAIT)
        app.cancel_workflow("twice")
        resumed = app.resume_workflow("twice")
        wait_until(_in_wait(app, "twice", 2))  # the resumed execution sleeps
        release.set()
        stale.join_all()
        app.cancel_workflow("twice")
        started = time.monotonic()
        with pytest.raises(dk.AwaitedWorkflowCancelledError):
            resumed.get_result(timeout=WAIT)
        assert time.monotonic() - started < 5
        with pytest.raises(dk.AwaitedWorkflowCancelledError):
            first.get_result(timeout=WAIT)
    assert counts["step"] == 2


# -- fork ----------------------------------------------------------------------------------


def test_fork_reuses_outputs_before_the_start_step_and_runs_the_rest(
    store: dk.SystemStore,
) -> None:
    counts = Counts()
    app = new_app(store)

    @dk.step(name="pick")
    def pick(sku: str) -> Parcel:
        return Parcel(sku, 100 * counts.bump("pick"))

    def numbered(name: str) -> str:
        return f"{name}#{counts.bump(name)}"

    @app.workflow(name="forkable")
    def forkable(ctx: dk.Context, sku: str) -> list[str]:
        parcel = pick(sku)  # replayed from the copy as a Parcel, not a dict
        out = [f"{parcel.sku}:{parcel.weight_grams}"]
        for name in ("s1", "s2", "s3"):
            out.append(ctx.run_step(functools.partial(numbered, name), name=name))
        return out

    with app:
        original = app.run_workflow(forkable, "sku", workflow_id="orig").get_result(WAIT)
        assert original == ["sku:100", "s1#1", "s2#1", "s3#1"]

        forked = app.fork_workflow("orig", 2, forked_workflow_id="fork-2")
        assert forked.workflow_id == "fork-2"
        assert forked.get_result(timeout=WAIT) == ["sku:100", "s1#1", "s2#2", "s3#2"]
        fork_status = forked.get_status()
        assert fork_status.name == "forkable"
        assert fork_status.input == "sku"
        assert fork_status.status is dk.StatusType.SUCCESS
        fork_steps = app.get_workflow_steps("fork-2")

        from_zero = app.fork_workflow("orig", 0, application_version="v1").get_result(WAIT)
        assert from_zero == ["sku:200", "s1#2", "s2#3", "s3#3"]

        # The original is untouched.
        assert app.retrieve_workflow("orig").get_result(WAIT) == original
        with pytest.raises(dk.NonExistentWorkflowError):
            app.fork_workflow("missing", 1)
    assert [(s.step_id, s.name, s.output) for s in fork_steps] == [
        (0, "pick", {"sku": "sku", "weight_grams": 100}),
        (1, "s1", "s1#1"),
        (2, "s2", "s2#2"),
        (3, "s3", "s3#2"),
    ]
    assert counts.as_dict() == {"pick": 2, "s1": 2, "s2": 3, "s3": 3}
