"""``Context``: what a workflow body can do. A ``typing.Protocol``, so a test can hand a
workflow any object that fits it (``durakit.testing.MockContext`` does)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, Protocol, TypeVar, overload

from durakit.api.handle import WorkflowHandle

R = TypeVar("R")
P = TypeVar("P")
T = TypeVar("T")

Timeout = float | timedelta


class Context(Protocol):
    """The durable operations available inside a workflow.

    Every operation takes step IDs in call order (from 0), and is checkpointed: after a
    crash the workflow replays, completed operations return their recorded outcomes, and
    the body continues from the first operation that had not completed.
    """

    @property
    def workflow_id(self) -> str:
        """This workflow's ID."""
        ...

    @property
    def step_id(self) -> int:
        """The ID of the last step taken (inside a step body: that step's ID); -1 before any."""
        ...

    def run_step(
        self,
        fn: Callable[[], R],
        *,
        name: str | None = None,
        max_retries: int = 0,
        backoff_factor: float = 2.0,
        base_interval: float = 0.1,
        max_interval: float = 5.0,
        output_type: type[R] | None = None,
    ) -> R:
        """Run ``fn`` as a checkpointed step (at-least-once), retrying on exceptions.

        ``max_retries=N`` allows 1 + N attempts; the delay before retry n is
        ``base_interval * backoff_factor**(n-1)`` capped at ``max_interval``. Exhausted
        retries raise MaxStepRetriesExceededError carrying each attempt's error. The
        output type is read from ``fn``'s return annotation, or ``output_type``.
        """
        ...

    @overload
    def run_workflow(
        self,
        fn: Callable[[Context], R],
        /,
        *,
        workflow_id: str | None = None,
        timeout: Timeout | None = None,
        detached: bool = False,
    ) -> WorkflowHandle[R]: ...

    @overload
    def run_workflow(
        self,
        fn: Callable[[Context, P], R],
        input: P,
        /,
        *,
        workflow_id: str | None = None,
        timeout: Timeout | None = None,
        detached: bool = False,
    ) -> WorkflowHandle[R]: ...

    def run_workflow(
        self,
        fn: Callable[..., R],
        *args: Any,
        workflow_id: str | None = None,
        timeout: Timeout | None = None,
        detached: bool = False,
    ) -> WorkflowHandle[R]:
        """Start a child workflow (ID ``f"{parent}-{step_id}"`` unless given), recorded as
        a step. A child inherits the parent's deadline and is cancelled with it unless
        ``detached``."""
        ...

    def send(self, destination_id: str, message: object, topic: str | None = None) -> None:
        """Send a message to a workflow (exactly once, even when this workflow replays)."""
        ...

    @overload
    def recv(self, topic: str | None = None, timeout: Timeout = 60.0) -> Any: ...

    @overload
    def recv(self, topic: str | None = None, timeout: Timeout = 60.0, *, type: type[T]) -> T: ...

    def recv(self, topic: str | None = None, timeout: Timeout = 60.0, *, type: Any = None) -> Any:
        """Receive the oldest message on ``topic``; raises DurakitTimeoutError after
        ``timeout`` (a durable timeout: a recovered workflow waits only what is left)."""
        ...

    def set_event(self, key: str, value: object) -> None:
        """Publish ``value`` under ``key`` for this workflow (latest value wins)."""
        ...

    @overload
    def get_event(self, workflow_id: str, key: str, timeout: Timeout = 60.0) -> Any: ...

    @overload
    def get_event(
        self, workflow_id: str, key: str, timeout: Timeout = 60.0, *, type: type[T]
    ) -> T: ...

    def get_event(
        self, workflow_id: str, key: str, timeout: Timeout = 60.0, *, type: Any = None
    ) -> Any:
        """Wait for another workflow's event; raises DurakitTimeoutError after ``timeout``."""
        ...

    def sleep(self, duration: Timeout) -> timedelta:
        """Sleep durably: the wake time is recorded, so a recovered workflow wakes on time."""
        ...
