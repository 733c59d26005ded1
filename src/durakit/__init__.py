"""durakit: durable workflows for Python.

Ordinary typed Python functions whose every step is checkpointed to a database, so that
after a crash, a deploy or a power cut they resume where they stopped and finish once.
"""

from durakit.api.client import Client
from durakit.api.clock import Clock, SystemClock
from durakit.api.config import Config
from durakit.api.context import Context
from durakit.api.engine import Durakit
from durakit.api.handle import WorkflowHandle
from durakit.api.queues import Queue, RateLimit
from durakit.api.status import StepInfo, WorkflowStatus
from durakit.api.step import Step, step
from durakit.api.workflow import Workflow
from durakit.backends import MemoryStore, SystemStore
from durakit.core.errors import (
    AwaitedWorkflowCancelledError,
    ConflictingIDError,
    ConflictingRegistrationError,
    ConflictingWorkflowError,
    DeadLetterQueueError,
    DurakitError,
    DurakitTimeoutError,
    ErrorCode,
    InitializationError,
    MaxStepRetriesExceededError,
    NonExistentWorkflowError,
    QueueDeduplicatedError,
    SerializationError,
    StepExecutionError,
    StoreUnavailableError,
    UnexpectedStepError,
    WorkflowCancelledError,
    WorkflowExecutionError,
    WorkflowUnexpectedTypeError,
)
from durakit.core.retry import RetryPolicy
from durakit.core.status import StatusType

__all__ = [
    "AwaitedWorkflowCancelledError",
    "Client",
    "Clock",
    "Config",
    "ConflictingIDError",
    "ConflictingRegistrationError",
    "ConflictingWorkflowError",
    "Context",
    "DeadLetterQueueError",
    "Durakit",
    "DurakitError",
    "DurakitTimeoutError",
    "ErrorCode",
    "InitializationError",
    "MaxStepRetriesExceededError",
    "MemoryStore",
    "NonExistentWorkflowError",
    "Queue",
    "QueueDeduplicatedError",
    "RateLimit",
    "RetryPolicy",
    "SerializationError",
    "StatusType",
    "Step",
    "StepExecutionError",
    "StepInfo",
    "StoreUnavailableError",
    "SystemClock",
    "SystemStore",
    "UnexpectedStepError",
    "Workflow",
    "WorkflowCancelledError",
    "WorkflowExecutionError",
    "WorkflowHandle",
    "WorkflowStatus",
    "WorkflowUnexpectedTypeError",
    "step",
]
