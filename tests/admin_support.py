"""An application for the admin server, CLI and dashboard tests: ``greet`` (two steps),
``waiter`` (waits for a message: to cancel and resume) and ``fails``."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import durakit as dk
from tests.helpers import WAIT


class AdminApp:
    """An unlaunched engine with the three workflows registered."""

    def __init__(self, store: dk.SystemStore, **config: Any) -> None:
        self.app = dk.Durakit(
            dk.Config(
                app_name="t", store=store, executor_id="local", application_version="v1", **config
            )
        )

        @self.app.workflow(name="greet")
        def greet(ctx: dk.Context, who: str) -> str:
            hello = ctx.run_step(lambda: f"hello {who}", name="hello")
            return ctx.run_step(lambda: hello + "!", name="shout")

        @self.app.workflow(name="waiter")
        def waiter(ctx: dk.Context) -> str:
            ctx.run_step(lambda: "ready", name="ready")
            message = ctx.recv("go", timeout=60, type=str)
            return f"got {message}"

        @self.app.workflow(name="fails")
        def fails(ctx: dk.Context) -> None:
            ctx.run_step(lambda: 1, name="one")
            raise RuntimeError("boom")

        self.greet = greet
        self.waiter = waiter
        self.fails = fails

    def greetings(self, count: int, prefix: str = "g") -> list[str]:
        """Run ``count`` greet workflows to the end; their IDs, oldest first."""
        ids = []
        for i in range(count):
            handle = self.app.run_workflow(self.greet, f"w{i}", workflow_id=f"{prefix}{i:03d}")
            handle.get_result(timeout=WAIT)
            ids.append(handle.workflow_id)
            time.sleep(0.002)  # distinct created_at: the order is by time, not by ID
        return ids

    def failure(self, workflow_id: str) -> None:
        handle = self.app.run_workflow(self.fails, workflow_id=workflow_id)
        wait_until(lambda: handle.get_status().status is dk.StatusType.ERROR)

    def waiting(self, workflow_id: str) -> None:
        """Start ``waiter`` and return once it waits for its message."""
        self.app.run_workflow(self.waiter, workflow_id=workflow_id)
        wait_until(lambda: any(s.name == "ready" for s in self.app.get_workflow_steps(workflow_id)))


def wait_until(check: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)
