"""In-process wake-ups for waiters (get_result, recv, get_event).

A waiter registers interest in a key ("wf:<id>", "msg:<id>", "evt:<id>"), re-checks the
store, and sleeps until notified or until a fallback re-check is due. Notifications come
from this engine's own writes and, for stores that implement ``PushNotifications``
(Postgres LISTEN/NOTIFY), from other processes. They are hints only: the store is the
truth, so a lost notification costs at most one fallback interval.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager

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
        return Backoff(first=1.0, cap=10.0) if self.pushed else Backoff(first=0.01, cap=1.0)

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


class Backoff:
    """Fallback re-check intervals: doubling from ``first`` up to ``cap``, each jittered
    down by up to a fifth so that waiters that started together do not re-check together."""

    def __init__(self, first: float = 0.01, cap: float = 1.0) -> None:
        self._next = first
        self._cap = cap

    def next(self) -> float:
        current = self._next
        self._next = min(self._cap, self._next * 2)
        return current * random.uniform(0.8, 1.0)  # noqa: S311 - jitter, not secrecy
