"""What the engine tells operators: log records at each lifecycle event, and spans.

The engine's code calls in here through three decorators (``observe_execution`` on the
body runner, ``observe_finish`` on the outcome writer, ``observe_step`` on
``run_step``) and a few ``Observer`` methods, so that the execution code stays about
executing. Every record goes to the engine's logger (``Config.logger``, default
``"durakit"``) and carries ``workflow_id`` and ``workflow_name`` (and, for steps,
``step_id`` and ``step_name``) as ``extra`` fields:

- INFO: a workflow started, finished (SUCCESS or CANCELLED), or was recovered;
- WARNING: a workflow failed (ERROR, with its traceback), was dead-lettered, or is
  stranded (PENDING, but not registered on this engine); ERROR: one stopped without an
  outcome (a bug). (Work of other application versions is reported at launch, by
  ``Recovery.warn_about_other_versions``.)
- DEBUG: each step that ran (replayed steps did not run and say nothing).

Tracing (``Config(tracing=True)``) lives in ``durakit.api.tracing``, the only module that
imports OpenTelemetry; it is imported only when tracing is on.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, TypeVar, cast

from durakit.api.errors_codec import safe_repr
from durakit.core.errors import InitializationError, WorkflowCancelledSignal
from durakit.core.records import WorkflowRecord
from durakit.core.status import StatusType

if TYPE_CHECKING:
    from durakit.api.execution import WorkflowContext
    from durakit.api.handle import Outcome
    from durakit.api.running import Runner
    from durakit.api.tracing import Tracer

RunnerT = TypeVar("RunnerT", bound="Runner")


def _fields(workflow_id: str, name: str, **more: object) -> dict[str, object]:
    return {"workflow_id": workflow_id, "workflow_name": name, **more}


class Observer:
    """One per engine: its logger and, when tracing is on, its tracer."""

    def __init__(self, log: logging.Logger, *, tracing: bool) -> None:
        self.log = log
        self.tracer: Tracer | None = _load_tracer() if tracing else None

    # -- starting ----------------------------------------------------------------
    def trace_context(self) -> str | None:
        """The caller's trace context, to store with a workflow it starts."""
        return None if self.tracer is None else self.tracer.capture()

    # -- recovery -----------------------------------------------------------------
    def recovered(self, record: WorkflowRecord) -> None:
        self.log.info(
            "workflow %s (%s) recovered: execution %d",
            record.workflow_id,
            record.name,
            record.attempts,
            extra=_fields(record.workflow_id, record.name, attempts=record.attempts),
        )

    def dead_lettered(self, record: WorkflowRecord) -> None:
        recoveries = record.attempts - 1
        self.log.warning(
            "workflow %s (%s) dead-lettered after %d recoveries: it is now "
            "MAX_RECOVERY_ATTEMPTS_EXCEEDED and runs again only if resumed",
            record.workflow_id,
            record.name,
            recoveries,
            extra=_fields(record.workflow_id, record.name, attempts=record.attempts),
        )

    def not_registered(self, record: WorkflowRecord) -> None:
        self.log.warning(
            "workflow %s is stranded: PENDING, but workflow %r is not registered on this "
            "engine, so it cannot be recovered here",
            record.workflow_id,
            record.name,
            extra=_fields(record.workflow_id, record.name),
        )

    # -- executions ----------------------------------------------------------------
    def started(self, record: WorkflowRecord) -> None:
        """A start call created the workflow's row (a second start of the same ID, which
        finds the row, says nothing)."""
        self.log.info(
            "workflow %s (%s) started",
            record.workflow_id,
            record.name,
            extra=_fields(record.workflow_id, record.name),
        )

    def enqueued(self, record: WorkflowRecord) -> None:
        self.log.info(
            "workflow %s (%s) enqueued on queue %r",
            record.workflow_id,
            record.name,
            record.queue_name,
            extra=_fields(record.workflow_id, record.name, queue_name=record.queue_name),
        )

    @contextmanager
    def execution(self, record: WorkflowRecord) -> Iterator[None]:
        """Around one execution of a workflow body (after it got its slot)."""
        span = nullcontext() if self.tracer is None else self.tracer.execution(record)
        with span:
            try:
                yield
            except WorkflowCancelledSignal:
                self.log.info(
                    "workflow %s (%s) finished: CANCELLED",
                    record.workflow_id,
                    record.name,
                    extra=_fields(
                        record.workflow_id, record.name, status=StatusType.CANCELLED.value
                    ),
                )
                if self.tracer is not None:
                    self.tracer.set_status(StatusType.CANCELLED.value)
                raise

    def stopped_without_outcome(self, ctx: WorkflowContext) -> None:
        """Called in an ``except`` block: the record carries the exception."""
        self.log.exception(
            "workflow %s (%s) stopped without an outcome; it stays PENDING for recovery",
            ctx.workflow_id,
            ctx.defn.name,
            extra=_fields(ctx.workflow_id, ctx.defn.name),
        )

    def finished(
        self, ctx: WorkflowContext, status: StatusType, value: Any, outcome: Outcome
    ) -> None:
        """After the outcome was written: ``outcome.known`` says it was (not cancelled
        or taken over meanwhile). ``value`` is the live exception for an ERROR."""
        if not outcome.known:
            return
        wid, name = ctx.workflow_id, ctx.defn.name
        fields = _fields(wid, name, status=status.value)
        if self.tracer is not None:
            self.tracer.set_status(status.value, value if status is StatusType.ERROR else None)
        if status is StatusType.ERROR:
            self.log.warning(
                "workflow %s (%s) failed: %s",
                wid,
                name,
                safe_repr(value),
                exc_info=value if isinstance(value, BaseException) else None,
                extra=fields,
            )
        else:
            self.log.info("workflow %s (%s) finished: %s", wid, name, status.value, extra=fields)

    # -- steps -----------------------------------------------------------------------
    @property
    def watches_steps(self) -> bool:
        return self.tracer is not None or self.log.isEnabledFor(logging.DEBUG)

    @contextmanager
    def step(self, ctx: WorkflowContext, step_name: str, calls: _Counted) -> Iterator[None]:
        """Around one step that runs (not a replayed one), entered at its first call:
        a span (current while the step runs) and one DEBUG record."""
        wid, name, step_id = ctx.workflow_id, ctx.defn.name, ctx.step_id
        fields = _fields(wid, name, step_id=step_id, step_name=step_name)
        span = (
            nullcontext()
            if self.tracer is None
            else self.tracer.step(wid, name, step_id, step_name, calls)
        )
        with span:
            try:
                yield
            except Exception as exc:
                self.log.debug(
                    "step %d (%s) of workflow %s failed after %d attempt(s): %s",
                    step_id,
                    step_name,
                    wid,
                    calls.count,
                    safe_repr(exc),
                    extra={**fields, "attempts": calls.count},
                )
                raise
            self.log.debug(
                "step %d (%s) of workflow %s succeeded after %d attempt(s)",
                step_id,
                step_name,
                wid,
                calls.count,
                extra={**fields, "attempts": calls.count},
            )


class _Counted:
    """A step function that counts its calls (the step's attempts) and calls
    ``on_first`` before the first. ``func`` is what ``step_name_of`` and
    ``declared_return_type`` read (they unwrap one ``func``, as of a
    ``functools.partial``), so the step's derived name and output type are unchanged."""

    def __init__(self, fn: Callable[[], Any], on_first: Callable[[], object]) -> None:
        self._fn = fn
        self._on_first = on_first
        self.func = getattr(fn, "func", fn)
        self.count = 0

    def __call__(self) -> Any:
        if self.count == 0:
            self._on_first()
        self.count += 1
        return self._fn()


def _load_tracer() -> Tracer:
    try:
        from durakit.api.tracing import Tracer  # noqa: PLC0415 - only when tracing is on
    except ImportError as exc:
        raise InitializationError(
            "Config.tracing=True needs OpenTelemetry, which is not installed: "
            f"pip install 'durakit[otel]' ({exc})"
        ) from exc
    return Tracer()


# -- the hooks ---------------------------------------------------------------------------
RunStep = TypeVar("RunStep", bound=Callable[..., Any])
RunBody = Callable[[RunnerT, "WorkflowContext", WorkflowRecord, "Outcome"], None]


def observe_execution(run_body: RunBody[RunnerT]) -> RunBody[RunnerT]:
    """Decorates ``Runner._run_body``: spans the execution, logs a cancellation."""

    @functools.wraps(run_body)
    def observed(
        runner: RunnerT, ctx: WorkflowContext, record: WorkflowRecord, outcome: Outcome
    ) -> None:
        with runner.observer.execution(record):
            run_body(runner, ctx, record, outcome)

    return observed


Finish = Callable[[RunnerT, "WorkflowContext", StatusType, "str | None", Any, "Outcome"], None]


def observe_finish(finish: Finish[RunnerT]) -> Finish[RunnerT]:
    """Decorates ``Runner._finish``: logs the recorded outcome (failures at WARNING)."""

    @functools.wraps(finish)
    def observed(  # noqa: PLR0917 - the signature of Runner._finish
        runner: RunnerT,
        ctx: WorkflowContext,
        status: StatusType,
        output: str | None,
        value: Any,
        outcome: Outcome,
    ) -> None:
        finish(runner, ctx, status, output, value, outcome)
        runner.observer.finished(ctx, status, value, outcome)

    return observed


def observe_step(run_step: RunStep) -> RunStep:
    """Decorates ``WorkflowContext.run_step``: a DEBUG record and a span for each step
    that runs. A replayed step, or a call refused before it took a step, never calls
    the function, and is not reported."""

    @functools.wraps(run_step)
    def observed(ctx: WorkflowContext, fn: Callable[[], Any], *args: Any, **kwargs: Any) -> Any:
        observer: Observer = ctx._engine.observer
        if not observer.watches_steps:
            return run_step(ctx, fn, *args, **kwargs)
        with ExitStack() as stack:
            # Entered at the first call, so that the step has been taken (and its ID is
            # ctx.step_id); left when run_step returns or raises, after the checkpoint.
            def begin() -> None:
                name = kwargs.get("name")
                step_name = name if isinstance(name, str) else _step_name_of(fn)
                stack.enter_context(observer.step(ctx, step_name, calls))

            calls = _Counted(fn, begin)
            return run_step(ctx, calls, *args, **kwargs)

    return cast("RunStep", observed)


def _step_name_of(fn: Callable[..., object]) -> str:
    # execution.py imports this module: its helper is looked up when first needed.
    from durakit.api.execution import step_name_of  # noqa: PLC0415

    return step_name_of(fn)
