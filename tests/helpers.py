"""Shared helpers for the behavioural suite: engine construction, side-effect counters,
a hand-driven clock, and thread bookkeeping for in-process crash simulations."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

import durakit as dk

WAIT = 10.0
"""Upper bound for any synchronisation in a test; a healthy run never gets near it."""


def new_app(
    store: dk.SystemStore,
    *,
    executor_id: str = "local",
    application_version: str = "v1",
    clock: dk.Clock | None = None,
    max_concurrent_workflows: int | None = None,
) -> dk.Durakit:
    """An unlaunched engine on ``store`` (which it will not close) with fixed identity."""
    return dk.Durakit(
        dk.Config(
            app_name="t",
            store=store,
            executor_id=executor_id,
            application_version=application_version,
            clock=clock or dk.SystemClock(),
            max_concurrent_workflows=max_concurrent_workflows,
        )
    )


class Counts:
    """Thread-safe side-effect counter: how many times each named thing ran."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def bump(self, key: str) -> int:
        """Count one run of ``key``; returns the new count (1 on the first run)."""
        with self._lock:
            self._counts[key] += 1
            return self._counts[key]

    def __getitem__(self, key: str) -> int:
        with self._lock:
            return self._counts[key]

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


class ThreadLog:
    """Remembers the threads that ran some code, so a test can wait for them to end."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.threads: list[threading.Thread] = []

    def here(self) -> None:
        with self._lock:
            self.threads.append(threading.current_thread())

    def join_all(self, timeout: float = WAIT) -> None:
        with self._lock:
            threads = list(self.threads)
        for thread in threads:
            thread.join(timeout)
            assert not thread.is_alive(), f"{thread.name} did not finish"


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT) -> None:
    """Poll ``predicate`` until it holds (for conditions no event can signal)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)


class ManualClock:
    """A clock that reads only what the test sets, so ``created_at`` values are exact.

    Waits are real waits on the event (plus the fallback poll); a wait that only the
    clock's time could end would block, so use it only for workflows that do not sleep.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._lock = threading.Lock()
        self._now = start

    def set(self, value: float) -> None:
        with self._lock:
            self._now = value

    def now(self) -> float:
        with self._lock:
            return self._now

    def wait(self, event: threading.Event, until: float | None, poll: float | None = None) -> bool:
        if until is not None and until <= self.now():
            return event.is_set()
        return event.wait(poll)


def leave_pending(
    store: dk.SystemStore,
    workflow_id: str,
    name: str = "echo",
    *,
    executor_id: str = "local",
    version: str = "v1",
    app_name: str = "t",
) -> None:
    """The row a crashed process leaves behind: PENDING, owned by a dead execution, its
    input the workflow ID as a ``str`` (``new_app``'s identity by default)."""
    from durakit.api.serialization import Serializer
    from durakit.core.records import NewWorkflow

    store.insert_workflow(
        NewWorkflow(
            workflow_id=workflow_id,
            name=name,
            status=dk.StatusType.PENDING,
            input=Serializer().dumps(workflow_id, str),
            executor_id=executor_id,
            application_version=version,
            application_id=app_name,
            owner="dead-execution",
            created_at=1_700_000_000_000,
        )
    )
