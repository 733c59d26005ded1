"""Queue admission: which ENQUEUED workflows may start now (pure arithmetic).

A queue runner asks this once per pass, inside the store's claim (which holds the
queue's budget locked while it reads the counts and writes the claims), so that limits
hold for any number of executors on one database:

- ``worker_concurrency``: at most this many of the queue's workflows run (PENDING) on
  *this* executor at once;
- ``concurrency``: at most this many run on *all* executors together;
- ``rate_limit``: at most ``limit`` workflows *start* (are dequeued) per ``period``,
  counted over the sliding window that ends now, on all executors;
- ``partitioned``: every limit above applies per partition key instead of per queue;
- ``priority_enabled``: lower priority number first, FIFO (creation time, then ID)
  within a priority; otherwise FIFO;
- a workflow enqueued with a delay is invisible until ``visible_at``;
- ``max_tasks_per_iteration`` caps how many one pass claims in total;
- a paused queue admits nothing.

A partition with no room does not stop the others: the candidates are scanned in queue
order and each is admitted while its own partition has room.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs


def _positive(_: object, attribute: attrs.Attribute[Any], value: int | None) -> None:
    if value is not None and value < 1:
        raise ValueError(f"{attribute.name} must be >= 1 or None, got {value!r}")


@attrs.frozen(kw_only=True)
class RateLimit:
    """At most ``limit`` starts per ``period_ms`` milliseconds (a sliding window)."""

    limit: int = attrs.field(validator=_positive)
    period_ms: int = attrs.field(validator=_positive)


@attrs.frozen(kw_only=True)
class QueuePolicy:
    """A queue's limits (None: no limit)."""

    name: str
    worker_concurrency: int | None = attrs.field(default=None, validator=_positive)
    concurrency: int | None = attrs.field(default=None, validator=_positive)
    rate_limit: RateLimit | None = None
    priority_enabled: bool = False
    partitioned: bool = False
    max_tasks_per_iteration: int | None = attrs.field(default=None, validator=_positive)

    def __attrs_post_init__(self) -> None:
        if (
            self.worker_concurrency is not None
            and self.concurrency is not None
            and self.worker_concurrency > self.concurrency
        ):
            raise ValueError(
                f"worker_concurrency ({self.worker_concurrency}) cannot exceed concurrency "
                f"({self.concurrency})"
            )

    @property
    def has_global_budget(self) -> bool:
        """Whether executors share a budget (then claims must be serialized)."""
        return self.concurrency is not None or self.rate_limit is not None


@attrs.frozen(kw_only=True)
class Load:
    """What one partition (or the whole queue) is doing now."""

    running_here: int = 0  # PENDING on this executor
    running_total: int = 0  # PENDING on every executor
    recent_starts: int = 0  # started within the rate limit's window, on every executor
    oldest_start: int | None = None  # the earliest of those starts (when the window moves)


NO_LOAD = Load()


@attrs.frozen(kw_only=True)
class Candidate:
    """An ENQUEUED workflow of the queue."""

    workflow_id: str
    created_at: int
    priority: int = 0
    partition: str | None = None
    visible_at: int | None = None


def queue_order(policy: QueuePolicy, candidate: Candidate) -> tuple[int, int, str]:
    """The sort key of the queue: priority first when enabled, then FIFO."""
    priority = candidate.priority if policy.priority_enabled else 0
    return (priority, candidate.created_at, candidate.workflow_id)


def room(policy: QueuePolicy, load: Load) -> int | None:
    """How many more may start in a partition with ``load``; None: no limit applies."""
    limits = []
    if policy.worker_concurrency is not None:
        limits.append(policy.worker_concurrency - load.running_here)
    if policy.concurrency is not None:
        limits.append(policy.concurrency - load.running_total)
    if policy.rate_limit is not None:
        limits.append(policy.rate_limit.limit - load.recent_starts)
    return max(0, min(limits)) if limits else None


CLAIM_BATCH = 1000
"""The most candidates one pass reads, so a huge backlog is never read whole."""


def claim_limit(policy: QueuePolicy, loads: Mapping[str | None, Load]) -> int:
    """How many candidates (in queue order) a pass needs to read, at most.

    For an unpartitioned queue, no more than the room left; a partitioned queue reads a
    batch (the store leaves out the partitions in :func:`full_partitions`).
    """
    limit = min(CLAIM_BATCH, policy.max_tasks_per_iteration or CLAIM_BATCH)
    if not policy.partitioned:
        left = room(policy, loads.get(None, NO_LOAD))
        if left is not None:
            limit = min(limit, left)
    return limit


def full_partitions(policy: QueuePolicy, loads: Mapping[str | None, Load]) -> list[str]:
    """Partition keys with no room now: their candidates need not be read at all."""
    if not policy.partitioned:
        return []
    return sorted(k for k, load in loads.items() if k is not None and room(policy, load) == 0)


def retry_at(
    policy: QueuePolicy,
    loads: Mapping[str | None, Load],
    waiting: Sequence[Candidate],
    next_visible: int | None,
) -> int | None:
    """When time alone may let more of the queue start, after a pass left ``waiting``
    (visible candidates it could not admit) and ``next_visible`` (the earliest end of a
    delay still running): a delay ends, or a full rate-limit window moves on. None if
    only an event (a completion, an enqueue) can. Epoch ms."""
    times = [] if next_visible is None else [next_visible]
    rate = policy.rate_limit
    if rate is not None:
        for candidate in waiting:
            load = loads.get(candidate.partition if policy.partitioned else None, NO_LOAD)
            if load.recent_starts >= rate.limit and load.oldest_start is not None:
                times.append(load.oldest_start + rate.period_ms)
    return min(times) if times else None


def admit(
    policy: QueuePolicy,
    loads: Mapping[str | None, Load],
    candidates: Sequence[Candidate],
    now_ms: int,
    *,
    paused: bool = False,
) -> list[Candidate]:
    """The candidates to start now, in queue order, within every limit.

    ``loads`` maps a partition key (None for an unpartitioned queue) to its load; a
    missing key means no load. Candidates may come in any order.
    """
    if paused:
        return []
    cap = policy.max_tasks_per_iteration
    left: dict[str | None, int | None] = {}
    admitted: list[Candidate] = []
    for candidate in sorted(candidates, key=lambda c: queue_order(policy, c)):
        if cap is not None and len(admitted) >= cap:
            break
        if candidate.visible_at is not None and candidate.visible_at > now_ms:
            continue
        key = candidate.partition if policy.partitioned else None
        if key not in left:
            left[key] = room(policy, loads.get(key, NO_LOAD))
        budget = left[key]
        if budget is not None:
            if budget <= 0:
                continue
            left[key] = budget - 1
        admitted.append(candidate)
    return admitted
