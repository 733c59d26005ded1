"""Properties of queue admission (``durakit.core.admission``): limits, order, fairness."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from durakit.core.admission import (
    CLAIM_BATCH,
    Candidate,
    Load,
    QueuePolicy,
    RateLimit,
    admit,
    claim_limit,
    full_partitions,
    queue_order,
    retry_at,
    room,
)

PARTITIONS = [None, "a", "b", "c"]
limits = st.none() | st.integers(1, 6)


@st.composite
def policies(draw: st.DrawFn) -> QueuePolicy:
    worker = draw(limits)
    total = draw(limits)
    if worker is not None and total is not None and worker > total:
        worker, total = total, worker
    rate = draw(st.none() | st.builds(RateLimit, limit=st.integers(1, 6), period_ms=st.just(1000)))
    return QueuePolicy(
        name="q",
        worker_concurrency=worker,
        concurrency=total,
        rate_limit=rate,
        priority_enabled=draw(st.booleans()),
        partitioned=draw(st.booleans()),
        max_tasks_per_iteration=draw(limits),
    )


candidates = st.lists(
    st.builds(
        Candidate,
        workflow_id=st.uuids().map(str),
        created_at=st.integers(0, 20),
        priority=st.integers(0, 3),
        partition=st.sampled_from(PARTITIONS),
        visible_at=st.none() | st.integers(0, 200),
    ),
    max_size=25,
    unique_by=lambda c: c.workflow_id,
)
loads = st.dictionaries(
    st.sampled_from(PARTITIONS),
    st.builds(
        Load,
        running_here=st.integers(0, 4),
        running_total=st.integers(4, 8),
        recent_starts=st.integers(0, 7),
    ),
)
NOW = 100


def key(policy: QueuePolicy, c: Candidate) -> str | None:
    return c.partition if policy.partitioned else None


@given(policy=policies(), loads=loads, cands=candidates)
def test_no_limit_is_ever_exceeded(
    policy: QueuePolicy, loads: dict[str | None, Load], cands: list[Candidate]
) -> None:
    admitted = admit(policy, loads, cands, NOW)
    per_partition = Counter(key(policy, c) for c in admitted)
    for part, count in per_partition.items():
        load = loads.get(part, Load())
        if policy.worker_concurrency is not None:
            assert load.running_here + count <= max(load.running_here, policy.worker_concurrency)
        if policy.concurrency is not None:
            assert load.running_total + count <= max(load.running_total, policy.concurrency)
        if policy.rate_limit is not None:
            assert load.recent_starts + count <= max(load.recent_starts, policy.rate_limit.limit)
    if policy.max_tasks_per_iteration is not None:
        assert len(admitted) <= policy.max_tasks_per_iteration
    assert all(c.visible_at is None or c.visible_at <= NOW for c in admitted)


@given(policy=policies(), loads=loads, cands=candidates)
def test_admission_is_in_queue_order_and_takes_all_it_may(
    policy: QueuePolicy, loads: dict[str | None, Load], cands: list[Candidate]
) -> None:
    admitted = admit(policy, loads, cands, NOW)
    assert admitted == sorted(admitted, key=lambda c: queue_order(policy, c))
    capped = policy.max_tasks_per_iteration is not None and (
        len(admitted) == policy.max_tasks_per_iteration
    )
    taken = {c.workflow_id for c in admitted}
    used = Counter(key(policy, c) for c in admitted)
    for c in sorted(cands, key=lambda c: queue_order(policy, c)):
        if c.workflow_id in taken or (c.visible_at is not None and c.visible_at > NOW):
            continue
        # A visible candidate left behind: its partition had no room left, or the pass
        # was full -- and then nothing after it in queue order from its partition ran.
        part_room = room(policy, loads.get(key(policy, c), Load()))
        assert capped or (part_room is not None and used[key(policy, c)] >= part_room)
        later = [
            a
            for a in admitted
            if key(policy, a) == key(policy, c) and queue_order(policy, a) > queue_order(policy, c)
        ]
        assert later == []


@given(policy=policies(), loads=loads, cands=candidates)
def test_a_paused_queue_admits_nothing(
    policy: QueuePolicy, loads: dict[str | None, Load], cands: list[Candidate]
) -> None:
    assert admit(policy, loads, cands, NOW, paused=True) == []


def test_priorities_then_fifo_when_enabled_and_fifo_otherwise() -> None:
    cands = [
        Candidate(workflow_id="late-urgent", created_at=5, priority=0),
        Candidate(workflow_id="early-low", created_at=1, priority=9),
        Candidate(workflow_id="mid-low", created_at=3, priority=9),
    ]
    with_prio = QueuePolicy(name="q", priority_enabled=True)
    assert [c.workflow_id for c in admit(with_prio, {}, cands, 0)] == [
        "late-urgent",
        "early-low",
        "mid-low",
    ]
    fifo = QueuePolicy(name="q")
    assert [c.workflow_id for c in admit(fifo, {}, cands, 0)] == [
        "early-low",
        "mid-low",
        "late-urgent",
    ]


def test_a_full_partition_does_not_block_another() -> None:
    policy = QueuePolicy(name="q", worker_concurrency=1, partitioned=True)
    cands = [
        Candidate(workflow_id="a1", created_at=0, partition="a"),
        Candidate(workflow_id="a2", created_at=1, partition="a"),
        Candidate(workflow_id="b1", created_at=2, partition="b"),
    ]
    admitted = admit(policy, {"a": Load(running_here=1)}, cands, 0)
    assert [c.workflow_id for c in admitted] == ["b1"]


def test_the_tightest_limit_wins() -> None:
    policy = QueuePolicy(
        name="q",
        worker_concurrency=5,
        concurrency=10,
        rate_limit=RateLimit(limit=3, period_ms=1000),
    )
    assert room(policy, Load(running_here=1, running_total=9, recent_starts=0)) == 1
    assert room(policy, Load(running_here=4, running_total=0, recent_starts=0)) == 1
    assert room(policy, Load(running_here=0, running_total=0, recent_starts=2)) == 1
    assert room(policy, Load(running_here=9, running_total=0, recent_starts=0)) == 0
    assert room(QueuePolicy(name="q"), Load(running_here=100)) is None
    assert not QueuePolicy(name="q", worker_concurrency=3).has_global_budget
    assert QueuePolicy(name="q", concurrency=3).has_global_budget
    assert QueuePolicy(name="q", rate_limit=RateLimit(limit=1, period_ms=1)).has_global_budget


@pytest.mark.parametrize(
    ("field", "value"),
    [("worker_concurrency", 0), ("concurrency", -1), ("max_tasks_per_iteration", 0)],
)
def test_invalid_limits_are_refused(field: str, value: int) -> None:
    options: dict[str, Any] = {field: value}
    with pytest.raises(ValueError, match=field):
        QueuePolicy(name="q", **options)


def test_invalid_rate_limits_and_a_worker_limit_above_the_global_one_are_refused() -> None:
    with pytest.raises(ValueError, match="limit"):
        RateLimit(limit=0, period_ms=10)
    with pytest.raises(ValueError, match="period_ms"):
        RateLimit(limit=1, period_ms=0)
    with pytest.raises(ValueError, match="cannot exceed"):
        QueuePolicy(name="q", worker_concurrency=5, concurrency=2)


def test_a_pass_reads_no_more_candidates_than_it_may_admit() -> None:
    plain = QueuePolicy(name="q")
    assert claim_limit(plain, {}) == CLAIM_BATCH
    assert claim_limit(QueuePolicy(name="q", max_tasks_per_iteration=7), {}) == 7
    capped = QueuePolicy(name="q", concurrency=5, max_tasks_per_iteration=4)
    assert claim_limit(capped, {None: Load(running_total=3)}) == 2
    assert claim_limit(capped, {None: Load(running_total=5)}) == 0
    # A partitioned queue reads a batch; full partitions are left out instead.
    split = QueuePolicy(name="q", concurrency=2, partitioned=True)
    loads = {"a": Load(running_total=2), "b": Load(running_total=1), None: Load()}
    assert claim_limit(split, loads) == CLAIM_BATCH
    assert full_partitions(split, loads) == ["a"]
    assert full_partitions(QueuePolicy(name="q", concurrency=2), loads) == []


def test_time_alone_frees_a_full_rate_window_or_ends_a_delay() -> None:
    rated = QueuePolicy(name="q", rate_limit=RateLimit(limit=2, period_ms=1000))
    waiting = [Candidate(workflow_id="w", created_at=0)]
    full: dict[str | None, Load] = {None: Load(recent_starts=2, oldest_start=500)}
    assert retry_at(rated, full, waiting, None) == 1500
    assert retry_at(rated, full, waiting, 900) == 900
    assert retry_at(rated, full, [], None) is None
    half: dict[str | None, Load] = {None: Load(recent_starts=1, oldest_start=500)}
    assert retry_at(rated, half, waiting, None) is None
    # Without a rate limit only the next delay matters.
    assert retry_at(QueuePolicy(name="q", concurrency=1), full, waiting, 42) == 42
    split = QueuePolicy(name="q", rate_limit=RateLimit(limit=1, period_ms=10), partitioned=True)
    parted = [Candidate(workflow_id="w", created_at=0, partition="p")]
    assert retry_at(split, {"p": Load(recent_starts=1, oldest_start=5)}, parted, None) == 15
