"""``WorkflowHandle[R]``: a reference to a started workflow, typed by its output."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from durakit.api.status import WorkflowStatus
from durakit.api.validation import check_duration
from durakit.api.waiting import Deadline, poll_store
from durakit.core.errors import (
    AwaitedWorkflowCancelledError,
    DeadLetterQueueError,
    DurakitTimeoutError,
    NonExistentWorkflowError,
    WorkflowExecutionError,
)
from durakit.core.records import WorkflowRecord
from durakit.core.status import FINISHED, StatusType

if TYPE_CHECKING:
    from durakit.api.clock import Clock
    from durakit.api.serialization import Serializer
    from durakit.api.waiting import WakeHub
    from durakit.backends.protocol import SystemStore


class HandleHost(Protocol):
    """What a handle needs from the engine or client that made it."""

    @property
    def store(self) -> SystemStore: ...

    clock: Clock
    hub: WakeHub
    serializer: Serializer

    def get_workflow_status(self, workflow_id: str) -> WorkflowStatus: ...


R_co = TypeVar("R_co", covariant=True)
R = TypeVar("R")


class WorkflowHandle(Protocol[R_co]):
    """What a caller holds after starting (or retrieving) a workflow."""

    @property
    def workflow_id(self) -> str:
        """The workflow's ID."""
        ...

    def get_result(self, timeout: float | timedelta | None = None) -> R_co:
        """Wait for the workflow to finish and return its output, or raise its error.

        Raises the workflow's own exception (rebuilt where possible),
        AwaitedWorkflowCancelledError if it was cancelled, DeadLetterQueueError if it
        dead-lettered, DurakitTimeoutError if ``timeout`` passes first.
        """
        ...

    def get_status(self) -> WorkflowStatus:
        """The workflow's current status row."""
        ...


def seconds(timeout: float | timedelta | None, name: str = "timeout") -> float | None:
    """Normalize a duration given as seconds or a timedelta (None: no limit); refuse
    one that is negative, NaN, infinite or too long with a ValueError naming ``name``."""
    return None if timeout is None else check_duration(name, timeout)


class Outcome:
    """The live outcome of an execution in this process, set once by its thread."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None
        self.known = False  # False: the execution stopped without an outcome (read the store)

    def set_value(self, value: Any) -> None:
        self.value, self.known = value, True
        self.done.set()

    def set_error(self, error: BaseException) -> None:
        self.error, self.known = error, True
        self.done.set()

    def set_unknown(self) -> None:
        self.done.set()


class EngineHandle(Generic[R]):
    """The engine's handle: waits on the live outcome if this process runs the workflow,
    else on the store (woken by notifications, with a fallback re-check)."""

    def __init__(
        self, engine: HandleHost, workflow_id: str, output_type: Any, live: Outcome | None
    ) -> None:
        self._engine = engine
        self._workflow_id = workflow_id
        self._output_type = output_type
        self._live = live

    @property
    def workflow_id(self) -> str:
        return self._workflow_id

    def __repr__(self) -> str:
        return f"WorkflowHandle({self._workflow_id!r})"

    def get_status(self) -> WorkflowStatus:
        return self._engine.get_workflow_status(self._workflow_id)

    def get_result(self, timeout: float | timedelta | None = None) -> R:
        limit = seconds(timeout)
        # Outside a workflow the caller's real time, inside one the engine's clock.
        deadline = Deadline(self._engine.clock, limit)
        live = self._live
        if live is not None:
            if not deadline.wait(live.done):
                raise self._timed_out(limit)
            if live.known:
                if live.error is not None:
                    raise live.error
                value: R = live.value
                return value
        record = poll_store(self._engine.hub, f"wf:{self._workflow_id}", deadline, self._finished)
        if record is None:
            raise self._timed_out(limit)
        return self._outcome(record)

    def _finished(self) -> WorkflowRecord | None:
        """The workflow's row if it has finished; NonExistentWorkflowError if it is gone."""
        record = self._engine.store.get_workflow(self._workflow_id)
        if record is None:
            raise NonExistentWorkflowError(
                f"workflow {self._workflow_id!r} does not exist", workflow_id=self._workflow_id
            )
        return record if record.status in FINISHED else None

    def _outcome(self, record: WorkflowRecord) -> R:
        wid = self._workflow_id
        ser = self._engine.serializer
        if record.status is StatusType.SUCCESS:
            if record.output is None:
                value: R = None  # type: ignore[assignment]
                return value
            decoded: R = ser.loads(
                record.output, self._output_type, what=f"output of workflow {wid!r}"
            )
            return decoded
        if record.status is StatusType.ERROR:
            raise (
                ser.loads_error(record.error, what=f"error of workflow {wid!r}")
                if record.error
                else WorkflowExecutionError(
                    f"workflow {wid!r} failed without a recorded error", workflow_id=wid
                )
            )
        if record.status is StatusType.CANCELLED:
            raise AwaitedWorkflowCancelledError(
                f"awaited workflow {wid!r} was cancelled", workflow_id=wid
            )
        raise DeadLetterQueueError(
            f"workflow {wid!r} exceeded its maximum recovery attempts "
            f"({record.attempts - 1} recoveries) and was moved to the dead-letter state",
            workflow_id=wid,
        )

    def _timed_out(self, limit: float | None) -> DurakitTimeoutError:
        return DurakitTimeoutError(
            f"workflow {self._workflow_id!r} did not finish within {limit} s",
            workflow_id=self._workflow_id,
        )
