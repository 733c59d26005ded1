"""Whole transitions: what an event changes in a workflow row, decided here, as data.

The status table (:mod:`durakit.core.status`) says which status an event leads to; this
module says everything else the event changes -- the owner token, the executor, the
attempt count, the start time and deadline, the deduplication ID, the outcome -- as one
:class:`WorkflowUpdate`. Stores apply an update without interpreting it::

    UPDATE workflows SET <the update's effects>
    WHERE workflow_id = :id AND status IN :from_statuses [AND owner = :fence_owner]

and :func:`applied` is the reference semantics of that statement, on a record (the
memory store uses it; the SQL stores are tested against it).

Rules, in one place:

- DEQUEUE, RECOVER and RESUME *claim* the workflow: a new owner token (fencing out any
  previous execution) and the claiming executor.
- RECOVER counts one more attempt; RESUME starts counting again at 1.
- DEQUEUE and RESUME of a workflow that was not running *restart its clock*: it starts
  now, and a workflow with a timeout of its own gets its full timeout again from now (a
  queued workflow's timeout starts at dequeue; a resumed one that had timed out may run
  again). A deadline inherited without a timeout of its own is kept.
- COMPLETE and FAIL record the outcome, and are *fenced*: they apply only while the
  finishing execution still owns the row.
- An event that leads to a finished status releases the deduplication ID.
"""

from __future__ import annotations

import enum
from typing import Final

import attrs

from durakit.core.records import Fence, WorkflowRecord
from durakit.core.status import FINISHED, StatusType, WorkflowEvent, sources, target

E = WorkflowEvent


class Attempts(enum.Enum):
    """What an update does to the attempt count (executions of the workflow)."""

    KEEP = "KEEP"
    INCREMENT = "INCREMENT"
    RESET = "RESET"  # back to 1


@attrs.frozen(kw_only=True)
class WorkflowUpdate:
    """One status compare-and-swap and all of its effects, ready for a store to apply.

    Applies only when the row's status is in ``from_statuses`` (and, when
    ``fence_owner`` is set, its owner is that token); then it sets ``status`` and
    ``updated_at = now_ms``, and each effect that is set.
    """

    event: WorkflowEvent
    from_statuses: frozenset[StatusType]
    status: StatusType
    now_ms: int
    fence_owner: str | None = None
    new_owner: str | None = None
    executor_id: str | None = None
    attempts: Attempts = Attempts.KEEP
    restart_clock: bool = False
    release_deduplication: bool = False
    sets_outcome: bool = False
    output: str | None = None
    error: str | None = None


@attrs.frozen
class _Effects:
    claims: bool = False
    attempts: Attempts = Attempts.KEEP
    restart_clock: bool = False
    finishes: bool = False


# What each event changes besides the status: reading this table is the documentation.
_EFFECTS: Final[dict[WorkflowEvent, _Effects]] = {
    E.DEQUEUE: _Effects(claims=True, restart_clock=True),
    E.RECOVER: _Effects(claims=True, attempts=Attempts.INCREMENT),
    E.RESUME: _Effects(claims=True, attempts=Attempts.RESET, restart_clock=True),
    E.COMPLETE: _Effects(finishes=True),
    E.FAIL: _Effects(finishes=True),
    E.CANCEL: _Effects(),
    E.TIMEOUT: _Effects(),
    E.DEAD_LETTER: _Effects(),
    # The old owner token stays, but the row is no longer PENDING, so fenced writes of
    # the previous execution fail; the next DEQUEUE claims it with a new token.
    E.REQUEUE: _Effects(),
}
assert set(_EFFECTS) == set(WorkflowEvent)  # a new event needs a row here


def plan(
    event: WorkflowEvent,
    now_ms: int,
    *,
    owner: str | None = None,
    executor_id: str | None = None,
) -> WorkflowUpdate:
    """The update for a claiming or stopping event (everything but COMPLETE and FAIL).

    A claiming event (DEQUEUE, RECOVER, RESUME) needs the new ``owner`` token and the
    claiming ``executor_id``; a stopping one (CANCEL, TIMEOUT, DEAD_LETTER) or a REQUEUE
    takes neither.
    """
    effects = _EFFECTS[event]
    if effects.finishes:
        raise ValueError(f"{event.value} records an outcome: use plan_finish()")
    if effects.claims != (owner is not None and executor_id is not None):
        raise ValueError(
            f"{event.value} {'needs' if effects.claims else 'takes no'} owner and executor_id"
        )
    return WorkflowUpdate(
        event=event,
        from_statuses=sources(event),
        status=target(event),
        now_ms=now_ms,
        new_owner=owner,
        executor_id=executor_id,
        attempts=effects.attempts,
        restart_clock=effects.restart_clock,
        release_deduplication=target(event) in FINISHED,
    )


def plan_finish(
    event: WorkflowEvent, *, owner: str, output: str | None, error: str | None, now_ms: int
) -> WorkflowUpdate:
    """The fenced update that records an execution's outcome (COMPLETE or FAIL): ``owner``
    is the finishing execution's token (its fence)."""
    if not _EFFECTS[event].finishes:
        raise ValueError(f"{event.value} does not record an outcome: use plan()")
    if (error is None) != (event is E.COMPLETE):
        raise ValueError("COMPLETE records an output and no error; FAIL records an error")
    return WorkflowUpdate(
        event=event,
        from_statuses=sources(event),
        status=target(event),
        now_ms=now_ms,
        fence_owner=owner,
        release_deduplication=True,
        sets_outcome=True,
        output=output,
        error=error,
    )


def check_finish(fence: Fence, update: WorkflowUpdate) -> None:
    """Refuse (ValueError) a finishing write whose update is not a fenced outcome of
    ``fence``'s execution: a store never records an outcome the core did not plan."""
    if not update.sets_outcome:
        raise ValueError(f"{update.event.value} does not record an outcome: use plan_finish()")
    if update.fence_owner != fence.owner:
        raise ValueError("the update is fenced on another owner than the fence")


def matches(record: WorkflowRecord, update: WorkflowUpdate) -> bool:
    """Whether ``update`` applies to ``record`` (its compare-and-swap condition)."""
    return record.status in update.from_statuses and (
        update.fence_owner is None or record.owner == update.fence_owner
    )


def applied(record: WorkflowRecord, update: WorkflowUpdate) -> WorkflowRecord:
    """``record`` after ``update`` (the caller checked :func:`matches`): the reference
    semantics that every store's UPDATE statement implements."""
    changes: dict[str, object] = {"status": update.status, "updated_at": update.now_ms}
    if update.new_owner is not None:
        changes["owner"] = update.new_owner
    if update.executor_id is not None:
        changes["executor_id"] = update.executor_id
    if update.attempts is Attempts.INCREMENT:
        changes["attempts"] = record.attempts + 1
    elif update.attempts is Attempts.RESET:
        changes["attempts"] = 1
    if update.restart_clock:
        changes["started_at"] = update.now_ms
        if record.timeout_ms is not None:
            changes["deadline_ms"] = update.now_ms + record.timeout_ms
    if update.release_deduplication:
        changes["deduplication_id"] = None
    if update.sets_outcome:
        changes["output"] = update.output
        changes["error"] = update.error
    return attrs.evolve(record, **changes)  # type: ignore[arg-type]
