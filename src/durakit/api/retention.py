"""Retention: deleting finished workflows, on demand and on a schedule.

``garbage_collect`` (on the engine and the client) turns its arguments into a cutoff and
deletes collectable workflows in bounded batches (one store transaction each) until a
batch comes back empty. ``Config(retention=...)`` runs it from a background thread of
the engine: at launch, then every tenth of the retention period (at least every second,
at most every hour).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from durakit.api.background import BackgroundThread
from durakit.api.clock import Clock, now_ms
from durakit.api.validation import check_duration
from durakit.backends.protocol import RetentionStore

BATCH = 1_000
"""Workflows deleted per store transaction."""


def cutoff_ms(older_than: timedelta | datetime, clock: Clock) -> int:
    """The cutoff (epoch ms) that ``older_than`` means: an age on ``clock``, or an aware
    datetime. Raises ValueError/TypeError naming ``older_than``."""
    if isinstance(older_than, datetime):
        if older_than.tzinfo is None or older_than.utcoffset() is None:
            raise ValueError(
                "older_than must be an aware datetime (with a timezone) or a timedelta, "
                f"got the naive {older_than.isoformat()}"
            )
        return int(older_than.timestamp() * 1000)
    if not isinstance(older_than, timedelta):
        raise TypeError(
            "older_than must be a timedelta or an aware datetime, "
            f"got {type(older_than).__qualname__}"
        )
    age = check_duration("older_than", older_than)
    return now_ms(clock) - int(age * 1000)


def check_keep(keep: object) -> int | None:
    if keep is None:
        return None
    if not isinstance(keep, int) or isinstance(keep, bool):
        raise TypeError(f"keep must be an int or None, got {type(keep).__qualname__}")
    if keep < 0:
        raise ValueError(f"keep must be >= 0 or None, got {keep}")
    return keep


def garbage_collect(
    store: RetentionStore, clock: Clock, older_than: timedelta | datetime, keep: int | None
) -> int:
    """Delete every collectable workflow (see ``RetentionStore.delete_finished``);
    returns how many were deleted."""
    cutoff = cutoff_ms(older_than, clock)
    kept = check_keep(keep)
    total = 0
    while True:
        deleted = store.delete_finished(cutoff, kept, BATCH)
        total += deleted
        if deleted < BATCH:
            return total


class RetentionThread(BackgroundThread):
    """Runs ``garbage_collect(older_than=retention)`` at start and then periodically."""

    def __init__(
        self, store: RetentionStore, clock: Clock, retention: timedelta, log: logging.Logger
    ) -> None:
        self._store = store
        self._clock = clock
        self._retention = retention
        self._log = log
        period = retention.total_seconds() / 10
        self._interval = min(3600.0, max(1.0, period))
        super().__init__("durakit-retention")

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                deleted = garbage_collect(self._store, self._clock, self._retention, None)
            except Exception:  # noqa: BLE001 - a store hiccup must not end retention for good
                self._log.warning("retention: garbage collection failed", exc_info=True)
            else:
                if deleted:
                    self._log.info("retention: deleted %d finished workflows", deleted)
            # Real time between passes: the cutoff itself is on the engine's clock.
            self._stop.wait(self._interval)
