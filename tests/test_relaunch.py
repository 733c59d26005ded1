"""An engine can be launched again after shutdown, on every store.

Shutdown closes what the engine opened (a store it opened from ``database_url``) and
stops its background threads (the deadline watcher); the next ``launch()`` reopens the
store on the same database and starts them again. So a second ``with app:`` works, and a
timeout set after a relaunch still cancels a workflow that is busy in a long step.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import durakit as dk
from durakit.core.status import FINISHED
from tests.helpers import WAIT, wait_until
from tests.waiting_support import BlockingStep

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def url_config(store_kind: str, tmp_path: Path) -> Iterator[dk.Config]:
    """A Config that makes the engine open its store from a URL, on each store kind."""
    if store_kind == "memory":
        yield dk.Config(app_name="relaunch", database_url="memory://")
    elif store_kind == "sqlite":
        yield dk.Config(app_name="relaunch", database_url=f"sqlite:///{tmp_path}/durakit.db")
    else:
        from tests.pg import fresh_schema

        with fresh_schema() as (url, schema):
            yield dk.Config(app_name="relaunch", database_url=url, database_schema=schema)


def greet(ctx: dk.Context, name: str) -> str:
    return ctx.run_step(lambda: f"hello {name}", name="greet")


def test_a_second_with_block_on_a_url_opened_store_works(url_config: dk.Config) -> None:
    app = dk.Durakit(url_config)
    app.register_workflow(greet)
    with app:
        assert app.run_workflow(greet, "one", workflow_id="one").get_result(timeout=WAIT) == (
            "hello one"
        )
    with app:  # reopens the store the first block's shutdown closed
        assert app.run_workflow(greet, "two", workflow_id="two").get_result(timeout=WAIT) == (
            "hello two"
        )
        # Same database: what the first block recorded is still there.
        assert app.retrieve_workflow("one").get_result(timeout=WAIT) == "hello one"
        assert app.get_workflow_status("one").status is dk.StatusType.SUCCESS
    with pytest.raises(dk.InitializationError, match="not launched"):
        app.get_workflow_status("one")  # shut down again: a clear error, not a driver's


def test_a_relaunch_resumes_a_workflow_whose_step_outlasted_the_shutdown(
    url_config: dk.Config,
) -> None:
    """Shutdown stops waiting for a step that runs on (steps are never interrupted), and
    the engine is launched again while it still runs: that launch cannot recover the
    workflow yet; it resumes once the old execution stops, without running the step again."""
    step = BlockingStep()

    def held(ctx: dk.Context) -> int:
        done = ctx.run_step(step, name="held")
        ctx.sleep(0)  # the old execution stops here, at its next durable operation
        return done

    app = dk.Durakit(url_config)
    app.register_workflow(held)
    app.launch()
    try:
        app.run_workflow(held, workflow_id="held")
        assert step.started.wait(WAIT)
        app.shutdown(timeout=0.05)
        app.launch()
        assert app.get_workflow_status("held").status is dk.StatusType.PENDING
        step.release.set()
        assert app.retrieve_workflow("held").get_result(timeout=WAIT) == 1
        assert step.finished == 1
    finally:
        step.release.set()
        app.shutdown()


def test_after_a_relaunch_a_deadline_still_cancels_a_workflow_busy_in_a_step(
    store: dk.SystemStore,
) -> None:
    step = BlockingStep()

    def stuck(ctx: dk.Context) -> int:
        return ctx.run_step(step, name="long")

    app = dk.Durakit(dk.Config(app_name="relaunch", store=store))
    app.register_workflow(stuck)
    with app:
        pass
    with app:
        began = time.monotonic()
        handle = app.run_workflow(stuck, workflow_id="stuck", timeout=0.2)
        assert step.started.wait(WAIT)
        # Only the deadline watcher can end it: the step itself never returns meanwhile.
        wait_until(lambda: handle.get_status().status in FINISHED)
        assert handle.get_status().status is dk.StatusType.CANCELLED
        assert time.monotonic() - began < WAIT
        step.release.set()
