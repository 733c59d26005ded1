"""Exceptions behave the same live, after recovery, in a fork and from another process,
on every store.

A workflow that catches a step's exception takes the same branch in each of these, with
the same attributes; ``get_result()`` raises the workflow's own exception type in any
process. What a replay cannot restore (an attribute that is not JSON) is absent on the
first run too, so a workflow never depends on something only a live run has.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import durakit as dk
from durakit.testing import FakeClock
from tests.helpers import Counts, new_app
from tests.proc_support import (
    Backend,
    open_backend,
    start_worker,
    tag_url,
    wait_for_line,
    wait_sessions_gone,
)
from tests.waiting_support import SLEEP, T0, Engines, settled, step_names, wait_for_step
from tests.worker_support import worker_app

HOUR = timedelta(hours=1)


class Declined(Exception):
    """Its ``__init__`` does not take its own ``args`` back."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class CodedError(Exception):
    def __init__(self, msg: str, code: int = 0) -> None:
        super().__init__(msg)
        self.code = code


class PaymentDeclined(Exception):
    def __init__(self, order: str, *, amount: int) -> None:
        super().__init__(f"payment for {order} declined")
        self.order = order
        self.amount = amount


class UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("str() is broken")


class BadReprError(Exception):
    def __repr__(self) -> str:
        raise RuntimeError("repr() is broken")


def decline() -> None:
    raise Declined(402, "card refused")


def rate_limited() -> None:
    exc = CodedError("slow down", code=429)
    exc.when = datetime(2030, 1, 1)  # type: ignore[attr-defined] # not JSON: never seen
    raise exc


def observe(ctx: dk.Context) -> list[Any]:
    """Catch two step exceptions and say what was seen; then a durable sleep."""
    seen: list[Any] = []
    try:
        ctx.run_step(decline, name="charge")
        seen.append("charged")
    except Declined as e:
        seen.append([type(e).__name__, e.code, e.reason, str(e)])
    try:
        ctx.run_step(rate_limited, name="quota")
    except CodedError as e:
        seen.append([type(e).__name__, e.code, str(e), hasattr(e, "when")])
    ctx.sleep(HOUR)
    return seen


EXPECTED = [
    ["Declined", 402, "card refused", "card refused"],
    ["CodedError", 429, "slow down", False],
]


def test_a_caught_step_exception_takes_the_same_branch_after_recovery(engines: Engines) -> None:
    first = engines.start(observe, clock=FakeClock(T0, auto_advance=False))
    first.run_workflow(observe, workflow_id="obs")
    wait_for_step(first, "obs", SLEEP)
    first.shutdown()  # mid-sleep: the workflow stays PENDING, as after a crash

    second = engines.start(observe, clock=FakeClock(T0 + 2 * HOUR))
    handle = settled(second.retrieve_workflow("obs"))
    assert handle.get_status().status is dk.StatusType.SUCCESS
    assert handle.get_result() == EXPECTED
    assert step_names(second, "obs") == ["charge", "quota", SLEEP]


def test_a_fork_replays_the_recorded_exceptions_with_their_attributes(engines: Engines) -> None:
    app = engines.start(observe, clock=FakeClock(T0))
    live = settled(app.run_workflow(observe, workflow_id="orig")).get_result()
    assert live == EXPECTED
    forked = settled(app.fork_workflow("orig", 2, forked_workflow_id="fork"))
    assert forked.get_result() == EXPECTED
    assert step_names(app, "fork") == ["charge", "quota", SLEEP]


def test_get_result_raises_the_original_type_in_every_process(engines: Engines) -> None:
    def pay(ctx: dk.Context, order: str) -> None:
        raise PaymentDeclined(order, amount=1250)

    runner = engines.start(pay)
    handle = runner.run_workflow(pay, "o-7", workflow_id="pay")
    readers: list[Any] = [handle, runner.retrieve_workflow("pay")]
    readers.append(engines.start(pay).retrieve_workflow("pay"))  # another engine
    client = engines.client()  # another process's view, knowing no workflow
    try:
        readers.append(client.retrieve_workflow("pay"))
        for reader in readers:
            with pytest.raises(PaymentDeclined) as caught:
                reader.get_result(timeout=10)
            assert (caught.value.order, caught.value.amount) == ("o-7", 1250)
            assert str(caught.value) == "payment for o-7 declined"
        error = client.get_workflow_status("pay").error
        assert isinstance(error, PaymentDeclined)
        assert error.amount == 1250
    finally:
        client.close()


def test_an_exception_whose_str_raises_ends_its_workflow_in_error(engines: Engines) -> None:
    def broken(ctx: dk.Context) -> None:
        raise UnprintableError("x")

    app = engines.start(broken)
    handle = settled(app.run_workflow(broken, workflow_id="broken"))
    assert handle.get_status().status is dk.StatusType.ERROR
    with pytest.raises(UnprintableError):
        handle.get_result()
    row = app.store.get_workflow("broken")
    assert row is not None
    assert row.error is not None
    assert "UnprintableError" in json.loads(row.error)["d"]["message"]


def test_a_step_exception_whose_str_raises_is_recorded_and_caught(engines: Engines) -> None:
    counts = Counts()

    def unprintable() -> None:
        counts.bump("step")
        raise UnprintableError("x")

    def catcher(ctx: dk.Context) -> str:
        try:
            ctx.run_step(unprintable, name="unprintable")
        except UnprintableError as e:
            return f"caught {type(e).__name__} {e.args}"
        return "not raised"

    app = engines.start(catcher)
    assert (
        app.run_workflow(catcher, workflow_id="c").get_result(timeout=10)
        == "caught UnprintableError ('x',)"
    )
    forked = app.fork_workflow("c", 1, forked_workflow_id="c-fork")
    assert forked.get_result(timeout=10) == "caught UnprintableError ('x',)"
    assert counts["step"] == 1


def test_retries_of_an_exception_whose_repr_raises_end_in_max_retries(engines: Engines) -> None:
    def bad_repr() -> None:
        raise BadReprError("nope")

    def retried(ctx: dk.Context) -> None:
        ctx.run_step(bad_repr, name="bad_repr", max_retries=1, base_interval=0.01)

    app = engines.start(retried)
    handle = settled(app.run_workflow(retried, workflow_id="r"))
    assert handle.get_status().status is dk.StatusType.ERROR
    with pytest.raises(dk.MaxStepRetriesExceededError) as caught:
        handle.get_result()
    assert [type(e) for e in caught.value.errors] == [BadReprError, BadReprError]
    assert "BadReprError" in str(caught.value)


def test_a_workflow_error_of_a_class_no_reader_can_import_carries_its_attributes(
    store: dk.SystemStore,
) -> None:
    class LocalDeclined(Exception):
        def __init__(self, code: int) -> None:
            super().__init__(f"declined with {code}")
            self.code = code

    app = new_app(store)

    @app.workflow(name="local")
    def local(ctx: dk.Context) -> None:
        raise LocalDeclined(451)

    with app:
        handle = app.run_workflow(local, workflow_id="local")
        with pytest.raises(dk.WorkflowExecutionError) as live:
            handle.get_result(timeout=10)
        with pytest.raises(dk.WorkflowExecutionError) as stored:
            app.retrieve_workflow("local").get_result(timeout=10)
    for caught in (live.value, stored.value):
        assert caught.error_type == f"{__name__}.{LocalDeclined.__qualname__}"
        assert caught.attributes == {"code": 451}
        assert "declined with 451" in str(caught)


# -- a real SIGKILL --------------------------------------------------------------------------

CRASH_APP, CRASH_VERSION, CRASH_WORKFLOW = "declined-crash", "declined-v1", "declined"


def observe_durably(ctx: dk.Context) -> list[Any]:
    """``observe`` with a real two-second sleep (tests/declined_crash_worker.py)."""
    seen: list[Any] = []
    try:
        ctx.run_step(decline, name="charge")
    except Declined as e:
        seen.append([type(e).__name__, e.code, e.reason, str(e)])
    try:
        ctx.run_step(rate_limited, name="quota")
    except CodedError as e:
        seen.append([type(e).__name__, e.code, str(e), hasattr(e, "when")])
    ctx.sleep(2.0)
    return seen


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    with open_backend(request.param, tmp_path / "declined.db") as made:
        yield made


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")
def test_a_caught_exception_takes_the_same_branch_after_sigkill(
    backend: Backend, tmp_path: Path
) -> None:
    url = tag_url(backend.url, "declined-worker") if backend.postgres else backend.url
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        proc = start_worker(
            "declined_crash_worker", [f"--db={url}", f"--schema={backend.schema}"], stderr=log
        )
        try:
            wait_for_line(proc, b"sleeping", log_path, 60.0)
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
    if backend.postgres:
        wait_sessions_gone(backend.url, "declined-worker", 60.0, proc.pid)

    app = worker_app(
        app_name=CRASH_APP,
        db=backend.url,
        schema=backend.schema,
        version=CRASH_VERSION,
        executor_id="declined-worker",
    )
    app.register_workflow(observe_durably, name=CRASH_WORKFLOW)
    with app:  # launch() recovers the killed worker's PENDING workflow
        handle = app.retrieve_workflow(CRASH_WORKFLOW)
        assert handle.get_result(timeout=60) == EXPECTED
        assert handle.get_status().attempts == 2
