"""durakit's pure core: decisions with no I/O, no clock, no randomness (stdlib + attrs only).

The shell (``durakit.api``) executes what these functions decide, and stores
(``durakit.backends``) persist the results.
"""

from durakit.core.errors import ErrorCode
from durakit.core.replay import EXECUTE, Execute, Replay, decide_step
from durakit.core.retry import RetryPolicy, should_dead_letter
from durakit.core.status import (
    ABSORB,
    FINISHED,
    TERMINAL,
    TRANSITIONS,
    IllegalTransitionError,
    StatusType,
    WorkflowEvent,
    sources,
    target,
    transition,
)

__all__ = [
    "ABSORB",
    "EXECUTE",
    "FINISHED",
    "TERMINAL",
    "TRANSITIONS",
    "ErrorCode",
    "Execute",
    "IllegalTransitionError",
    "Replay",
    "RetryPolicy",
    "StatusType",
    "WorkflowEvent",
    "decide_step",
    "should_dead_letter",
    "sources",
    "target",
    "transition",
]
