"""``WorkflowStatus`` and ``StepInfo``: the management view of workflows and steps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from durakit.core.status import StatusType


def from_ms(ms: int | None) -> datetime | None:
    """Epoch milliseconds to an aware UTC datetime."""
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


@attrs.frozen(kw_only=True)
class WorkflowStatus:
    """A workflow's stored state; ``input``/``output`` hold decoded values (None if not loaded).

    ``error`` is the rebuilt exception of a failed workflow. A field that cannot be
    decoded holds its plain JSON (or raw text), and ``error`` the SerializationError
    that ``get_result`` raises; a warning is logged either way.
    ``authenticated_user``, ``authenticated_roles`` and ``assumed_role`` are what
    ``run_workflow`` was given (durakit only records them). Times are aware UTC datetimes.
    """

    workflow_id: str
    status: StatusType
    name: str
    authenticated_user: str | None = None
    assumed_role: str | None = None
    authenticated_roles: tuple[str, ...] | None = None
    input: Any = None
    output: Any = None
    error: BaseException | None = None
    executor_id: str | None = None
    created_at: datetime
    updated_at: datetime
    application_version: str | None = None
    application_id: str | None = None
    attempts: int = 1
    queue_name: str | None = None
    timeout: timedelta | None = None
    deadline: datetime | None = None
    started_at: datetime | None = None
    deduplication_id: str | None = None
    priority: int = 0

    @property
    def app_name(self) -> str | None:
        """The ``app_name`` of the engine that started the workflow (the seed's
        ``application_id``)."""
        return self.application_id


@attrs.frozen(kw_only=True)
class StepInfo:
    """One recorded step: decoded ``output`` or rebuilt ``error`` (undecodable ones as in
    :class:`WorkflowStatus`); a child start names its ``child_workflow_id``.

    durakit's own operations are recorded as steps named ``durakit.send``,
    ``durakit.recv``, ``durakit.set_event``, ``durakit.get_event`` and
    ``durakit.sleep``. A ``durakit.sleep`` step's ``output`` is its wake-up time as an
    ``int`` of milliseconds since the Unix epoch (UTC), as stored:
    ``datetime.fromtimestamp(step.output / 1000, UTC)`` reads it. ``ctx.sleep`` records
    one; so does each ``recv`` or ``get_event`` that had to wait, for its timeout, in
    the step ID just before its own (a ``recv`` or ``get_event`` always takes two IDs,
    so the first is a gap when it did not wait).

    ``started_at`` / ``completed_at`` are when the step's function began and when its
    outcome was recorded (aware UTC datetimes); None for a step recorded without them
    (durakit's own instantaneous operations record both as the same instant).
    """

    step_id: int
    name: str
    output: Any = None
    error: BaseException | None = None
    child_workflow_id: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
