"""A store outage past the retry budget pauses a workflow; it never becomes its error.

The store here is a real one (every kind) behind a wrapper that fails like a store whose
retry budget ran out; user code that catches ``Exception`` must not see it, the
workflow must not end ERROR, and once the store answers again the engine recovers it.
"""

from __future__ import annotations

import threading
from typing import Any, cast

import durakit as dk
from durakit.core.records import Fence, StepRecord, WriteResult
from tests.helpers import wait_until


class FlakyStore:
    """Delegates to a real store; ``record_step`` fails while ``down`` is set."""

    def __init__(self, inner: dk.SystemStore) -> None:
        self.inner = inner
        self.down = threading.Event()
        self.refused = 0

    def record_step(
        self, fence: Fence, step: StepRecord, *, while_cancelled: bool = False
    ) -> WriteResult:
        if self.down.is_set():
            self.refused += 1
            raise dk.StoreUnavailableError("simulated outage past the retry budget")
        return self.inner.record_step(fence, step, while_cancelled=while_cancelled)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_an_outage_pauses_the_workflow_and_it_resumes_when_the_store_is_back(
    store: dk.SystemStore,
) -> None:
    flaky = FlakyStore(store)
    app = dk.Durakit(
        dk.Config(app_name="outage", store=cast(dk.SystemStore, flaky), application_version="v1")
    )
    runs: list[str] = []
    outage_started = threading.Event()

    @app.workflow()
    def careless(ctx: dk.Context) -> str:
        ctx.run_step(lambda: runs.append("first"), name="first")
        if not outage_started.is_set():  # one outage, not one per recovery
            outage_started.set()
            flaky.down.set()
        try:
            ctx.run_step(lambda: runs.append("second"), name="second")
        except Exception:  # exactly what user code must not be able to do
            return "swallowed"
        return "done"

    with app:
        handle = app.run_workflow(careless, workflow_id="outage-1")
        threading.Event().wait(0.2)
        assert flaky.refused >= 1
        assert app.get_workflow_status("outage-1").status is dk.StatusType.PENDING
        flaky.down.clear()
        assert handle.get_result(timeout=20) == "done"
        wait_until(lambda: app.get_workflow_status("outage-1").status is dk.StatusType.SUCCESS)
        status = app.get_workflow_status("outage-1")
        steps = [s.name for s in app.get_workflow_steps("outage-1")]
    assert status.attempts == 2  # the pause ended in a recovery, which counts
    assert runs.count("first") == 1  # checkpointed before the outage: not run again
    assert steps == ["first", "second"]
    assert runs.count("second") == 2  # refused once by the outage, then run by the recovery
