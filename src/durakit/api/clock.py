"""Time, injected: every durable wait in durakit goes through a :class:`Clock`.

The engine never calls ``time.time()`` or ``time.sleep()`` directly, so tests can hand
it a fake clock (``durakit.testing.FakeClock``) under which a one-day sleep finishes at
once.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol, runtime_checkable

from durakit.api.waiting import wait_real


@runtime_checkable
class Clock(Protocol):
    """A source of wall time and a way to wait for it."""

    def now(self) -> float:
        """Seconds since the Unix epoch (UTC)."""
        ...

    def wait(self, event: threading.Event, until: float | None, poll: float | None = None) -> bool:
        """Block until ``event`` is set, this clock reads ``until`` (None: no limit), or
        ``poll`` seconds of *real* time pass (None: no poll; a poll is a fallback re-check
        of the database, which real time, not the clock's time, must bound).

        Returns True if the event was set. Must be safe to call from many threads.
        """
        ...


@runtime_checkable
class TracksWorkflows(Protocol):
    """Optional: a clock that wants to know how many workflows are running.

    The engine calls ``workflow_started()`` before an execution's thread starts and
    ``workflow_finished()`` when it ends. A fake clock uses the count to tell when every
    running workflow is blocked waiting on time, so it can jump to the earliest wake-up.
    """

    def workflow_started(self) -> None: ...

    def workflow_finished(self) -> None: ...


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        return time.time()

    def wait(self, event: threading.Event, until: float | None, poll: float | None = None) -> bool:
        return wait_real(event, None if until is None else until - time.time(), poll)


def now_ms(clock: Clock) -> int:
    """The clock's reading in the integer milliseconds stores keep."""
    return int(clock.now() * 1000)
