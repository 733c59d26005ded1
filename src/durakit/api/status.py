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


@attrs.frozen(kw_only=True)
class StepInfo:
    """One recorded step: decoded ``output`` or rebuilt ``error`` (undecodable ones as in
    :class:`WorkflowStatus`); a child start names its ``child_workflow_id``."""

    step_id: int
    name: str
    output: Any = None
    error: BaseException | None = None
    child_workflow_id: str | None = None
