"""Retention: garbage_collect on the engine and the client, and Config(retention=...)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import durakit as dk
from durakit.testing import FakeClock
from tests.conftest import StoreFactory
from tests.helpers import WAIT, new_app, wait_until

START = datetime(2026, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def register(app: dk.Durakit) -> tuple[dk.Workflow[str, str], dk.Workflow[str, str]]:
    @app.workflow(name="echo")
    def echo(ctx: dk.Context, text: str) -> str:
        ctx.set_event("seen", text)
        return ctx.run_step(text.upper, name="upper")

    @app.workflow(name="parent")
    def parent(ctx: dk.Context, text: str) -> str:
        child = ctx.run_workflow(echo, text, workflow_id=f"{ctx.workflow_id}-child").get_result()
        ctx.recv("go", timeout=timedelta(days=365))
        return child

    return echo, parent


def test_garbage_collect_deletes_old_finished_workflows_only(store_factory: StoreFactory) -> None:
    clock = FakeClock(START, auto_advance=False)
    app = new_app(store_factory(), clock=clock)
    echo, parent = register(app)
    with app:
        for i in range(3):
            app.run_workflow(echo, f"old-{i}", workflow_id=f"old-{i}").get_result(timeout=WAIT)
        running = app.run_workflow(parent, "p", workflow_id="p")
        wait_until(
            lambda: (
                [(s.workflow_id, s.status) for s in app.list_workflows(name="echo")][-1:]
                == [("p-child", dk.StatusType.SUCCESS)]
            )
        )
        clock.advance(10 * DAY)
        app.run_workflow(echo, "young", workflow_id="young").get_result(timeout=WAIT)

        assert app.garbage_collect(older_than=5 * DAY) == 3
        left = {s.workflow_id for s in app.list_workflows()}
        # The child of a running parent is kept however old; the young one too.
        assert left == {"p", "p-child", "young"}
        assert app.get_workflow_steps("old-0") == []
        with pytest.raises(dk.NonExistentWorkflowError):
            app.get_workflow_status("old-0")

        clock.advance(60)
        app.send("p", "now", topic="go")
        assert running.get_result(timeout=WAIT) == "P"
        # An aware datetime is a cutoff; keep spares the newest finished whatever their age.
        cutoff = clock.now_datetime() + timedelta(seconds=1)
        assert app.garbage_collect(older_than=cutoff, keep=1) == 2
        assert [s.workflow_id for s in app.list_workflows()] == ["p"]  # finished last


def test_the_client_collects_too(store_factory: StoreFactory) -> None:
    store = store_factory()
    app = new_app(store)
    echo, _ = register(app)
    with app, dk.Client(store=store) as client:
        app.run_workflow(echo, "a", workflow_id="a").get_result(timeout=WAIT)
        assert client.garbage_collect(older_than=timedelta(hours=1)) == 0  # too young
        future = datetime.now(UTC) + timedelta(minutes=1)
        assert client.garbage_collect(older_than=future) == 1
        assert client.list_workflows() == []


def test_config_retention_collects_at_launch(store_factory: StoreFactory) -> None:
    store = store_factory()
    clock = FakeClock(START)
    first = new_app(store, clock=clock)
    echo, _ = register(first)
    with first:
        first.run_workflow(echo, "a", workflow_id="a").get_result(timeout=WAIT)
    clock.advance(40 * DAY)
    second = dk.Durakit(
        dk.Config(
            app_name="t",
            store=store,
            executor_id="local",
            application_version="v1",
            clock=clock,
            retention=timedelta(days=30),
        )
    )
    register(second)
    with second:
        wait_until(lambda: second.list_workflows() == [])


@pytest.mark.parametrize(
    ("older_than", "keep", "error", "message"),
    [
        (datetime(2026, 1, 1), None, ValueError, "aware datetime"),
        (timedelta(seconds=-1), None, ValueError, "older_than"),
        (3600, None, TypeError, "older_than must be a timedelta"),
        (DAY, -1, ValueError, "keep must be >= 0"),
        (DAY, True, TypeError, "keep must be an int"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_deleted(
    older_than: object, keep: object, error: type[Exception], message: str
) -> None:
    store = dk.MemoryStore()
    app = new_app(store)
    echo, _ = register(app)
    with app:
        app.run_workflow(echo, "a", workflow_id="a").get_result(timeout=WAIT)
        with pytest.raises(error, match=message):
            app.garbage_collect(older_than=older_than, keep=keep)  # type: ignore[arg-type]
        assert len(app.list_workflows()) == 1


@pytest.mark.parametrize("retention", [timedelta(0), timedelta(seconds=-5), 3600])
def test_config_refuses_a_retention_that_is_not_a_positive_timedelta(retention: object) -> None:
    with pytest.raises(dk.InitializationError, match=r"Config\.retention"):
        dk.Config(app_name="t", retention=retention)  # type: ignore[arg-type]
