"""``FakeClock``: a clock that only moves when told to, or when nothing else can happen.

Pass it as ``Config(clock=FakeClock())``. Time stands still while any workflow is busy
(running step code, talking to the store). When every running workflow is blocked in a
clock wait and at least one of those waits has a wake-up time (a sleep, a recv or
get_event timeout, a retry backoff, a deadline), the clock jumps straight to the earliest
wake-up. So a workflow that sleeps for a day finishes in milliseconds, and the order in
which things happen is the order they would happen in real time.

How the clock tells the two kinds of waiting thread apart: a thread that is running a
workflow body (the engine's execution threads, including steps and a parent awaiting a
child's result) is a *workflow* waiter. Any other thread that waits on the clock (the
engine's deadline watcher) is an *outside* waiter: it never holds time back and never
moves it on its own, but it does wake once the clock passes its wake-up time. A caller's
own timeout (``handle.get_result(timeout=...)``, ``app.get_event(timeout=...)`` from a
test) does not wait on this clock at all: it counts the caller's real time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from durakit.api.waiting import in_workflow

DEFAULT_START = datetime(2025, 1, 1, tzinfo=UTC)
"""Where a ``FakeClock()`` starts: a fixed instant, so tests are reproducible."""

_SLICE = 0.002
"""Real seconds a waiter with a wake-up time blocks on its event before it re-reads the
clock. Bounds how late a waiter notices ``advance()`` or a jump; event sets are seen at once."""


class _Waiter:
    """One thread blocked in :meth:`FakeClock.wait`."""

    __slots__ = ("event", "until", "workflow")

    def __init__(self, event: threading.Event, until: float | None, workflow: bool) -> None:
        self.event = event
        self.until = until
        self.workflow = workflow


class FakeClock:
    """A :class:`durakit.Clock` whose time moves only by :meth:`advance` or auto-jump.

    ``start`` is the initial reading (a naive datetime is taken as UTC; default
    :data:`DEFAULT_START`). With ``auto_advance=False`` the clock never jumps by itself:
    only :meth:`advance` moves it. :meth:`hold` suspends auto-jumps for a block, for a
    test that must act from outside (say, send a message) before the workflows' timeouts
    may fire.

    Implements the engine's optional ``TracksWorkflows`` hook, through which it learns how
    many workflows are running. Safe to use from many threads.
    """

    def __init__(self, start: datetime | None = None, *, auto_advance: bool = True) -> None:
        moment = DEFAULT_START if start is None else start
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        self._now = moment.timestamp()
        self._auto = auto_advance
        self._cond = threading.Condition()
        self._running = 0
        self._holds = 0
        self._waiters: list[_Waiter] = []

    def __repr__(self) -> str:
        return f"FakeClock({self.now_datetime().isoformat()})"

    # -- reading and moving time ------------------------------------------------------
    def now(self) -> float:
        """The fake time, in seconds since the Unix epoch."""
        with self._cond:
            return self._now

    def now_datetime(self) -> datetime:
        """The fake time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.now(), tz=UTC)

    def advance(self, delta: timedelta | float) -> None:
        """Move time forward by ``delta`` (a timedelta or seconds); waiters whose wake-up
        time has now passed wake. Raises ValueError for a negative ``delta``."""
        amount = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
        if amount < 0:
            raise ValueError(f"a clock cannot go back: advance({delta!r})")
        with self._cond:
            self._now += amount
            self._cond.notify_all()

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Within the block, time does not jump by itself (``advance`` still works).

        Use it around outside actions that workflows are waiting for, e.g. starting a
        workflow that calls ``recv`` and then sending it the message: without the hold,
        the recv timeout could fire before the test gets to send.
        """
        with self._cond:
            self._holds += 1
        try:
            yield
        finally:
            with self._cond:
                self._holds -= 1
                self._maybe_jump()

    # -- the engine's hooks -----------------------------------------------------------
    def workflow_started(self) -> None:
        """Called by the engine before a workflow's thread starts."""
        with self._cond:
            self._running += 1

    def workflow_finished(self) -> None:
        """Called by the engine when a workflow's thread ends."""
        with self._cond:
            self._running = max(0, self._running - 1)
            self._maybe_jump()

    def wait(self, event: threading.Event, until: float | None, poll: float | None = None) -> bool:
        """Block until ``event`` is set (returns True), the fake time reaches ``until``,
        or ``poll`` seconds of *real* time pass (both return ``event.is_set()``)."""
        poll_deadline = None if poll is None else time.monotonic() + max(0.0, poll)
        waiter = _Waiter(event, until, in_workflow())
        with self._cond:
            if event.is_set():
                return True
            if until is not None and self._now >= until:
                return False
            self._waiters.append(waiter)
            self._cond.notify_all()
            self._maybe_jump()
        try:
            while True:
                if event.is_set():
                    return True
                if until is not None and self.now() >= until:
                    return event.is_set()
                timeout = None if until is None else _SLICE
                if poll_deadline is not None:
                    left = poll_deadline - time.monotonic()
                    if left <= 0:
                        return event.is_set()
                    timeout = left if timeout is None else min(timeout, left)
                if event.wait(timeout):
                    return True
        finally:
            with self._cond:
                self._waiters.remove(waiter)

    # -- for tests that drive time by hand ------------------------------------------------
    def wait_for_waiters(self, count: int = 1, timeout: float = 5.0) -> bool:
        """Block up to ``timeout`` real seconds until at least ``count`` workflow threads
        are waiting on this clock; returns whether they are. With ``auto_advance=False``
        it tells a test that its workflows have reached their sleeps, so it can advance.

        Only waits still to come count: one whose wake-up time has passed (or whose event
        is set) is about to return, so after ``advance()`` a workflow that sleeps again
        counts once it has reached its next sleep, not while it leaves the last one."""
        with self._cond:
            return self._cond.wait_for(lambda: self._workflow_waiters() >= count, timeout)

    def _workflow_waiters(self) -> int:
        """With the lock held: workflow waits that nothing has ended yet."""
        return sum(
            1
            for w in self._waiters
            if w.workflow and not w.event.is_set() and (w.until is None or w.until > self._now)
        )

    # -- the jump ------------------------------------------------------------------------
    def _maybe_jump(self) -> None:
        """With the lock held: if every running workflow waits on this clock, none of them
        has a pending wake-up (event set, or wake-up time already passed), and some wait
        has a wake-up time, move to the earliest one. Evaluated whenever a waiter enters,
        a workflow finishes or a hold ends: the only ways "all waiting" can begin."""
        if not self._auto or self._holds or self._running == 0:
            return
        waiting = [w for w in self._waiters if w.workflow]
        if len(waiting) < self._running:
            return
        if any(w.event.is_set() for w in waiting):
            return
        times = [w.until for w in waiting if w.until is not None]
        if not times:
            return
        earliest = min(times)
        if earliest > self._now:
            self._now = earliest
            self._cond.notify_all()
