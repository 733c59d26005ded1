"""Whether a store answers, logged when that changes rather than at every failed call.

During an outage every pooled call retries, the LISTEN thread reconnects, the pool
reconnects, and every workflow that outlasts the retry budget pauses. Logging each of
those made a 75 s outage with 200 workflows write thousands of warnings that all said the
same thing. Instead they all report to the store's one :class:`StoreHealth`, which logs
one warning when the store goes down (with the reason) and one when it is back (with the
downtime). The details stay available at DEBUG level on the reporters' own loggers.

A failure is announced once the store has failed for :data:`GRACE_S` without a success in
between (or at once when a caller gave up), and the store counts as back only once a
call succeeds :data:`GRACE_S` after the last failure. So a single lost connection that
the next attempt replaces logs nothing, and an outage that some calls still get through
(those on old connections while a server goes down; those that found a file descriptor
while the process is out of them) logs one down/up pair, not one per flap.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Final

from durakit.backends.dsn import mask_secrets

_LOGGER = logging.getLogger(__name__)

GRACE_S: Final = 1.0
"""How long failures must last to be logged as an outage, and successes to end one."""


class StoreHealth:
    """Up/down state of one store, named ``name`` in what it logs; thread-safe."""

    def __init__(
        self,
        name: str,
        logger: logging.Logger | None = None,
        *,
        grace_s: float = GRACE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._log = logger or _LOGGER
        self._grace_s = grace_s
        self._clock = clock
        self._lock = threading.Lock()
        self._down_since: float | None = None  # the first failure since the last success
        self._reason: str | None = None
        self._last_failure = 0.0
        self._announced = False

    def __repr__(self) -> str:
        state = "up" if self._down_since is None else f"down ({self._reason})"
        return f"StoreHealth({self.name!r}, {state})"

    @property
    def is_down(self) -> bool:
        """Whether the last report said the store was unreachable."""
        return self._down_since is not None

    @property
    def reason(self) -> str | None:
        """Why the store is down (the latest failure's reason); None while it is up."""
        return self._reason

    def down(self, reason: str, *, confirmed: bool = False) -> None:
        """Report a failure to reach the store. Logs a warning when failures have lasted
        the grace period (or, with ``confirmed``, at once) and were not logged yet."""
        reason = mask_secrets(reason)
        now = self._clock()
        with self._lock:
            if self._down_since is None:
                self._down_since = now
            self._reason = reason
            self._last_failure = now
            announce = not self._announced and (
                confirmed or now - self._down_since >= self._grace_s
            )
            self._announced = self._announced or announce
        if announce:
            self._log.warning(
                "durakit: %s is unavailable (%s); calls retry, and workflows that "
                "outlast the retry budget pause until it is back",
                self.name,
                reason,
            )

    def up(self) -> None:
        """Report a successful call; logs (a warning, to pair with the first) if the
        outage was logged."""
        now = self._clock()
        with self._lock:
            since, announced = self._down_since, self._announced
            if announced and now - self._last_failure < self._grace_s:
                return  # still failing now and then: not back yet
            self._down_since, self._reason, self._announced = None, None, False
        if since is not None and announced:
            self._log.warning("durakit: %s is available again after %.1f s", self.name, now - since)
