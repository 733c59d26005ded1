"""One thread per engine that expires workflows at their deadlines.

A workflow that waits (sleep, recv, get_event, retry backoff) notices its own deadline;
this watcher covers the one that is busy in a long step: its status must turn CANCELLED
at the deadline, even though the running step itself is never interrupted (its outcome
is still recorded; the body stops at its next durable operation).
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Callable

from durakit.api.clock import Clock


class DeadlineWatcher:
    """Calls ``on_expire(workflow_id)`` once the clock passes a watched deadline."""

    def __init__(self, clock: Clock, on_expire: Callable[[str], None]) -> None:
        self._clock = clock
        self._on_expire = on_expire
        self._lock = threading.Lock()
        self._heap: list[tuple[float, str]] = []
        self._watched: dict[str, float] = {}
        self._wake = threading.Event()
        self._stopped = False
        self._thread: threading.Thread | None = None

    def watch(self, workflow_id: str, deadline: float) -> None:
        with self._lock:
            self._watched[workflow_id] = deadline
            heapq.heappush(self._heap, (deadline, workflow_id))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="durakit-deadlines", daemon=True
                )
                self._thread.start()
        self._wake.set()

    def unwatch(self, workflow_id: str) -> None:
        with self._lock:
            self._watched.pop(workflow_id, None)

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()

    def _next_due(self) -> tuple[float | None, list[str]]:
        """Pop every expired entry; return the next deadline and the expired IDs."""
        now = self._clock.now()
        expired: list[str] = []
        with self._lock:
            while self._heap:
                deadline, wid = self._heap[0]
                if self._watched.get(wid) != deadline:
                    heapq.heappop(self._heap)  # unwatched or re-armed: a stale entry
                    continue
                if deadline > now:
                    return deadline, expired
                heapq.heappop(self._heap)
                del self._watched[wid]
                expired.append(wid)
        return None, expired

    def _run(self) -> None:
        while not self._stopped:
            self._wake.clear()
            until, expired = self._next_due()
            for wid in expired:
                self._on_expire(wid)
            if not expired:
                self._clock.wait(self._wake, until)
