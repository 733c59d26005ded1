"""A step that is running when its workflow is cancelled finishes, and its outcome is kept.

Cancellation stops a workflow at the start of its next durable operation; a running step
is not interrupted. Its outcome (value or exception) is still checkpointed -- the
execution that ran it still owns the workflow, only the status changed -- so a resume
does not run it (and its side effect) again. A body that returns right after that step
does not overwrite CANCELLED. Store level, engine level (memory, SQLite, Postgres), and
with a real worker process cancelled by a ``dk.Client`` in this one.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import durakit as dk
from durakit.backends import SystemStore
from durakit.core.records import WriteResult
from durakit.core.status import StatusType, WorkflowEvent
from tests.helpers import Counts, wait_until
from tests.proc_support import Backend, open_backend, start_worker, wait_for_line
from tests.records_support import OWNER, apply, fence, new_wf, run_threads, step
from tests.waiting_support import BlockingStep, Engines, status_of, step_names

CANCELLED = dk.StatusType.CANCELLED
PENDING = dk.StatusType.PENDING
SUCCESS = dk.StatusType.SUCCESS


def cancel(store: SystemStore, workflow_id: str = "wf") -> None:
    assert apply(store, workflow_id, WorkflowEvent.CANCEL, 2_000) is not None


def resume(store: SystemStore, new_owner: str, workflow_id: str = "wf") -> None:
    moved = apply(
        store, workflow_id, WorkflowEvent.RESUME, 3_000, owner=new_owner, executor_id="exec-b"
    )
    assert moved is not None


# -- the store ------------------------------------------------------------------------------


def test_the_running_executions_step_is_recorded_while_cancelled(store: SystemStore) -> None:
    store.insert_workflow(new_wf())
    cancel(store)
    verdict = store.record_step(fence(), step(0, output="1"), while_cancelled=True)
    assert verdict is WriteResult.RECORDED_WHILE_CANCELLED
    assert store.load_steps("wf") == [step(0, output="1")]
    record = store.get_workflow("wf")
    assert record is not None
    assert (record.status, record.owner) == (StatusType.CANCELLED, OWNER)


def test_a_wrong_owner_is_refused_while_cancelled(store: SystemStore) -> None:
    store.insert_workflow(new_wf())
    cancel(store)
    verdict = store.record_step(fence(owner="zombie"), step(0), while_cancelled=True)
    assert verdict is WriteResult.CANCELLED
    assert store.load_steps("wf") == []


def test_after_another_execution_claimed_it_the_old_one_is_refused(store: SystemStore) -> None:
    """Cancelled, resumed (a new owner token), cancelled again: the first execution's
    late outcome is refused both times; the second execution's is kept."""
    store.insert_workflow(new_wf())
    cancel(store)
    resume(store, "owner-2")
    late = store.record_step(fence(), step(0, output="old"), while_cancelled=True)
    assert late is WriteResult.NOT_OWNER
    cancel(store)
    late = store.record_step(fence(), step(0, output="old"), while_cancelled=True)
    assert late is WriteResult.CANCELLED
    kept = store.record_step(fence(owner="owner-2"), step(0, output="new"), while_cancelled=True)
    assert kept is WriteResult.RECORDED_WHILE_CANCELLED
    assert store.load_steps("wf") == [step(0, output="new")]


def test_a_step_racing_a_cancel_is_recorded_and_says_which_came_first(
    store: SystemStore,
) -> None:
    """Whichever wins, the step is recorded; the answer is OK only if the row was
    still PENDING when the step was written."""
    verdicts: dict[int, WriteResult] = {}
    for n in range(10):
        store.insert_workflow(new_wf(f"wf-{n}"))

        def act(i: int, n: int = n) -> None:
            if i == 0:
                cancel(store, f"wf-{n}")
            else:
                verdicts[n] = store.record_step(
                    fence(f"wf-{n}"), step(0, output="1"), while_cancelled=True
                )

        run_threads(2, act)
        assert verdicts[n] in (WriteResult.OK, WriteResult.RECORDED_WHILE_CANCELLED)
        assert store.load_steps(f"wf-{n}") == [step(0, output="1")]


# -- the engine -----------------------------------------------------------------------------


def cancelled_during_step(
    engines: Engines,
    workflow: Callable[..., Any],
    slow: BlockingStep,
    *,
    from_client: bool = False,
    also: tuple[Callable[..., Any], ...] = (),
    setup: Callable[[dk.Durakit], object] = lambda app: None,
) -> tuple[dk.Durakit, dk.WorkflowHandle[Any]]:
    """Start ``workflow`` as "wf" (after ``setup``), cancel it (here or from a client)
    while it is inside ``slow``, then let the step finish; returns once the execution
    has stopped."""
    app = engines.start(workflow, *also)
    setup(app)
    handle = app.run_workflow(workflow, workflow_id="wf")
    try:
        assert slow.started.wait(10)
        if from_client:
            with engines.client() as client:
                client.cancel_workflow("wf")
        else:
            app.cancel_workflow("wf")
        assert status_of(app, "wf") is CANCELLED
        assert slow.finished == 0  # not interrupted: still inside the step
    finally:
        slow.release.set()
    with pytest.raises(dk.AwaitedWorkflowCancelledError):
        handle.get_result(timeout=10)
    return app, handle


@pytest.mark.parametrize("canceller", ["engine", "client"])
def test_cancel_during_a_step_keeps_it_and_resume_does_not_run_it_again(
    engines: Engines, canceller: str
) -> None:
    counts = Counts()
    slow = BlockingStep()

    def workflow(ctx: dk.Context) -> list[int]:
        a = ctx.run_step(slow, name="slow")
        b = ctx.run_step(lambda: counts.bump("next"), name="next")
        return [a, b]

    app, _ = cancelled_during_step(engines, workflow, slow, from_client=canceller == "client")
    assert slow.finished == 1
    assert counts["next"] == 0  # the next step never ran
    assert [(s.name, s.output) for s in app.get_workflow_steps("wf")] == [("slow", 1)]
    assert status_of(app, "wf") is CANCELLED

    resumed = app.resume_workflow("wf")
    assert resumed.get_result(timeout=10) == [1, 1]
    assert slow.finished == 1  # the step that ran during the cancel did not run again
    assert counts.as_dict() == {"next": 1}
    assert step_names(app, "wf") == ["slow", "next"]
    assert status_of(app, "wf") is SUCCESS


def test_a_step_that_raised_during_the_cancel_keeps_its_error(engines: Engines) -> None:
    counts = Counts()
    slow = BlockingStep()

    def failing() -> None:
        slow()
        raise LookupError("declined")

    def workflow(ctx: dk.Context) -> str:
        try:
            ctx.run_step(failing, name="failing")
        except LookupError as exc:
            seen = str(exc)
        ctx.run_step(lambda: counts.bump("next"), name="next")
        return seen

    app, _ = cancelled_during_step(engines, workflow, slow)
    assert counts["next"] == 0
    [recorded] = app.get_workflow_steps("wf")
    assert (recorded.name, type(recorded.error)) == ("failing", LookupError)

    assert app.resume_workflow("wf").get_result(timeout=10) == "declined"  # replayed
    assert slow.finished == 1
    assert counts.as_dict() == {"next": 1}


def test_a_body_that_returns_after_its_last_step_stays_cancelled(engines: Engines) -> None:
    slow = BlockingStep()

    def workflow(ctx: dk.Context) -> str:
        ctx.run_step(slow, name="last")
        return "done"

    app, handle = cancelled_during_step(engines, workflow, slow)
    status = handle.get_status()
    assert (status.status, status.output, status.error) == (CANCELLED, None, None)
    assert step_names(app, "wf") == ["last"]

    assert app.resume_workflow("wf").get_result(timeout=10) == "done"
    assert slow.finished == 1
    assert status_of(app, "wf") is SUCCESS


@pytest.mark.parametrize("operation", ["sleep", "recv", "send", "set_event", "get_event", "child"])
def test_after_the_kept_step_the_next_operation_of_any_kind_stops(
    engines: Engines, operation: str
) -> None:
    counts = Counts()
    slow = BlockingStep()

    def child(ctx: dk.Context) -> None:
        counts.bump("child")

    def target(ctx: dk.Context) -> str:
        got: str = ctx.recv(timeout=30)
        return got

    nexts: dict[str, Callable[[dk.Context], object]] = {
        "sleep": lambda ctx: ctx.sleep(0),
        "recv": lambda ctx: ctx.recv(timeout=0),
        "send": lambda ctx: ctx.send("target", "from wf"),
        "set_event": lambda ctx: ctx.set_event("k", 1),
        "get_event": lambda ctx: ctx.get_event("target", "k", timeout=0),
        "child": lambda ctx: ctx.run_workflow(child, workflow_id="child"),
    }

    def workflow(ctx: dk.Context) -> None:
        ctx.run_step(slow, name="slow")
        nexts[operation](ctx)
        counts.bump("body went on")

    app, _ = cancelled_during_step(
        engines,
        workflow,
        slow,
        also=(child, target),
        setup=lambda app: app.run_workflow(target, workflow_id="target"),
    )
    assert counts.as_dict() == {}
    assert step_names(app, "wf") == ["slow"]
    with pytest.raises(dk.NonExistentWorkflowError):
        app.retrieve_workflow("child")
    with pytest.raises(dk.DurakitTimeoutError):
        app.get_event("wf", "k", timeout=0)
    app.send("target", "the only message")
    assert app.retrieve_workflow("target").get_result(timeout=10) == "the only message"


def test_a_timeout_during_a_step_keeps_its_outcome(engines: Engines) -> None:
    counts = Counts()
    slow = BlockingStep()

    def workflow(ctx: dk.Context) -> int:
        ctx.run_step(slow, name="slow")
        return ctx.run_step(lambda: counts.bump("next"), name="next")

    app = engines.start(workflow)
    handle = app.run_workflow(workflow, workflow_id="wf", timeout=0.3)
    try:
        assert slow.started.wait(10)
        wait_until(lambda: status_of(app, "wf") is CANCELLED)  # the deadline passed
    finally:
        slow.release.set()
    with pytest.raises(dk.AwaitedWorkflowCancelledError):
        handle.get_result(timeout=10)
    assert step_names(app, "wf") == ["slow"]
    assert counts["next"] == 0


def test_a_step_waiting_to_retry_stops_there_and_runs_again_on_resume(engines: Engines) -> None:
    """Between two attempts a step is not running: the cancel stops it in its backoff,
    nothing is recorded, and the resumed workflow starts the step over."""
    counts = Counts()

    def flaky() -> str:
        if counts.bump("attempt") == 1:
            raise ConnectionError("first attempt fails")
        return "ok"

    def workflow(ctx: dk.Context) -> str:
        return ctx.run_step(flaky, name="flaky", max_retries=3, base_interval=3600)

    app = engines.start(workflow)
    handle = app.run_workflow(workflow, workflow_id="wf")
    wait_until(lambda: counts["attempt"] == 1)
    app.cancel_workflow("wf")
    with pytest.raises(dk.AwaitedWorkflowCancelledError):
        handle.get_result(timeout=10)  # an hour-long backoff was cut short
    assert step_names(app, "wf") == []
    assert app.resume_workflow("wf").get_result(timeout=10) == "ok"
    assert counts["attempt"] == 2


# -- a real worker process, cancelled by a client in this one ---------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    with open_backend(request.param, tmp_path / "cancel.db") as made:
        yield made


@pytest.mark.slow
def test_a_worker_process_keeps_the_step_a_client_cancelled_it_in(
    backend: Backend, tmp_path: Path
) -> None:
    from tests.cancel_step_worker import WORKFLOW_ID

    log_path = tmp_path / "worker.log"
    ran = tmp_path / "ran.log"

    def lines() -> list[str]:
        return ran.read_text().split() if ran.exists() else []

    with log_path.open("wb") as log:
        proc = start_worker(
            "cancel_step_worker",
            [f"--db={backend.url}", f"--schema={backend.schema}", f"--dir={tmp_path}"],
            stderr=log,
            stdin=subprocess.PIPE,
        )
        try:
            wait_for_line(proc, b"in-step", log_path, 60)
            with dk.Client(database_url=backend.url, database_schema=backend.schema) as client:
                client.cancel_workflow(WORKFLOW_ID)
                assert client.get_workflow_status(WORKFLOW_ID).status is CANCELLED
                (tmp_path / "release").touch()  # the step finishes now
                wait_for_line(proc, b"cancelled", log_path, 60)
                steps = client.get_workflow_steps(WORKFLOW_ID)
                assert [(s.name, s.output) for s in steps] == [("slow", 42)]
                status = client.get_workflow_status(WORKFLOW_ID)
                assert (status.status, status.output) == (CANCELLED, None)
                assert lines() == ["slow"]  # the next step never ran

                assert proc.stdin is not None
                proc.stdin.write(b"resume\n")
                proc.stdin.flush()
                wait_for_line(proc, b"result 43", log_path, 60)
                assert lines() == ["slow", "after"]  # "slow" did not run again
                assert client.get_workflow_status(WORKFLOW_ID).status is SUCCESS
            assert proc.wait(60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
            with proc:  # closes its pipes and waits for it
                pass


def test_the_step_is_kept_on_a_fresh_engine_too(engines: Engines) -> None:
    """Resumed by another engine (another process's view of the database)."""
    slow = BlockingStep()
    counts = Counts()

    def workflow(ctx: dk.Context) -> int:
        ctx.run_step(slow, name="slow")
        return ctx.run_step(lambda: counts.bump("next"), name="next")

    cancelled_during_step(engines, workflow, slow)
    other = engines.start(workflow)
    assert other.resume_workflow("wf").get_result(timeout=10) == 1
    assert (slow.finished, counts["next"]) == (1, 1)
