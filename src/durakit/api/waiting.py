"""In-process wake-ups for waiters (get_result, recv, get_event), and whose time a
wait counts.

A waiter registers interest in a key ("wf:<id>", "msg:<id>", "evt:<id>"), re-checks the
store, and sleeps until notified or until a fallback re-check is due. Notifications come
from this engine's own writes and, for stores that implement ``PushNotifications``
(Postgres LISTEN/NOTIFY), from other processes. They are hints only: the store is the
truth, so a lost notification costs at most one fallback interval.

A timeout given by a caller outside any workflow (``get_result(timeout=)``, the engine's
and the client's ``get_event(timeout=)``) counts the caller's own monotonic time, never
the engine's clock: under a fake clock, a jump over a day-long sleep must not use up a
15-second caller timeout, and a clock that only moves by hand must not make it last
forever. Inside a workflow the same calls count the engine's clock, as every wait of a
workflow does, so a fake clock sees the workflow as waiting.
"""

from __future__ import annotations

import contextvars
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

from durakit.core.backoff import Backoff

if TYPE_CHECKING:
    from durakit.api.clock import Clock
    from durakit.api.context import Context

T = TypeVar("T")

# The context of the workflow body running on this thread: the engine's WorkflowContext,
# or a test's MockContext when a Workflow object is called directly with one. It lives
# here, not in execution.py, because whose time a wait counts depends on it.
CURRENT: contextvars.ContextVar[Context | None] = contextvars.ContextVar(
    "durakit_current_workflow", default=None
)


def in_workflow() -> bool:
    """Whether the calling thread is running a workflow body."""
    return CURRENT.get() is not None


def wait_real(event: threading.Event, remaining: float | None, poll: float | None) -> bool:
    """Block until ``event`` is set (True), or ``remaining`` seconds (None: no limit) or
    ``poll`` seconds (None: no poll) of real time pass (``event.is_set()``)."""
    if poll is not None:
        remaining = poll if remaining is None else min(remaining, poll)
    if remaining is not None and remaining <= 0:
        return event.is_set()
    return event.wait(remaining)


class Deadline:
    """When a caller's wait gives up: ``limit`` seconds (None: never) from now, counted
    by the caller's monotonic time outside a workflow, by ``clock`` inside one."""

    def __init__(self, clock: Clock, limit: float | None) -> None:
        self._clock = clock if in_workflow() else None
        self._until = None if limit is None else self._now() + limit

    def _now(self) -> float:
        return time.monotonic() if self._clock is None else self._clock.now()

    def passed(self) -> bool:
        return self._until is not None and self._now() >= self._until

    def wait(self, event: threading.Event, poll: float | None = None) -> bool:
        """Block until ``event`` is set (True), the deadline passes, or ``poll`` real
        seconds pass (both ``event.is_set()``)."""
        if self._clock is not None:
            return self._clock.wait(event, self._until, poll)
        remaining = None if self._until is None else self._until - time.monotonic()
        return wait_real(event, remaining, poll)


def poll_store(
    hub: WakeHub, key: str, deadline: Deadline, probe: Callable[[], T | None]
) -> T | None:
    """Call ``probe`` until it returns something (returned) or ``deadline`` passes
    (None): again after each wake-up on ``key``, or after a fallback interval."""
    backoff = hub.backoff()
    with hub.listening(key) as event:
        while True:
            event.clear()
            found = probe()
            if found is not None:
                return found
            if deadline.passed():
                return None
            deadline.wait(event, poll=backoff.next())


EVERYTHING = "*"
"""Key that wakes every waiter (e.g. after a notification connection was re-made)."""


class WakeHub:
    """Maps keys to the events of the threads waiting on them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[threading.Event]] = {}
        self.pushed = False  # set when the store pushes other processes' changes here

    def backoff(self) -> Backoff:
        """Fallback re-check intervals for one wait.

        Where the store pushes notifications (Postgres), a re-check only covers a lost
        one, so it can be rare: many waiters must not turn into a polling storm. Where it
        does not (SQLite written by another process), it is how such writes are seen.
        """
        return recheck_backoff(1.0, 10.0) if self.pushed else recheck_backoff(0.01, 1.0)

    @contextmanager
    def listening(self, *keys: str) -> Iterator[threading.Event]:
        """Register a fresh event under ``keys`` for the duration of the block."""
        event = threading.Event()
        with self.watching(event, *keys):
            yield event

    @contextmanager
    def watching(self, event: threading.Event, *keys: str) -> Iterator[None]:
        """Register ``event`` (its ``set`` is called on a notification) under ``keys``
        for the duration of the block."""
        with self._lock:
            for key in keys:
                self._waiters.setdefault(key, set()).add(event)
        try:
            yield
        finally:
            with self._lock:
                for key in keys:
                    waiters = self._waiters.get(key)
                    if waiters is not None:
                        waiters.discard(event)
                        if not waiters:
                            del self._waiters[key]

    def notify(self, key: str) -> None:
        """Wake the threads waiting on ``key`` (every thread for ``EVERYTHING``)."""
        with self._lock:
            if key == EVERYTHING:
                events = [e for group in self._waiters.values() for e in group]
            else:
                events = list(self._waiters.get(key, ()))
        for event in events:
            event.set()


def recheck_backoff(first: float, cap: float) -> Backoff:
    """Fallback re-check intervals: doubling from ``first`` up to ``cap``, each jittered
    down by up to a fifth so that waiters that started together do not re-check together."""
    return Backoff(first, cap, jitter=0.2, rng=random.random)
