"""The error tree (pure: no I/O), and the control-flow signals.

Every error a user can catch derives from :class:`DurakitError` and carries an
:class:`ErrorCode`, so both ``except dk.QueueDeduplicatedError`` and
``err.code is dk.ErrorCode.QUEUE_DEDUPLICATED`` work. Control-flow signals
(:class:`WorkflowInterrupted`) derive from ``BaseException`` on purpose: a user's
``except Exception`` inside a workflow must not swallow a cancellation.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence


class ErrorCode(enum.Enum):
    """DBOS Transact's error codes, in its order, then durakit's additions."""

    CONFLICTING_ID = 1
    INITIALIZATION = 2
    NON_EXISTENT_WORKFLOW = 3
    CONFLICTING_WORKFLOW = 4
    WORKFLOW_CANCELLED = 5
    UNEXPECTED_STEP = 6
    AWAITED_WORKFLOW_CANCELLED = 7
    CONFLICTING_REGISTRATION = 8
    WORKFLOW_UNEXPECTED_TYPE = 9
    WORKFLOW_EXECUTION = 10
    STEP_EXECUTION = 11
    DEAD_LETTER_QUEUE = 12
    MAX_STEP_RETRIES_EXCEEDED = 13
    QUEUE_DEDUPLICATED = 14
    TIMEOUT = 15
    SERIALIZATION = 16
    STORE_UNAVAILABLE = 17


class DurakitError(Exception):
    """Base of every durakit error; ``code`` says which one, the fields say where."""

    code: ErrorCode = ErrorCode.WORKFLOW_EXECUTION

    def __init__(
        self,
        message: str,
        *,
        workflow_id: str | None = None,
        destination_id: str | None = None,
        step_name: str | None = None,
        queue_name: str | None = None,
        deduplication_id: str | None = None,
        step_id: int | None = None,
        expected_name: str | None = None,
        recorded_name: str | None = None,
        max_retries: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.workflow_id = workflow_id
        self.destination_id = destination_id
        self.step_name = step_name
        self.queue_name = queue_name
        self.deduplication_id = deduplication_id
        self.step_id = step_id
        self.expected_name = expected_name
        self.recorded_name = recorded_name
        self.max_retries = max_retries

    def __reduce__(self) -> tuple[object, ...]:  # pragma: no cover - copy/pickle support
        # The state (third item) carries subclass attributes too (``errors``, ``error_type``).
        return (_rebuild, (type(self), self.message, self.fields()), self.__dict__)

    def fields(self) -> dict[str, str | int | None]:
        """The context fields that are set, for logs and for the stored error record."""
        return {n: getattr(self, n) for n in FIELD_NAMES if getattr(self, n) is not None}


FIELD_NAMES = (
    "workflow_id",
    "destination_id",
    "step_name",
    "queue_name",
    "deduplication_id",
    "step_id",
    "expected_name",
    "recorded_name",
    "max_retries",
)
"""The context fields of every DurakitError, in the order of its constructor."""


def _rebuild(
    cls: type[DurakitError], message: str, fields: dict[str, str | int | None]
) -> DurakitError:  # pragma: no cover - used by __reduce__ only
    err = cls.__new__(cls)
    DurakitError.__init__(err, message, **fields)  # type: ignore[arg-type]
    return err


class ConflictingIDError(DurakitError):
    """An ID that must be new is taken: ``fork_workflow(forked_workflow_id=...)``."""

    code = ErrorCode.CONFLICTING_ID


class InitializationError(DurakitError):
    code = ErrorCode.INITIALIZATION


class NonExistentWorkflowError(DurakitError):
    code = ErrorCode.NON_EXISTENT_WORKFLOW


class ConflictingWorkflowError(DurakitError):
    code = ErrorCode.CONFLICTING_WORKFLOW


class WorkflowCancelledError(DurakitError):
    """Reserved: not raised by this version. A cancelled workflow's body is stopped by a
    signal it cannot catch, and its callers get AwaitedWorkflowCancelledError."""

    code = ErrorCode.WORKFLOW_CANCELLED


class UnexpectedStepError(DurakitError):
    code = ErrorCode.UNEXPECTED_STEP


class AwaitedWorkflowCancelledError(DurakitError):
    code = ErrorCode.AWAITED_WORKFLOW_CANCELLED


class ConflictingRegistrationError(DurakitError):
    code = ErrorCode.CONFLICTING_REGISTRATION


class WorkflowUnexpectedTypeError(DurakitError):
    """``retrieve_workflow(id, output_type)`` asked for another output type than the
    registered workflow declares."""

    code = ErrorCode.WORKFLOW_UNEXPECTED_TYPE


class WorkflowExecutionError(DurakitError):
    """A workflow failed; raised when its recorded error cannot be rebuilt as its own type.

    ``error_type`` names the original class (``module.QualName``) and ``attributes``
    holds the JSON part of its attributes.
    """

    code = ErrorCode.WORKFLOW_EXECUTION

    def __init__(
        self,
        message: str,
        *,
        error_type: str | None = None,
        attributes: Mapping[str, object] | None = None,
        **fields: object,
    ) -> None:
        super().__init__(message, **fields)  # type: ignore[arg-type]
        self.error_type = error_type
        self.attributes: dict[str, object] = dict(attributes or {})


class StepExecutionError(DurakitError):
    """Reserved: not raised by this version. A failed step raises its own exception
    (MaxStepRetriesExceededError once retries are exhausted)."""

    code = ErrorCode.STEP_EXECUTION


class DeadLetterQueueError(DurakitError):
    code = ErrorCode.DEAD_LETTER_QUEUE


class MaxStepRetriesExceededError(DurakitError):
    """Every attempt of a step failed; ``errors`` holds each attempt's exception in order."""

    code = ErrorCode.MAX_STEP_RETRIES_EXCEEDED

    def __init__(
        self, message: str, *, errors: Sequence[BaseException] = (), **fields: object
    ) -> None:
        super().__init__(message, **fields)  # type: ignore[arg-type]
        self.errors = list(errors)


class QueueDeduplicatedError(DurakitError):
    code = ErrorCode.QUEUE_DEDUPLICATED


class DurakitTimeoutError(DurakitError, TimeoutError):
    """A durable wait (recv, get_event, get_result) ran out of time."""

    code = ErrorCode.TIMEOUT


class SerializationError(DurakitError, TypeError):
    """A value could not be turned into durakit's JSON format, or back."""

    code = ErrorCode.SERIALIZATION


class StoreUnavailableError(DurakitError):
    """The database could not be reached (or stayed locked) within the store's retry budget.

    Inside a workflow this never reaches user code: the engine turns it into an
    interruption, and the workflow stays PENDING to be recovered.
    """

    code = ErrorCode.STORE_UNAVAILABLE


ERROR_CLASSES: dict[ErrorCode, type[DurakitError]] = {
    cls.code: cls
    for cls in (
        ConflictingIDError,
        InitializationError,
        NonExistentWorkflowError,
        ConflictingWorkflowError,
        WorkflowCancelledError,
        UnexpectedStepError,
        AwaitedWorkflowCancelledError,
        ConflictingRegistrationError,
        WorkflowUnexpectedTypeError,
        WorkflowExecutionError,
        StepExecutionError,
        DeadLetterQueueError,
        MaxStepRetriesExceededError,
        QueueDeduplicatedError,
        DurakitTimeoutError,
        SerializationError,
        StoreUnavailableError,
    )
}


class WorkflowInterrupted(BaseException):
    """Stops a workflow body from inside: it was cancelled, or this execution lost ownership.

    A ``BaseException`` so that user code's ``except Exception`` cannot swallow it.
    """

    def __init__(self, workflow_id: str, reason: str) -> None:
        super().__init__(f"workflow {workflow_id!r} interrupted: {reason}")
        self.workflow_id = workflow_id
        self.reason = reason


class WorkflowCancelledSignal(WorkflowInterrupted):
    """The workflow was cancelled (or its deadline passed) while this execution ran."""

    def __init__(self, workflow_id: str) -> None:
        super().__init__(workflow_id, "cancelled")


class OwnershipLostSignal(WorkflowInterrupted):
    """Another execution took the workflow over; this one must stop writing."""

    def __init__(self, workflow_id: str) -> None:
        super().__init__(workflow_id, "another execution owns it now")


class StoreUnavailableSignal(WorkflowInterrupted):
    """The store stayed unreachable past its retry budget: stop without an outcome."""

    def __init__(self, workflow_id: str) -> None:
        super().__init__(workflow_id, "the store is unavailable")
