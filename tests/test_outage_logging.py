"""An outage is logged when it starts and when it ends, not once per waiter or retry.

Before, a 75 s Postgres outage with 200 workflows logged thousands of warnings: every
retry of every call, every reconnection attempt of the pool and of the LISTEN thread,
and every paused workflow. Now every one of them reports to the store's health, which
logs the store going down (with the reason) and coming back (with the downtime).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import cast

import pytest

import durakit as dk
from durakit.backends.health import StoreHealth
from durakit.backends.postgres import PostgresStore
from tests.helpers import new_app, wait_until
from tests.pg import fresh_schema, proxied
from tests.test_store_outage import FlakyStore

WORKFLOWS = 40


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_postgres_outage_logs_two_lines_however_many_workflows_wait(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with fresh_schema() as (url, schema):
        proxy, through = proxied(url)
        # A short retry budget, so that the 3 s outage pauses every workflow.
        store = PostgresStore(through, schema, retry_timeout=1.0)
        app = new_app(store)
        stop = threading.Event()

        @app.workflow(name="ticker")
        def ticker(ctx: dk.Context) -> str:
            while not ctx.run_step(stop.is_set, name="done?"):
                ctx.sleep(0.05)
            return "done"

        try:
            with app:
                handles = [app.run_workflow(ticker, workflow_id=f"w{i}") for i in range(WORKFLOWS)]
                time.sleep(0.5)
                before = len(warnings_of(caplog))
                proxy.stop()
                time.sleep(3.0)
                proxy.start()
                wait_until(lambda: not store.health.is_down, timeout=30)
                stop.set()
                assert [h.get_result(timeout=60) for h in handles] == ["done"] * WORKFLOWS
                lines = warnings_of(caplog)[before:]
        finally:
            proxy.stop()
            store.close()
    assert 2 <= len(lines) <= 4, lines
    assert all(f"127.0.0.1:{proxy.port}" in line for line in lines), lines
    assert "is unavailable" in lines[0]
    assert "available again after" in lines[-1]


def test_workflows_paused_on_a_store_without_health_log_the_outage_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The engine's own tracker: the store (a MemoryStore) keeps no health of its own.
    caplog.set_level(logging.DEBUG)
    flaky = FlakyStore(dk.MemoryStore())
    app = new_app(cast(dk.SystemStore, flaky))
    go = threading.Event()

    @app.workflow(name="two-steps")
    def two_steps(ctx: dk.Context) -> str:
        ctx.run_step(lambda: None, name="first")
        go.wait()
        ctx.run_step(lambda: None, name="second")
        return "done"

    with app:
        flaky.down.set()
        handles = [app.run_workflow(two_steps, workflow_id=f"p{i}") for i in range(WORKFLOWS)]
        go.set()
        wait_until(lambda: flaky.refused >= WORKFLOWS)
        flaky.down.clear()
        assert [h.get_result(timeout=60) for h in handles] == ["done"] * WORKFLOWS
        lines = warnings_of(caplog)
    assert len(lines) == 2, lines
    assert "simulated outage" in lines[0]
    assert "available again" in lines[1]


def test_store_health_logs_changes_only(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    now = [0.0]
    health = StoreHealth("the test store", clock=lambda: now[0])
    health.up()
    health.down("a blip")
    assert "a blip" in repr(health)
    now[0] += 0.5
    health.up()  # back within the grace period: nothing logged
    for attempt in range(100):  # failing for 25 s
        now[0] += 0.25
        health.down(f"refused ({attempt}) postgresql://u:secret@h/db")
    assert health.reason == "refused (99) postgresql://u:***@h/db"
    health.up()  # a success between failures: not back yet
    now[0] += 0.5
    health.down("refused again")
    now[0] += 2.0
    health.up()
    health.up()
    assert "up" in repr(health)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0].startswith("durakit: the test store is unavailable (refused (4) ")
    assert "secret" not in caplog.text
    assert lines[1] == "durakit: the test store is available again after 27.2 s"


def test_a_confirmed_failure_is_logged_at_once(caplog: pytest.LogCaptureFixture) -> None:
    health = StoreHealth("s", clock=lambda: 0.0)
    health.down("gave up", confirmed=True)
    health.down("still")
    assert [r.getMessage() for r in caplog.records] == [
        "durakit: s is unavailable (gave up); calls retry, and workflows that outlast the "
        "retry budget pause until it is back"
    ]
