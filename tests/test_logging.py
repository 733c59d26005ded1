"""What the engine logs, on every store: lifecycle at INFO, trouble at WARNING, steps at
DEBUG, each record once and with ``workflow_id`` / ``workflow_name`` (and ``step_id`` /
``step_name`` for steps) as extra attributes."""

from __future__ import annotations

import functools
import logging

import pytest

import durakit as dk
from tests.helpers import leave_pending, new_app, wait_until


def extra(record: logging.LogRecord, name: str) -> object:
    """An ``extra`` attribute of a record (unknown to the LogRecord type)."""
    return record.__dict__[name]


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="durakit")
    return caplog


def about(
    caplog: pytest.LogCaptureFixture, workflow_id: str, count: int = 0
) -> list[logging.LogRecord]:
    """The records about one workflow, once there are at least ``count`` of them (the
    outcome is published before the execution's thread logs it)."""

    def found() -> list[logging.LogRecord]:
        return [r for r in caplog.records if getattr(r, "workflow_id", None) == workflow_id]

    wait_until(lambda: len(found()) >= count)
    return found()


def test_a_workflow_logs_its_start_steps_and_finish_once(
    store: dk.SystemStore, logs: pytest.LogCaptureFixture
) -> None:
    app = new_app(store)

    @app.workflow(name="greet")
    def greet(ctx: dk.Context, who: str) -> str:
        hello = ctx.run_step(lambda: f"hello {who}", name="hello")
        return ctx.run_step(lambda: hello + "!", name="shout")

    with app:
        assert app.run_workflow(greet, "ann", workflow_id="g1").get_result() == "hello ann!"
        # Starting the same ID again finds the finished row: no second "started".
        app.run_workflow(greet, "ann", workflow_id="g1").get_result()

    records = about(logs, "g1", 4)
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.INFO, "workflow g1 (greet) started"),
        (logging.DEBUG, "step 0 (hello) of workflow g1 succeeded after 1 attempt(s)"),
        (logging.DEBUG, "step 1 (shout) of workflow g1 succeeded after 1 attempt(s)"),
        (logging.INFO, "workflow g1 (greet) finished: SUCCESS"),
    ]
    assert all(r.name == "durakit" and extra(r, "workflow_name") == "greet" for r in records)
    steps = [(extra(r, "step_id"), extra(r, "step_name")) for r in records[1:3]]
    assert steps == [(0, "hello"), (1, "shout")]
    assert extra(records[3], "status") == "SUCCESS"


def test_steps_are_quiet_at_the_default_level(
    store: dk.SystemStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="durakit")
    app = new_app(store)

    @app.workflow(name="quiet")
    def quiet(ctx: dk.Context) -> int:
        return sum(ctx.run_step(functools.partial(int, i), name=f"s{i}") for i in range(5))

    with app:
        assert app.run_workflow(quiet, workflow_id="q1").get_result() == 10
    assert [r.getMessage() for r in about(caplog, "q1", 2)] == [
        "workflow q1 (quiet) started",
        "workflow q1 (quiet) finished: SUCCESS",
    ]


def test_a_fire_and_forget_failure_is_a_warning_naming_the_workflow_and_error(
    store: dk.SystemStore, logs: pytest.LogCaptureFixture
) -> None:
    app = new_app(store)

    @app.workflow(name="charge")
    def charge(ctx: dk.Context) -> None:
        ctx.run_step(lambda: None, name="reserve")
        raise LookupError("card 4242 declined")

    with app:
        app.run_workflow(charge, workflow_id="c1")  # nobody awaits the result
        wait_until(lambda: app.get_workflow_status("c1").status is dk.StatusType.ERROR)
        wait_until(lambda: any(r.levelno == logging.WARNING for r in about(logs, "c1")))

    warnings = [r for r in about(logs, "c1") if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    (warning,) = warnings
    assert warning.getMessage() == (
        "workflow c1 (charge) failed: LookupError('card 4242 declined')"
    )
    assert (extra(warning, "workflow_name"), extra(warning, "status")) == ("charge", "ERROR")
    # With the traceback of the workflow's own raise.
    assert warning.exc_info is not None
    assert warning.exc_info[0] is LookupError
    assert "finished" not in " ".join(r.getMessage() for r in about(logs, "c1"))


def test_a_failing_step_is_a_debug_record_with_its_attempts(
    store: dk.SystemStore, logs: pytest.LogCaptureFixture
) -> None:
    app = new_app(store)
    tries = [0]

    def flaky() -> int:
        tries[0] += 1
        if tries[0] < 3:
            raise TimeoutError("try again")
        return tries[0]

    @app.workflow(name="flaky")
    def flaky_wf(ctx: dk.Context) -> int:
        return ctx.run_step(flaky, name="call", max_retries=2, base_interval=0.001)

    @app.workflow(name="doomed")
    def doomed(ctx: dk.Context) -> None:
        ctx.run_step(fn=lambda: 1 / 0, name="divide")  # fn by keyword works as well

    with app:
        assert app.run_workflow(flaky_wf, workflow_id="f1").get_result() == 3
        with pytest.raises(ZeroDivisionError):
            app.run_workflow(doomed, workflow_id="d1").get_result()

    (ok,) = [r for r in about(logs, "f1", 3) if r.levelno == logging.DEBUG]
    assert ok.getMessage() == "step 0 (call) of workflow f1 succeeded after 3 attempt(s)"
    assert extra(ok, "attempts") == 3
    (failed,) = [r for r in about(logs, "d1", 3) if r.levelno == logging.DEBUG]
    assert failed.getMessage().startswith(
        "step 0 (divide) of workflow d1 failed after 1 attempt(s): ZeroDivisionError("
    )
    assert (extra(failed, "step_id"), extra(failed, "step_name")) == (0, "divide")


def test_recovery_is_info_and_replayed_steps_say_nothing(
    store: dk.SystemStore, logs: pytest.LogCaptureFixture
) -> None:
    leave_pending(store, "r1", "resumable")
    app = new_app(store)

    @app.workflow(name="resumable")
    def resumable(ctx: dk.Context, key: str) -> str:
        return ctx.run_step(key.upper, name="upper")

    with app:
        app.retrieve_workflow("r1").get_result()
        records = about(logs, "r1", 3)
        assert [(r.levelno, r.getMessage()) for r in records] == [
            (logging.INFO, "workflow r1 (resumable) recovered: execution 2"),
            (logging.DEBUG, "step 0 (upper) of workflow r1 succeeded after 1 attempt(s)"),
            (logging.INFO, "workflow r1 (resumable) finished: SUCCESS"),
        ]
        logs.clear()
        # A fork replays the recorded step: it did not run and is not reported.
        app.fork_workflow("r1", 1, forked_workflow_id="r1-fork").get_result()
        assert [r.getMessage() for r in about(logs, "r1-fork", 2)] == [
            "workflow r1-fork (resumable) started",
            "workflow r1-fork (resumable) finished: SUCCESS",
        ]


def test_dead_letter_and_stranded_work_are_warnings(
    store: dk.SystemStore, logs: pytest.LogCaptureFixture
) -> None:
    leave_pending(store, "dl", "fragile")
    leave_pending(store, "gone", "unregistered")
    leave_pending(store, "old-1", "fragile", version="v0")
    leave_pending(store, "old-2", "fragile", version="v0")
    app = new_app(store)

    @app.workflow(name="fragile", max_recovery_attempts=0)
    def fragile(ctx: dk.Context, key: str) -> str:
        return key

    with app:
        pass

    (dead,) = about(logs, "dl")
    assert dead.levelno == logging.WARNING
    assert dead.getMessage().startswith("workflow dl (fragile) dead-lettered after 1 recoveries")
    (gone,) = about(logs, "gone")
    assert gone.levelno == logging.WARNING
    assert extra(gone, "workflow_name") == "unregistered"
    assert "'unregistered' is not registered" in gone.getMessage()
    (old,) = [r for r in logs.records if "of version 'v0'" in r.getMessage()]
    assert old.levelno == logging.WARNING
    assert old.getMessage().startswith(
        "2 PENDING or ENQUEUED workflows of application 't' are of version 'v0', "
        "not this engine's 'v1'"
    )


def test_a_cancelled_workflow_finishes_at_info(
    store: dk.SystemStore, logs: pytest.LogCaptureFixture
) -> None:
    app = new_app(store)

    @app.workflow(name="napper")
    def napper(ctx: dk.Context) -> None:
        ctx.sleep(60)

    with app:
        handle = app.run_workflow(napper, workflow_id="n1")
        wait_until(lambda: len(app.get_workflow_steps("n1")) == 1)
        app.cancel_workflow("n1")
        with pytest.raises(dk.AwaitedWorkflowCancelledError):
            handle.get_result()
    assert [(r.levelno, r.getMessage()) for r in about(logs, "n1", 2)] == [
        (logging.INFO, "workflow n1 (napper) started"),
        (logging.INFO, "workflow n1 (napper) finished: CANCELLED"),
    ]


def test_config_logger_receives_the_records(
    store: dk.SystemStore, caplog: pytest.LogCaptureFixture
) -> None:
    mine = logging.getLogger("shop.workflows")
    caplog.set_level(logging.INFO, logger="shop.workflows")
    app = dk.Durakit(dk.Config(app_name="t", store=store, application_version="v1", logger=mine))

    @app.workflow(name="noop")
    def noop(ctx: dk.Context) -> None:
        return None

    with app:
        app.run_workflow(noop, workflow_id="x1").get_result()
    records = about(caplog, "x1", 2)
    assert {r.name for r in records} == {"shop.workflows"}
    assert len(records) == 2


def test_an_enqueued_workflow_logs_its_enqueue_then_its_finish(
    store: dk.SystemStore, logs: pytest.LogCaptureFixture
) -> None:
    app = new_app(store)
    app.queue("payments")

    @app.workflow(name="pay")
    def pay(ctx: dk.Context) -> int:
        return ctx.run_step(lambda: 5, name="amount")

    with app:
        assert app.run_workflow(pay, workflow_id="q1", queue="payments").get_result() == 5
    records = about(logs, "q1", 3)
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.INFO, "workflow q1 (pay) enqueued on queue 'payments'"),
        (logging.DEBUG, "step 0 (amount) of workflow q1 succeeded after 1 attempt(s)"),
        (logging.INFO, "workflow q1 (pay) finished: SUCCESS"),
    ]
    assert extra(records[0], "queue_name") == "payments"
