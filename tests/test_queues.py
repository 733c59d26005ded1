"""Queues on every store: registration, enqueue options, limits, order, deduplication,
delays, cancel and resume of queued work, listing, and recovery through the queue."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

import durakit as dk
from durakit.core.status import FINISHED
from durakit.testing import FakeClock
from tests.conftest import StoreFactory
from tests.helpers import WAIT, new_app, wait_until

Q = dk.StatusType


class Gate:
    """Workflow bodies that record when they run and block until released."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.running = 0
        self.peak = 0
        self.started: list[str] = []
        self.runs: dict[str, int] = {}

    def enter(self, key: str) -> None:
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
            self.started.append(key)
            self.runs[key] = self.runs.get(key, 0) + 1

    def leave(self) -> None:
        with self.lock:
            self.running -= 1

    def count(self, key: str) -> int:
        with self.lock:
            return self.runs.get(key, 0)

    def started_count(self) -> int:
        with self.lock:
            return len(self.started)


class Apps:
    """Engines on one database, each set up (workflows, queues) before launch."""

    def __init__(self, factory: StoreFactory, gate: Gate) -> None:
        self.factory = factory
        self.gate = gate
        self.apps: list[dk.Durakit] = []

    def make(
        self,
        queues: Callable[[dk.Durakit], Any] = lambda app: None,
        *,
        executor_id: str = "local",
        clock: dk.Clock | None = None,
        launch: bool = True,
    ) -> dk.Durakit:
        app = new_app(self.factory(), executor_id=executor_id, clock=clock)
        gate = self.gate

        @app.workflow(name="blocking")
        def blocking(ctx: dk.Context, key: str) -> str:
            ctx.run_step(lambda: gate.enter(key), name="enter")
            try:
                gate.release.wait(WAIT)
            finally:
                gate.leave()
            return key

        @app.workflow(name="quick")
        def quick(ctx: dk.Context, key: str) -> str:
            return ctx.run_step(key.upper, name="upper")

        queues(app)
        self.apps.append(app)
        if launch:
            app.launch()
        return app

    def close(self) -> None:
        self.gate.release.set()
        for app in reversed(self.apps):
            app.shutdown(timeout=2.0)


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def apps(store_factory: StoreFactory, gate: Gate) -> Iterator[Apps]:
    made = Apps(store_factory, gate)
    yield made
    made.close()


def fn(app: dk.Durakit, name: str) -> Any:
    defn = app.registry.by_name(name)
    assert defn is not None
    return defn.fn


def status(app: dk.Durakit, wid: str) -> dk.StatusType:
    return app.get_workflow_status(wid).status


def wait_status(app: dk.Durakit, wid: str, want: dk.StatusType) -> None:
    wait_until(lambda: status(app, wid) is want)


# -- registration and options ---------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"worker_concurrency": 0}, "worker_concurrency"),
        ({"concurrency": -1}, "concurrency"),
        ({"concurrency": 1.5}, "concurrency"),
        ({"max_tasks_per_iteration": 0}, "max_tasks_per_iteration"),
        ({"worker_concurrency": 3, "concurrency": 2}, "worker_concurrency"),
        ({"priority_enabled": "yes"}, "priority_enabled"),
        ({"rate_limit": (1, 2)}, "rate_limit"),
    ],
)
def test_invalid_limits_raise_initialization_error_naming_the_field(
    options: dict[str, Any], field: str
) -> None:
    app = new_app(dk.MemoryStore())
    with pytest.raises(dk.InitializationError, match=field):
        app.queue("q", **options)
    assert app.queues == {}


@pytest.mark.parametrize(
    ("limit", "period", "field"),
    [(0, 1.0, "rate_limit.limit"), (1, 0, "rate_limit.period"), (1, -1, "rate_limit.period")],
)
def test_invalid_rate_limits_name_the_field(limit: int, period: float, field: str) -> None:
    with pytest.raises(dk.InitializationError, match=field):
        dk.RateLimit(limit, period)


def test_a_queue_is_registered_once_and_before_launch() -> None:
    app = new_app(dk.MemoryStore())
    q = app.queue("q", concurrency=3, rate_limit=dk.RateLimit(2, timedelta(seconds=1)))
    assert (q.name, q.concurrency) == ("q", 3)
    assert q.policy.rate_limit is not None
    assert q.policy.rate_limit.period_ms == 1000
    with pytest.raises(dk.ConflictingRegistrationError, match="already registered"):
        app.queue("q")
    with app, pytest.raises(dk.ConflictingRegistrationError, match="after launch"):
        app.queue("late")


def test_unknown_queues_and_options_a_queue_does_not_allow_are_refused(apps: Apps) -> None:
    def setup(app: dk.Durakit) -> None:
        app.queue("plain")
        app.queue("split", partition_queue=True)

    app = apps.make(setup)
    quick = fn(app, "quick")
    with pytest.raises(dk.WorkflowExecutionError, match="'emials' is not registered"):
        app.run_workflow(quick, "x", queue="emials")
    with pytest.raises(ValueError, match="priority_enabled"):
        app.run_workflow(quick, "x", queue="plain", priority=1)
    with pytest.raises(ValueError, match="partition_queue"):
        app.run_workflow(quick, "x", queue="plain", queue_partition_key="k")
    with pytest.raises(ValueError, match="give queue_partition_key"):
        app.run_workflow(quick, "x", queue="split")
    with pytest.raises(ValueError, match="need"):
        app.run_workflow(quick, "x", deduplication_id="d")
    with pytest.raises(ValueError, match="delay"):
        app.run_workflow(quick, "x", queue="plain", delay=-1)
    assert app.list_workflows() == []  # nothing was written


def test_priority_must_be_an_int_in_range(apps: Apps) -> None:
    app = apps.make(lambda a: a.queue("p", priority_enabled=True))
    quick = fn(app, "quick")
    with pytest.raises(TypeError, match="priority"):
        app.run_workflow(quick, "x", queue="p", priority=True)
    with pytest.raises(ValueError, match="priority"):
        app.run_workflow(quick, "x", queue="p", priority=-1)


# -- running ------------------------------------------------------------------------------


def test_queued_workflows_run_and_return_their_results(apps: Apps) -> None:
    app = apps.make(lambda a: a.queue("q"))
    handles = [app.run_workflow(fn(app, "quick"), f"w{i}", queue="q") for i in range(5)]
    assert [h.get_result(timeout=WAIT) for h in handles] == [f"W{i}" for i in range(5)]
    listed = app.list_workflows(queue_name="q")
    assert {s.status for s in listed} == {Q.SUCCESS}
    assert all(s.queue_name == "q" and s.started_at is not None for s in listed)


def test_worker_concurrency_bounds_one_executor(apps: Apps, gate: Gate) -> None:
    app = apps.make(lambda a: a.queue("q", worker_concurrency=2))
    blocking = fn(app, "blocking")
    # IDs in arrival order too: FIFO is by creation time (ms), then ID.
    handles = [
        app.run_workflow(blocking, f"w{i}", queue="q", workflow_id=f"w{i}") for i in range(5)
    ]
    wait_until(lambda: gate.started_count() == 2)
    assert sorted(gate.started) == ["w0", "w1"]
    statuses = [status(app, h.workflow_id) for h in handles]
    assert statuses.count(Q.PENDING) == 2
    assert statuses.count(Q.ENQUEUED) == 3
    gate.release.set()
    assert [h.get_result(timeout=WAIT) for h in handles] == [f"w{i}" for i in range(5)]
    assert gate.peak == 2


def test_global_concurrency_holds_across_executors(apps: Apps, gate: Gate) -> None:
    def setup(app: dk.Durakit) -> None:
        app.queue("q", worker_concurrency=2, concurrency=3)

    first = apps.make(setup, executor_id="a")
    second = apps.make(setup, executor_id="b")
    handles = [first.run_workflow(fn(first, "blocking"), f"w{i}", queue="q") for i in range(8)]
    wait_until(lambda: gate.started_count() == 3)
    running = first.list_workflows(queue_name="q", status=Q.PENDING)
    assert len(running) == 3
    by_executor = [s.executor_id for s in running]
    assert max(by_executor.count("a"), by_executor.count("b")) == 2
    gate.release.set()
    for h in handles:
        h.get_result(timeout=WAIT)
    assert gate.peak == 3
    assert sorted(gate.runs) == [f"w{i}" for i in range(8)]
    assert set(gate.runs.values()) == {1}
    assert second.list_workflows(queue_name="q", status=Q.SUCCESS)


def test_lower_priority_number_first_then_fifo(apps: Apps, gate: Gate) -> None:
    app = apps.make(lambda a: a.queue("p", concurrency=1, priority_enabled=True))
    blocking = fn(app, "blocking")
    first = app.run_workflow(blocking, "first", queue="p", priority=9)
    wait_until(lambda: gate.started == ["first"])
    order = [("c", 5), ("a", 1), ("d", 5), ("b", 3), ("e", 0)]
    handles = [
        app.run_workflow(blocking, k, queue="p", priority=p, workflow_id=k) for k, p in order
    ]
    assert app.get_workflow_status(handles[1].workflow_id).priority == 1
    gate.release.set()
    for h in [first, *handles]:
        h.get_result(timeout=WAIT)
    assert gate.started == ["first", "e", "a", "b", "c", "d"]


def test_partitions_have_limits_of_their_own(apps: Apps, gate: Gate) -> None:
    app = apps.make(lambda a: a.queue("s", concurrency=1, partition_queue=True))
    blocking = fn(app, "blocking")
    handles = [
        app.run_workflow(
            blocking, f"{p}{i}", queue="s", queue_partition_key=p, workflow_id=f"{p}{i}"
        )
        for i in range(2)
        for p in ("x", "y")
    ]
    wait_until(lambda: gate.started_count() == 2)
    assert sorted(gate.started) == ["x0", "y0"]  # one per partition
    gate.release.set()
    for h in handles:
        h.get_result(timeout=WAIT)
    assert gate.peak == 2


def test_a_deduplication_id_is_unique_among_active_workflows_of_a_queue(
    apps: Apps, gate: Gate
) -> None:
    app = apps.make(lambda a: (a.queue("q", concurrency=1), a.queue("other")))
    blocking, quick = fn(app, "blocking"), fn(app, "quick")
    running = app.run_workflow(blocking, "run", queue="q", deduplication_id="d-run")
    wait_until(lambda: gate.started == ["run"])  # holds the queue's only slot
    queued = app.run_workflow(quick, "a", queue="q", deduplication_id="d-queued")
    with pytest.raises(dk.QueueDeduplicatedError) as caught:
        app.run_workflow(quick, "b", queue="q", deduplication_id="d-queued")
    assert (caught.value.queue_name, caught.value.deduplication_id) == ("q", "d-queued")
    with pytest.raises(dk.QueueDeduplicatedError):
        app.run_workflow(quick, "b", queue="q", deduplication_id="d-run")
    # Another queue is another namespace.
    app.run_workflow(quick, "c", queue="other", deduplication_id="d-queued").get_result(WAIT)
    # Cancelled: released.
    app.cancel_workflow(queued.workflow_id)
    again = app.run_workflow(quick, "a2", queue="q", deduplication_id="d-queued")
    # Finished: released.
    gate.release.set()
    running.get_result(timeout=WAIT)
    again.get_result(timeout=WAIT)
    app.run_workflow(quick, "r2", queue="q", deduplication_id="d-run").get_result(WAIT)
    assert app.get_workflow_status(running.workflow_id).deduplication_id is None


def test_the_same_workflow_id_enqueued_twice_runs_once(apps: Apps) -> None:
    app = apps.make(lambda a: a.queue("q"))
    quick = fn(app, "quick")
    one = app.run_workflow(quick, "x", queue="q", workflow_id="same", deduplication_id="d")
    two = app.run_workflow(quick, "x", queue="q", workflow_id="same", deduplication_id="d")
    assert one.get_result(timeout=WAIT) == two.get_result(timeout=WAIT) == "X"
    assert len(app.get_workflow_steps("same")) == 1


def test_a_delayed_workflow_waits_on_the_engines_clock(apps: Apps) -> None:
    clock = FakeClock(auto_advance=False)
    app = apps.make(lambda a: a.queue("q"), clock=clock)
    handle = app.run_workflow(fn(app, "quick"), "later", queue="q", delay=timedelta(minutes=5))
    now = app.run_workflow(fn(app, "quick"), "now", queue="q")
    assert now.get_result(timeout=WAIT) == "NOW"
    assert status(app, handle.workflow_id) is Q.ENQUEUED
    clock.advance(299)
    assert status(app, handle.workflow_id) is Q.ENQUEUED
    clock.advance(1)
    wait_status(app, handle.workflow_id, Q.SUCCESS)


def test_rate_limit_counts_starts_in_a_sliding_window(apps: Apps) -> None:
    clock = FakeClock(auto_advance=False)
    app = apps.make(lambda a: a.queue("r", rate_limit=dk.RateLimit(2, 60.0)), clock=clock)
    handles = [app.run_workflow(fn(app, "quick"), f"w{i}", queue="r") for i in range(5)]

    def done() -> int:
        return len(app.list_workflows(queue_name="r", status=Q.SUCCESS))

    wait_until(lambda: done() == 2)
    clock.advance(30)
    assert done() == 2
    assert len(app.list_workflows(queue_name="r", status=Q.ENQUEUED)) == 3
    clock.advance(30)
    wait_until(lambda: done() == 4)
    clock.advance(60)
    wait_until(lambda: done() == 5)
    for h in handles:
        h.get_result(timeout=WAIT)


def test_a_queued_workflows_timeout_starts_at_dequeue(apps: Apps, gate: Gate) -> None:
    clock = FakeClock(auto_advance=False)
    app = apps.make(lambda a: a.queue("q", concurrency=1), clock=clock)
    blocker = app.run_workflow(fn(app, "blocking"), "b", queue="q")
    wait_until(lambda: gate.started == ["b"])
    queued = app.run_workflow(fn(app, "quick"), "t", queue="q", timeout=10.0)
    before = app.get_workflow_status(queued.workflow_id)
    assert (before.status, before.deadline, before.started_at) == (Q.ENQUEUED, None, None)
    clock.advance(60)  # longer than its timeout, while it waits: no effect
    assert status(app, queued.workflow_id) is Q.ENQUEUED
    gate.release.set()
    blocker.get_result(timeout=WAIT)
    assert queued.get_result(timeout=WAIT) == "T"
    after = app.get_workflow_status(queued.workflow_id)
    assert after.started_at is not None
    assert after.deadline is not None
    assert after.deadline - after.started_at == timedelta(seconds=10)


def test_cancel_of_an_enqueued_workflow_removes_it_from_its_queue(apps: Apps, gate: Gate) -> None:
    app = apps.make(lambda a: a.queue("q", concurrency=1))
    blocker = app.run_workflow(fn(app, "blocking"), "b", queue="q")
    wait_until(lambda: gate.started == ["b"])
    queued = app.run_workflow(fn(app, "blocking"), "never", queue="q")
    app.cancel_workflow(queued.workflow_id)
    assert status(app, queued.workflow_id) is Q.CANCELLED
    gate.release.set()
    blocker.get_result(timeout=WAIT)
    after = app.run_workflow(fn(app, "quick"), "after", queue="q")
    assert after.get_result(timeout=WAIT) == "AFTER"
    assert gate.count("never") == 0
    assert status(app, queued.workflow_id) is Q.CANCELLED


def test_resume_of_an_enqueued_workflow_runs_it_at_once_bypassing_its_queue(
    apps: Apps, gate: Gate
) -> None:
    app = apps.make(lambda a: a.queue("q", concurrency=1))
    blocker = app.run_workflow(fn(app, "blocking"), "b", queue="q")
    wait_until(lambda: gate.started == ["b"])
    queued = app.run_workflow(fn(app, "quick"), "jump", queue="q")
    assert status(app, queued.workflow_id) is Q.ENQUEUED
    assert app.resume_workflow(queued.workflow_id).get_result(timeout=WAIT) == "JUMP"
    assert status(app, blocker.workflow_id) is Q.PENDING  # still holding the only slot
    gate.release.set()
    blocker.get_result(timeout=WAIT)


def test_list_workflows_filters_by_queue(apps: Apps) -> None:
    app = apps.make(lambda a: (a.queue("q1"), a.queue("q2")))
    quick = fn(app, "quick")
    handles = [
        app.run_workflow(quick, "a", queue="q1"),
        app.run_workflow(quick, "b", queue="q2"),
        app.run_workflow(quick, "c"),
    ]
    for h in handles:
        h.get_result(timeout=WAIT)
    ids = [h.workflow_id for h in handles]
    assert [s.workflow_id for s in app.list_workflows(queue_name="q1")] == ids[:1]
    assert {s.workflow_id for s in app.list_workflows(queues_only=True)} == set(ids[:2])
    assert app.list_workflows(queue_name="q3") == []


def test_recovery_puts_started_queued_work_back_on_its_queue(apps: Apps, gate: Gate) -> None:
    def setup(app: dk.Durakit) -> None:
        app.queue("q", worker_concurrency=1)

    first = apps.make(setup)
    blocking = fn(first, "blocking")
    handles = [
        first.run_workflow(blocking, f"w{i}", queue="q", workflow_id=f"w{i}") for i in range(2)
    ]
    wait_until(lambda: gate.started == ["w0"])
    first.shutdown(timeout=0.5)  # w0 stays PENDING (interrupted), w1 ENQUEUED
    assert status(first, handles[0].workflow_id) is Q.PENDING
    second = apps.make(setup)  # recovers w0 (before the old thread could finish it)
    gate.release.set()
    for h in handles:
        wait_status(second, h.workflow_id, Q.SUCCESS)
    # The "enter" step of w0 was checkpointed before the shutdown: it did not run again.
    assert gate.runs == {"w0": 1, "w1": 1}
    assert second.get_workflow_status(handles[0].workflow_id).attempts == 2


def test_finished_work_is_final(apps: Apps) -> None:
    app = apps.make(lambda a: a.queue("q"))
    handle = app.run_workflow(fn(app, "quick"), "z", queue="q")
    handle.get_result(timeout=WAIT)
    assert status(app, handle.workflow_id) in FINISHED


class CountingStore(dk.MemoryStore):
    """Counts the queue calls a runner makes."""

    def __init__(self) -> None:
        super().__init__()
        self.claims = 0
        self.checks = 0

    def claim_queued(self, *args: Any, **kwargs: Any) -> Any:
        self.claims += 1
        return super().claim_queued(*args, **kwargs)

    def queues_with_work(self, *args: Any, **kwargs: Any) -> Any:
        self.checks += 1
        return super().queues_with_work(*args, **kwargs)


def test_idle_queues_cost_one_cheap_check_per_second() -> None:
    store = CountingStore()
    app = new_app(store)
    for i in range(50):
        app.queue(f"q{i}")
    with app:
        wait_until(lambda: store.claims == 50)  # each queue is looked at once at launch
        time.sleep(2.5)
        assert store.claims == 50  # idle: no claim at all
        assert 1 <= store.checks <= 4  # one check for all 50 queues per ~second


def test_a_backlog_in_one_queue_does_not_hold_up_another(apps: Apps, gate: Gate) -> None:
    app = apps.make(lambda a: (a.queue("busy", concurrency=1), a.queue("other")))
    blocking, quick = fn(app, "blocking"), fn(app, "quick")
    backlog = [app.run_workflow(blocking, f"b{i}", queue="busy") for i in range(20)]
    wait_until(lambda: gate.started_count() == 1)
    assert app.run_workflow(quick, "o", queue="other").get_result(timeout=WAIT) == "O"
    assert gate.started_count() == 1
    gate.release.set()
    for h in backlog:
        h.get_result(timeout=WAIT)
