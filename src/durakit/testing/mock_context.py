"""``MockContext``: a stand-in ``Context`` for unit-testing a workflow body without an engine.

It runs steps inline (with retries, but without waiting), answers ``recv`` and
``get_event`` from scripted values, and records every call, so a test can call a
workflow function directly and assert on what it did::

    ctx = MockContext(messages={"approval": [True]})
    assert checkout(ctx, order) == expected
    assert [c.method for c in ctx.calls] == ["run_step", "recv", "send"]

Step IDs are taken exactly as the real context takes them (``recv`` and ``get_event``
take two each), so ``ctx.step_id`` agrees between unit tests and production.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

import attrs

from durakit.api.execution import (
    DERIVED_STEP_NAME,
    GET_EVENT,
    IN_STEP,
    RECV,
    step_name_of,
)
from durakit.api.handle import seconds
from durakit.api.status import WorkflowStatus
from durakit.api.validation import (
    check_duration,
    check_identifier,
    check_identifiers,
    refuse_unsupported_result,
)
from durakit.api.waiting import CURRENT
from durakit.core.errors import DurakitTimeoutError
from durakit.core.retry import RetryPolicy
from durakit.core.status import StatusType
from durakit.core.steps import GiveUp, StepCursor, after_failure, child_workflow_id

if TYPE_CHECKING:
    from durakit.api.context import Context

R = TypeVar("R")
P = TypeVar("P")
T = TypeVar("T")

Timeout = float | timedelta


@attrs.frozen
class Call:
    """One call a workflow made on a :class:`MockContext`.

    ``args`` holds the method's positional-or-keyword parameters in signature order and
    ``kwargs`` its keyword-only ones, defaults filled in, however the workflow spelled
    the call: ``ctx.recv("t")`` is ``Call("recv", ("t", 60.0), {"type": None})``.
    ``run_workflow`` records the child function and its input as ``args``.
    """

    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = attrs.field(factory=dict)


class MockHandle(Generic[R]):
    """The handle ``MockContext.run_workflow`` returns: the child already ran inline."""

    def __init__(
        self,
        workflow_id: str,
        name: str,
        *,
        value: Any = None,
        error: Exception | None = None,
    ) -> None:
        self._workflow_id = workflow_id
        self._name = name
        self._value = value
        self._error = error
        self._at = datetime.now(UTC)

    @property
    def workflow_id(self) -> str:
        return self._workflow_id

    def __repr__(self) -> str:
        return f"MockHandle({self._workflow_id!r})"

    def get_result(self, timeout: Timeout | None = None) -> R:
        """The child's return value, or its exception raised again."""
        seconds(timeout)
        if self._error is not None:
            raise self._error
        value: R = self._value
        return value

    def get_status(self) -> WorkflowStatus:
        """SUCCESS or ERROR, with the child's output or error."""
        return WorkflowStatus(
            workflow_id=self._workflow_id,
            status=StatusType.ERROR if self._error is not None else StatusType.SUCCESS,
            name=self._name,
            output=self._value,
            error=self._error,
            created_at=self._at,
            updated_at=self._at,
        )


class MockContext:
    """Fits :class:`durakit.Context`: runs steps inline (retrying without waiting),
    answers ``recv`` and ``get_event`` from scripted values, and records every call.

    ``messages`` maps a topic (None: the default topic) to the messages ``recv`` returns,
    oldest first; ``events`` maps ``(workflow_id, key)`` to the value ``get_event``
    returns. When nothing is scripted, ``recv`` and ``get_event`` raise
    DurakitTimeoutError at once, as the real ones would after their timeout. Scripted
    values are returned as given (``type=`` does not convert them).

    After the body ran: ``calls`` lists every call in order, ``events_set`` holds the
    latest value per key this workflow set, and ``children`` maps each child workflow's
    ID to the MockContext it ran with. A child starts with no messages; it shares the
    event board, so a parent's ``get_event`` sees what its children set and vice versa.
    """

    def __init__(
        self,
        workflow_id: str = "mock-workflow",
        messages: Mapping[str | None, Iterable[Any]] | None = None,
        events: Mapping[tuple[str, str], Any] | None = None,
    ) -> None:
        self._workflow_id = workflow_id
        self._messages: dict[str | None, deque[Any]] = {
            topic: deque(queue) for topic, queue in (messages or {}).items()
        }
        self._board: dict[tuple[str, str], Any] = dict(events or {})
        self._steps = StepCursor()
        self.calls: list[Call] = []
        self.events_set: dict[str, Any] = {}
        self.children: dict[str, MockContext] = {}

    def __repr__(self) -> str:
        return f"MockContext({self._workflow_id!r}, {len(self.calls)} calls)"

    # -- identity ---------------------------------------------------------------------
    @property
    def workflow_id(self) -> str:
        return self._workflow_id

    @property
    def step_id(self) -> int:
        """The ID of the last step taken (inside a step body: that step's ID); -1 before any."""
        return self._steps.last

    def _take_step(self) -> int:
        return self._steps.take()

    def _record(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.calls.append(Call(method, args, kwargs))

    # -- steps ------------------------------------------------------------------------
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
        """Call ``fn`` now, retrying up to ``max_retries`` times without waiting.

        Exhausted retries raise MaxStepRetriesExceededError (with every attempt's error)
        when ``max_retries > 0``, else the step's own exception, as the engine does.
        Arguments are checked as the engine checks them."""
        step_name = (
            check_identifier("name", step_name_of(fn), derived=DERIVED_STEP_NAME)
            if name is None
            else check_identifier("name", name)
        )
        base_s = check_duration("base_interval", base_interval)
        max_s = check_duration("max_interval", max_interval)
        self._record(
            "run_step",
            (fn,),
            {
                "name": name,
                "max_retries": max_retries,
                "backoff_factor": backoff_factor,
                "base_interval": base_interval,
                "max_interval": max_interval,
                "output_type": output_type,
            },
        )
        policy = RetryPolicy(
            max_retries=max_retries,
            backoff_factor=backoff_factor,
            base_interval=base_s,
            max_interval=max_s,
        )
        step_id = self._steps.take()
        errors: list[Exception] = []
        while True:
            # Inside a step body, a @dk.step function is a plain call, as in the engine.
            token = IN_STEP.set(True)
            try:
                value = fn()
            except Exception as exc:  # noqa: BLE001 - a step's exception is its outcome
                errors.append(exc)
            else:
                refuse_unsupported_result(value, step_name)
                return value
            finally:
                IN_STEP.reset(token)
            # The engine's rule; the mock retries at once instead of waiting the delay.
            decision = after_failure(
                policy,
                errors,
                workflow_id=self._workflow_id,
                step_name=step_name,
                step_id=step_id,
            )
            if isinstance(decision, GiveUp):
                raise decision.error

    # -- child workflows --------------------------------------------------------------
    @overload
    def run_workflow(
        self,
        fn: Callable[[Context], R],
        /,
        *,
        workflow_id: str | None = None,
        timeout: Timeout | None = None,
        detached: bool = False,
    ) -> MockHandle[R]: ...

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
    ) -> MockHandle[R]: ...

    def run_workflow(
        self,
        fn: Callable[..., R],
        *args: Any,
        workflow_id: str | None = None,
        timeout: Timeout | None = None,
        detached: bool = False,
    ) -> MockHandle[R]:
        """Run the child workflow inline with a MockContext of ID ``workflow_id`` or
        ``f"{parent}-{step_id}"``; its exception surfaces from ``get_result``."""
        child_id = (
            check_identifier(
                "workflow_id",
                child_workflow_id(self._workflow_id, self._steps.last + 1),
                derived=" (derived from the parent's ID)",
            )
            if workflow_id is None
            else check_identifier("workflow_id", workflow_id)
        )
        seconds(timeout)
        self._record(
            "run_workflow",
            (fn, *args),
            {"workflow_id": workflow_id, "timeout": timeout, "detached": detached},
        )
        self._take_step()
        child = MockContext(child_id)
        child._board = self._board
        self.children[child_id] = child
        name = step_name_of(fn)
        # The child's @dk.step calls go to the child's context, not to this one.
        token = CURRENT.set(child)
        try:
            value = fn(child, *args)
        except Exception as exc:  # noqa: BLE001 - the child's error is its outcome
            return MockHandle(child_id, name, error=exc)
        finally:
            CURRENT.reset(token)
        return MockHandle(child_id, name, value=value)

    # -- messages, events, sleep ------------------------------------------------------
    def send(self, destination_id: str, message: object, topic: str | None = None) -> None:
        """Record the send (``calls``); nothing is delivered."""
        check_identifiers(destination_id=destination_id, topic=topic)
        self._record("send", (destination_id, message, topic), {})
        self._take_step()

    @overload
    def recv(self, topic: str | None = None, timeout: Timeout = 60.0) -> Any: ...

    @overload
    def recv(self, topic: str | None = None, timeout: Timeout = 60.0, *, type: type[T]) -> T: ...

    def recv(self, topic: str | None = None, timeout: Timeout = 60.0, *, type: Any = None) -> Any:
        """The oldest scripted message on ``topic``; DurakitTimeoutError when none is left."""
        check_identifiers(topic=topic)
        seconds(timeout)
        self._record("recv", (topic, timeout), {"type": type})
        self._take_step()
        recv_id = self._take_step()
        queue = self._messages.get(topic)
        if not queue:
            raise DurakitTimeoutError(
                f"workflow {self._workflow_id!r}: no message on topic {topic!r} within "
                f"{timeout} (no scripted message left)",
                workflow_id=self._workflow_id,
                step_id=recv_id,
                step_name=RECV,
            )
        return queue.popleft()

    def set_event(self, key: str, value: object) -> None:
        """Store ``value`` in ``events_set[key]`` (and on the board ``get_event`` reads)."""
        check_identifiers(key=key)
        self._record("set_event", (key, value), {})
        self._take_step()
        self.events_set[key] = value
        self._board[(self._workflow_id, key)] = value

    @overload
    def get_event(self, workflow_id: str, key: str, timeout: Timeout = 60.0) -> Any: ...

    @overload
    def get_event(
        self, workflow_id: str, key: str, timeout: Timeout = 60.0, *, type: type[T]
    ) -> T: ...

    def get_event(
        self, workflow_id: str, key: str, timeout: Timeout = 60.0, *, type: Any = None
    ) -> Any:
        """The scripted (or set) value of ``(workflow_id, key)``; else DurakitTimeoutError."""
        check_identifiers(workflow_id=workflow_id, key=key)
        seconds(timeout)
        self._record("get_event", (workflow_id, key, timeout), {"type": type})
        self._take_step()
        get_id = self._take_step()
        try:
            return self._board[(workflow_id, key)]
        except KeyError:
            raise DurakitTimeoutError(
                f"workflow {self._workflow_id!r}: event {key!r} of {workflow_id!r} not set "
                f"in time (no scripted value)",
                workflow_id=self._workflow_id,
                step_id=get_id,
                step_name=GET_EVENT,
            ) from None

    def sleep(self, duration: Timeout) -> timedelta:
        """Return ``duration`` as a timedelta at once."""
        seconds(duration, "duration")
        self._record("sleep", (duration,), {})
        self._take_step()
        return duration if isinstance(duration, timedelta) else timedelta(seconds=duration)
