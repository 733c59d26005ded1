"""The workflow status machine: everything that decides a workflow's status lives here.

Rules, in the h11 style: transitions are a data table ``(status, event) -> outcome``.
An outcome is either a new status, or ``ABSORB`` (the event is accepted and changes
nothing, e.g. cancelling a workflow that already succeeded). A pair missing from the
table is illegal and raises :class:`IllegalTransitionError`; a failed transition leaves
the caller's state untouched because this module holds no state at all.

SUCCESS and ERROR are terminal: every legal event on them is absorbed. CANCELLED and
MAX_RECOVERY_ATTEMPTS_EXCEEDED are *stopped* but not terminal: ``RESUME`` restarts them.
"""

from __future__ import annotations

import enum
from typing import Final


class StatusType(enum.Enum):
    """Where a workflow is in its life (DBOS Transact's ``WorkflowStatusType``)."""

    PENDING = "PENDING"
    ENQUEUED = "ENQUEUED"
    SUCCESS = "SUCCESS"
    ERROR = "ERROR"
    CANCELLED = "CANCELLED"
    MAX_RECOVERY_ATTEMPTS_EXCEEDED = "MAX_RECOVERY_ATTEMPTS_EXCEEDED"


class WorkflowEvent(enum.Enum):
    """Something that happens to an existing workflow."""

    DEQUEUE = "DEQUEUE"  # a queue runner claims an ENQUEUED workflow
    RECOVER = "RECOVER"  # an executor takes a PENDING workflow over after a crash
    COMPLETE = "COMPLETE"  # the body returned a value that was stored
    FAIL = "FAIL"  # the body raised, or its output could not be stored
    CANCEL = "CANCEL"  # cancel_workflow
    TIMEOUT = "TIMEOUT"  # the stored deadline passed (expiry is cancellation)
    RESUME = "RESUME"  # resume_workflow
    DEAD_LETTER = "DEAD_LETTER"  # recovered more than max_recovery_attempts times
    REQUEUE = "REQUEUE"  # recovery puts dequeued work back on its queue (its limits apply)


class Absorb(enum.Enum):
    """The event is legal and leaves the status as it is."""

    ABSORB = "ABSORB"


ABSORB: Final = Absorb.ABSORB

Outcome = StatusType | Absorb

S = StatusType
E = WorkflowEvent

# The whole table. Reading it row by row is the documentation of the state machine;
# docs/concepts.md draws its diagram from this dict (see durakit.core.diagram).
TRANSITIONS: Final[dict[tuple[StatusType, WorkflowEvent], Outcome]] = {
    (S.ENQUEUED, E.DEQUEUE): S.PENDING,
    (S.ENQUEUED, E.CANCEL): S.CANCELLED,
    (S.ENQUEUED, E.TIMEOUT): S.CANCELLED,
    (S.ENQUEUED, E.RESUME): S.PENDING,  # resume starts queued work at once, bypassing its queue
    (S.PENDING, E.RECOVER): S.PENDING,
    (S.PENDING, E.COMPLETE): S.SUCCESS,
    (S.PENDING, E.FAIL): S.ERROR,
    (S.PENDING, E.CANCEL): S.CANCELLED,
    (S.PENDING, E.TIMEOUT): S.CANCELLED,
    (S.PENDING, E.RESUME): ABSORB,
    (S.PENDING, E.DEAD_LETTER): S.MAX_RECOVERY_ATTEMPTS_EXCEEDED,
    (S.PENDING, E.REQUEUE): S.ENQUEUED,
    (S.SUCCESS, E.CANCEL): ABSORB,
    (S.SUCCESS, E.TIMEOUT): ABSORB,
    (S.SUCCESS, E.RESUME): ABSORB,
    (S.ERROR, E.CANCEL): ABSORB,
    (S.ERROR, E.TIMEOUT): ABSORB,
    (S.ERROR, E.RESUME): ABSORB,
    (S.CANCELLED, E.CANCEL): ABSORB,
    (S.CANCELLED, E.TIMEOUT): ABSORB,
    (S.CANCELLED, E.RESUME): S.PENDING,
    (S.MAX_RECOVERY_ATTEMPTS_EXCEEDED, E.CANCEL): S.CANCELLED,
    (S.MAX_RECOVERY_ATTEMPTS_EXCEEDED, E.TIMEOUT): ABSORB,
    (S.MAX_RECOVERY_ATTEMPTS_EXCEEDED, E.RESUME): S.PENDING,
}

TERMINAL: Final[frozenset[StatusType]] = frozenset({S.SUCCESS, S.ERROR})
"""Statuses no event ever leaves."""

FINISHED: Final[frozenset[StatusType]] = frozenset(
    {S.SUCCESS, S.ERROR, S.CANCELLED, S.MAX_RECOVERY_ATTEMPTS_EXCEEDED}
)
"""Statuses in which no execution is running or due: awaiting the workflow ends here."""


class IllegalTransitionError(Exception):
    """An event that the table does not allow in the current status."""

    def __init__(self, status: StatusType, event: WorkflowEvent) -> None:
        super().__init__(f"event {event.value} is not allowed in status {status.value}")
        self.status = status
        self.event = event


def transition(status: StatusType, event: WorkflowEvent) -> StatusType:
    """The status after ``event``; raises :class:`IllegalTransitionError` if not allowed."""
    try:
        outcome = TRANSITIONS[(status, event)]
    except KeyError:
        raise IllegalTransitionError(status, event) from None
    return status if isinstance(outcome, Absorb) else outcome


def sources(event: WorkflowEvent) -> frozenset[StatusType]:
    """The statuses from which ``event`` really changes the status.

    Stores apply an event as a compare-and-swap ``UPDATE ... WHERE status IN sources``,
    so the table, not the store, decides which rows an event may touch.
    """
    return frozenset(
        status
        for (status, ev), outcome in TRANSITIONS.items()
        if ev is event and outcome is not ABSORB
    )


def targets_of(
    table: dict[tuple[StatusType, WorkflowEvent], Outcome],
) -> dict[WorkflowEvent, StatusType]:
    """Each event's single target status in ``table``; raises if an event has none or
    several (then no compare-and-swap could apply it)."""
    found: dict[WorkflowEvent, set[StatusType]] = {}
    for (_, event), outcome in table.items():
        if not isinstance(outcome, Absorb):
            found.setdefault(event, set()).add(outcome)
    if set(found) != set(WorkflowEvent) or any(len(t) != 1 for t in found.values()):
        raise ValueError(f"every event must change status to exactly one target: {found}")
    return {event: next(iter(t)) for event, t in found.items()}


_TARGETS: Final = targets_of(TRANSITIONS)


def target(event: WorkflowEvent) -> StatusType:
    """The one status ``event`` leads to wherever it changes anything.

    Together with :func:`sources` this is how stores apply an event: ``UPDATE ... SET
    status = target(event) WHERE status IN sources(event)``.
    """
    return _TARGETS[event]
