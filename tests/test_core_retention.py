"""Which finished workflows garbage collection may delete (durakit.core.retention)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from durakit.core.records import WorkflowRecord
from durakit.core.retention import ACTIVE, collectable
from durakit.core.status import FINISHED, StatusType

S = StatusType


def row(wid: str, status: StatusType, updated_at: int, parent: str | None = None) -> WorkflowRecord:
    return WorkflowRecord(
        workflow_id=wid,
        name="n",
        status=status,
        input=None,
        executor_id="x",
        application_version="v",
        created_at=0,
        updated_at=updated_at,
        parent_workflow_id=parent,
    )


ROWS = [
    row("old-ok", S.SUCCESS, 10),
    row("old-err", S.ERROR, 20),
    row("old-cancelled", S.CANCELLED, 30),
    row("old-dead", S.MAX_RECOVERY_ATTEMPTS_EXCEEDED, 40),
    row("old-pending", S.PENDING, 5),
    row("old-enqueued", S.ENQUEUED, 6),
    row("new-ok", S.SUCCESS, 500),
]


def test_finished_and_older_than_the_cutoff_oldest_first() -> None:
    assert collectable(ROWS, 100, None, 100) == ["old-ok", "old-err", "old-cancelled", "old-dead"]
    assert collectable(ROWS, 25, None, 100) == ["old-ok", "old-err"]
    assert collectable(ROWS, 10, None, 100) == []  # strictly before the cutoff


def test_a_batch_is_bounded() -> None:
    assert collectable(ROWS, 100, None, 2) == ["old-ok", "old-err"]


def test_keep_spares_the_most_recently_finished_whatever_their_age() -> None:
    # The newest finished is "new-ok" (not collectable anyway), then "old-dead".
    assert collectable(ROWS, 1_000, 2, 100) == ["old-ok", "old-err", "old-cancelled"]
    assert collectable(ROWS, 1_000, 0, 100) == [
        "old-ok",
        "old-err",
        "old-cancelled",
        "old-dead",
        "new-ok",
    ]
    assert collectable(ROWS, 1_000, 50, 100) == []  # more to keep than there are


def test_a_child_of_an_active_parent_is_kept() -> None:
    rows = [
        row("parent", S.PENDING, 1),
        row("child", S.SUCCESS, 2, parent="parent"),
        row("queued-parent", S.ENQUEUED, 1),
        row("child-2", S.SUCCESS, 2, parent="queued-parent"),
        row("done-parent", S.SUCCESS, 3),
        row("child-3", S.ERROR, 4, parent="done-parent"),
        row("orphan", S.SUCCESS, 5, parent="deleted-long-ago"),
    ]
    assert collectable(rows, 100, None, 100) == ["done-parent", "child-3", "orphan"]


def test_ties_on_time_are_ordered_by_id() -> None:
    rows = [row("b", S.SUCCESS, 1), row("a", S.SUCCESS, 1), row("c", S.SUCCESS, 1)]
    assert collectable(rows, 100, None, 100) == ["a", "b", "c"]
    assert collectable(rows, 100, 1, 100) == ["a", "b"]  # "c" is the newest by the order


statuses = st.sampled_from(list(S))


@given(
    rows=st.lists(
        st.builds(
            row,
            wid=st.text(alphabet="abcdef", min_size=1, max_size=3),
            status=statuses,
            updated_at=st.integers(0, 50),
            parent=st.none() | st.text(alphabet="abcdef", min_size=1, max_size=3),
        ),
        unique_by=lambda r: r.workflow_id,
        max_size=12,
    ),
    cutoff=st.integers(0, 60),
    keep=st.none() | st.integers(0, 5),
    limit=st.integers(1, 15),
)
def test_never_an_active_one_nor_a_young_one(
    rows: list[WorkflowRecord], cutoff: int, keep: int | None, limit: int
) -> None:
    by_id = {r.workflow_id: r for r in rows}
    doomed = collectable(rows, cutoff, keep, limit)
    assert len(doomed) <= limit
    assert len(set(doomed)) == len(doomed)
    for wid in doomed:
        r = by_id[wid]
        assert r.status in FINISHED
        assert r.updated_at < cutoff
        parent = by_id.get(r.parent_workflow_id or "")
        assert parent is None or parent.status not in ACTIVE
    finished = [r for r in rows if r.status in FINISHED]
    if keep is not None:
        assert len(finished) - len(doomed) >= min(keep, len(finished))
