"""Helpers shared by the tests of messages, events, sleep, timeouts and cancellation.

``Engines`` opens engines on stores of one database (a new store object per engine, as a
restarted process would) and shuts them all down at teardown. A test leaves a workflow
PENDING mid-wait by shutting its engine down, and recovers it with a second engine.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import attrs

import durakit as dk
from durakit.backends import SystemStore
from durakit.core.status import FINISHED
from tests.helpers import WAIT, Counts, new_app, wait_until

R = TypeVar("R")

StoreFactory = Callable[[], SystemStore]

T0 = datetime(2030, 1, 1, tzinfo=UTC)
"""Where fake time starts in these tests."""

SLEEP, RECV, SEND = "durakit.sleep", "durakit.recv", "durakit.send"
SET_EVENT, GET_EVENT = "durakit.set_event", "durakit.get_event"


@attrs.frozen
class Order:
    """A typed message and event payload."""

    order_id: int
    items: list[str]


class BlockingStep:
    """A step body that says it started, blocks until released, and counts the runs that
    got past the block (a step the workflow is busy in while the test acts)."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self._counts = Counts()

    def __call__(self) -> int:
        self.started.set()
        self.release.wait(WAIT)
        return self._counts.bump("finished")

    @property
    def finished(self) -> int:
        return self._counts["finished"]


class Engines:
    """Engines on one database, each with a store object of its own."""

    def __init__(self, store_factory: StoreFactory) -> None:
        self._factory = store_factory
        self._apps: list[dk.Durakit] = []

    def start(self, *workflows: Callable[..., Any], clock: dk.Clock | None = None) -> dk.Durakit:
        """A launched engine with ``workflows`` registered (recovering pending ones)."""
        app = new_app(self._factory(), clock=clock)
        for fn in workflows:
            app.register_workflow(fn)
        self._apps.append(app)
        app.launch()
        return app

    def client(self) -> dk.Client:
        """A client on its own store object (as another process would have)."""
        return dk.Client(store=self._factory())

    def close(self) -> None:
        for app in reversed(self._apps):
            app.shutdown(timeout=2.0)


def step_names(app: dk.Durakit | dk.Client, workflow_id: str) -> list[str]:
    return [s.name for s in app.get_workflow_steps(workflow_id)]


def wait_for_step(app: dk.Durakit | dk.Client, workflow_id: str, name: str) -> None:
    """Wait until ``workflow_id`` has recorded a step called ``name``."""
    wait_until(lambda: name in step_names(app, workflow_id))


def settled(handle: dk.WorkflowHandle[R]) -> dk.WorkflowHandle[R]:
    """Wait in *real* time until the workflow has finished, and return the handle
    (without reading its outcome, which ``get_result`` would raise if it is an error)."""
    wait_until(lambda: handle.get_status().status in FINISHED)
    return handle


def status_of(app: dk.Durakit | dk.Client, workflow_id: str) -> dk.StatusType:
    return app.get_workflow_status(workflow_id).status


def ms(moment: datetime) -> int:
    """Epoch milliseconds, as stores keep times."""
    return int(moment.timestamp() * 1000)
