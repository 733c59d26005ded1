"""Queues in the shell: the public ``Queue`` and ``RateLimit``, the options of an enqueue,
and the runner thread that claims queued work and starts it.

What may start is decided by the core (:mod:`durakit.core.admission`), inside the
store's claim (:meth:`~durakit.backends.protocol.QueueStore.claim_queued`), which holds
the queue's budget locked so that limits hold across executors. This module only decides
*when* to ask: on a wake-up (an enqueue or a completion in this process, a ``q:<name>``
notification from another), at the time the last claim said more may start (a delay
ending, a rate window moving on), and on a jittered fallback re-check.
"""

from __future__ import annotations

import functools
import logging
import math
import random
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from datetime import timedelta
from typing import TYPE_CHECKING, Final

import attrs

from durakit.api.clock import now_ms
from durakit.api.handle import seconds
from durakit.api.validation import check_identifiers
from durakit.core.admission import CLAIM_BATCH, QueuePolicy
from durakit.core.admission import RateLimit as CoreRateLimit
from durakit.core.errors import InitializationError, WorkflowExecutionError

if TYPE_CHECKING:
    from durakit.api.engine import Durakit

MAX_PRIORITY: Final = 2**31 - 1
COALESCE_S: Final = 0.002
"""Real seconds a runner waits after a wake-up before claiming, so that a burst of
enqueues or completions is served by one claim rather than one claim each."""
FALLBACK_S: Final = 1.0
"""Real seconds between fallback re-checks (jittered down by up to a fifth): the bound on
how late a runner notices work it was not told about (SQLite written by another process,
a lost notification). One cheap query for all of an engine's queues."""


def _limit(field: str, value: object) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise InitializationError(f"{field} must be an int or None, got {type(value).__qualname__}")
    if value < 1:
        raise InitializationError(f"{field} must be >= 1 or None, got {value!r}")


@attrs.frozen
class RateLimit:
    """At most ``limit`` workflows of a queue start per ``period`` (seconds or a
    timedelta), counted over the sliding window that ends now, on all executors."""

    limit: int
    period: float | timedelta

    def __attrs_post_init__(self) -> None:
        _limit("rate_limit.limit", self.limit)
        try:
            period = seconds(self.period, "rate_limit.period")
        except (TypeError, ValueError) as exc:
            raise InitializationError(str(exc)) from None
        if period is None or period * 1000 < 1:
            raise InitializationError(
                f"rate_limit.period must be at least one millisecond, got {self.period!r}"
            )

    @property
    def period_ms(self) -> int:
        period = seconds(self.period, "rate_limit.period")
        assert period is not None  # checked at construction
        return round(period * 1000)


@attrs.frozen(kw_only=True)
class Queue:
    """A registered queue (``app.queue(...)``): its name and limits.

    ``worker_concurrency`` bounds how many of its workflows run at once on *one* executor
    (process), ``concurrency`` on *all* executors together; ``rate_limit`` bounds how
    many start per period on all executors; ``priority_enabled`` orders by priority
    (lower first) before arrival; ``partition_queue`` applies every limit per partition
    key; ``max_tasks_per_iteration`` caps how many one claim takes.
    """

    name: str
    worker_concurrency: int | None = None
    concurrency: int | None = None
    rate_limit: RateLimit | None = None
    priority_enabled: bool = False
    partition_queue: bool = False
    max_tasks_per_iteration: int | None = None

    def __attrs_post_init__(self) -> None:
        check_identifiers(name=self.name)
        _limit("worker_concurrency", self.worker_concurrency)
        _limit("concurrency", self.concurrency)
        _limit("max_tasks_per_iteration", self.max_tasks_per_iteration)
        for field in ("priority_enabled", "partition_queue"):
            if not isinstance(getattr(self, field), bool):
                raise InitializationError(f"{field} must be a bool")
        if self.rate_limit is not None and not isinstance(self.rate_limit, RateLimit):
            raise InitializationError(
                "rate_limit must be a dk.RateLimit or None, "
                f"got {type(self.rate_limit).__qualname__}"
            )
        w, c = self.worker_concurrency, self.concurrency
        if w is not None and c is not None and w > c:
            raise InitializationError(
                f"worker_concurrency ({w}) cannot exceed concurrency ({c}) of queue {self.name!r}"
            )

    @property
    def policy(self) -> QueuePolicy:
        """The limits as the core's admission rule reads them."""
        rate = self.rate_limit
        return QueuePolicy(
            name=self.name,
            worker_concurrency=self.worker_concurrency,
            concurrency=self.concurrency,
            rate_limit=None
            if rate is None
            else CoreRateLimit(limit=rate.limit, period_ms=rate.period_ms),
            priority_enabled=self.priority_enabled,
            partitioned=self.partition_queue,
            max_tasks_per_iteration=self.max_tasks_per_iteration,
        )


@attrs.frozen(kw_only=True)
class Enqueue:
    """How ``run_workflow`` puts a workflow on a queue (validated by :func:`enqueue_options`)."""

    queue: str
    deduplication_id: str | None = None
    priority: int = 0
    partition_key: str | None = None
    delay_ms: int = 0


def check_priority(priority: int | None) -> int:
    """The priority of an enqueue (0 when not given); TypeError or ValueError otherwise."""
    if priority is None:
        return 0
    value: object = priority
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"priority must be an int, got {type(value).__qualname__}")
    if not 0 <= priority <= MAX_PRIORITY:
        raise ValueError(f"priority must be in 0..{MAX_PRIORITY}, got {priority}")
    return priority


def delay_ms(delay: float | timedelta | None) -> int:
    """A delay (seconds or a timedelta; None: none) in whole milliseconds, rounded up."""
    delay_s = seconds(delay, "delay")
    return 0 if delay_s is None else math.ceil(delay_s * 1000)


def enqueue_options(
    queues: dict[str, Queue],
    queue: str | None,
    *,
    deduplication_id: str | None,
    priority: int | None,
    queue_partition_key: str | None,
    delay: float | timedelta | None,
) -> Enqueue | None:
    """Check the queue keywords of ``run_workflow``: None when there is no queue.

    An unknown queue raises WorkflowExecutionError (a typo must not strand work); an
    option the queue does not allow, or one given without a queue, raises ValueError.
    """
    check_identifiers(
        queue=queue, deduplication_id=deduplication_id, queue_partition_key=queue_partition_key
    )
    delay_after = delay_ms(delay)
    if queue is None:
        given = {
            "deduplication_id": deduplication_id,
            "priority": priority,
            "queue_partition_key": queue_partition_key,
            "delay": delay,
        }
        refused = [name for name, value in given.items() if value is not None]
        if refused:
            raise ValueError(f"{', '.join(refused)} need(s) queue=: they apply to queued work")
        return None
    q = queues.get(queue)
    if q is None:
        raise WorkflowExecutionError(
            f"queue {queue!r} is not registered on this engine (register it with "
            f"app.queue({queue!r}) before launch)",
            queue_name=queue,
        )
    checked = check_priority(priority)
    if priority is not None and not q.priority_enabled:
        raise ValueError(
            f"priority given, but queue {queue!r} was registered without priority_enabled=True"
        )
    if q.partition_queue and queue_partition_key is None:
        raise ValueError(f"queue {queue!r} is partitioned: give queue_partition_key=")
    if not q.partition_queue and queue_partition_key is not None:
        raise ValueError(
            f"queue_partition_key given, but queue {queue!r} was registered without "
            "partition_queue=True"
        )
    return Enqueue(
        queue=queue,
        deduplication_id=deduplication_id,
        priority=checked,
        partition_key=queue_partition_key,
        delay_ms=delay_after,
    )


class _Signal(threading.Event):
    """Registered with the engine's hub under ``q:<name>``: a notification marks the
    queue due and wakes the runner (one thread serves every queue)."""

    def __init__(self, mark: Callable[[], None]) -> None:
        super().__init__()
        self._mark = mark

    def set(self) -> None:
        self._mark()


class QueueRunner:
    """One thread per engine that claims queued work for every queue it registered.

    A queue is claimed when it is *due*: woken by a notification, at the time its last
    claim said time alone may let more start, after a claim that took a full batch, or
    when the fallback check finds it has work. An idle queue costs nothing but its share
    of one query per fallback interval.
    """

    def __init__(self, engine: Durakit, queues: dict[str, Queue]) -> None:
        self._engine = engine
        self._queues = queues
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._due: set[str] = set(queues)  # at start: look at every queue once
        self._timers: dict[str, float] = {}  # queue -> clock time (s) to look again
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="durakit-queues", daemon=True)
        self.log = logging.getLogger("durakit")

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def mark(self, name: str) -> None:
        """The queue may have work or room: claim from it soon."""
        with self._lock:
            self._due.add(name)
        self._wake.set()

    def _take_due(self, now: float) -> set[str]:
        with self._lock:
            due, self._due = self._due, set()
            for name, at in list(self._timers.items()):
                if at <= now:
                    due.add(name)
                    del self._timers[name]
        return due

    def _run(self) -> None:
        engine = self._engine
        with ExitStack() as stack:
            for name in self._queues:
                signal = _Signal(functools.partial(self.mark, name))
                stack.enter_context(engine.hub.watching(signal, f"q:{name}"))
            next_fallback = time.monotonic() + self._fallback()
            while not self._stop.is_set():
                self._wake.clear()
                due = self._take_due(engine.clock.now())
                if time.monotonic() >= next_fallback:
                    next_fallback = time.monotonic() + self._fallback()
                    due |= self._with_work()
                for name in sorted(due):
                    if self._stop.is_set():
                        return
                    self._claim(name)
                with self._lock:
                    if self._due:
                        continue
                    until = min(self._timers.values(), default=None)
                poll = max(0.0, next_fallback - time.monotonic())
                if engine.clock.wait(self._wake, until, poll=poll):
                    time.sleep(COALESCE_S)

    @staticmethod
    def _fallback() -> float:
        return FALLBACK_S * random.uniform(0.8, 1.0)  # noqa: S311 - jitter, not secrecy

    def _with_work(self) -> set[str]:
        engine = self._engine
        try:
            return engine.store.queues_with_work(list(self._queues), engine.application_version)
        except Exception:  # the runner must survive a store outage; it looks again later
            self.log.warning("queue check failed; retrying", exc_info=True)
            return set()

    def _claim(self, name: str) -> None:
        engine = self._engine
        queue = self._queues[name]
        policy = queue.policy
        owner = uuid.uuid4().hex
        try:
            claim = engine.store.claim_queued(
                policy,
                executor_id=engine.executor_id,
                application_version=engine.application_version,
                owner=owner,
                now_ms=now_ms(engine.clock),
            )
        except Exception:  # the runner must survive a store outage; it looks again later
            self.log.warning("claim from queue %r failed; retrying", name, exc_info=True)
            with self._lock:
                self._timers[name] = engine.clock.now() + FALLBACK_S
            return
        for record in claim.claimed:
            engine.run_dequeued(record, owner)
        batch = min(CLAIM_BATCH, policy.max_tasks_per_iteration or CLAIM_BATCH)
        with self._lock:
            if len(claim.claimed) >= batch:
                self._due.add(name)  # a full batch: there may be more it may start now
            if claim.retry_at is not None:
                at = claim.retry_at / 1000
                self._timers[name] = min(at, self._timers.get(name, at))
