"""OpenTelemetry spans for workflow executions and steps (``Config(tracing=True)``).

The only module of durakit that imports ``opentelemetry``; ``durakit.api.observability``
imports it only when an engine has tracing on. Spans go to the global tracer provider
(``opentelemetry.trace.set_tracer_provider``), and the trace context travels through the
global propagator (W3C ``traceparent`` by default), as an application configures them.

A workflow's start stores the caller's trace context with the workflow (its
``trace_context`` column, the propagator's fields as JSON). Every execution of the
workflow -- the first, and each recovery, in whatever process -- is a span whose parent
is that stored context, so all of them belong to the caller's trace. A workflow started
outside any span stores nothing, and each of its executions begins a trace of its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace

from durakit.core.records import WorkflowRecord
from durakit.core.status import StatusType


class _Attempts(Protocol):
    count: int


class Tracer:
    """Makes durakit's spans on the global tracer provider."""

    def __init__(self) -> None:
        self._tracer = trace.get_tracer("durakit")

    def capture(self) -> str | None:
        """The current trace context as stored text, or None outside any span."""
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        return json.dumps(carrier, sort_keys=True) if carrier else None

    @contextmanager
    def execution(self, record: WorkflowRecord) -> Iterator[None]:
        """One execution of a workflow: a span under the stored trace context, current
        while the body runs (so steps, child workflows and the application's own spans
        nest under it)."""
        parent = (
            propagate.extract(json.loads(record.trace_context))
            if record.trace_context
            # Not the thread's ambient context: the stored one is the workflow's parent.
            else otel_context.Context()
        )
        with self._tracer.start_as_current_span(
            f"workflow {record.name}",
            context=parent,
            attributes={
                "durakit.workflow_id": record.workflow_id,
                "durakit.workflow_name": record.name,
                "durakit.attempts": record.attempts,
            },
            record_exception=False,
            set_status_on_exception=False,
        ):
            yield

    @staticmethod
    def set_status(status: str, error: BaseException | None = None) -> None:
        """The outcome of the current execution's span (``durakit.status``)."""
        span = trace.get_current_span()
        span.set_attribute("durakit.status", status)
        if error is not None:
            span.record_exception(error)
            span.set_status(trace.StatusCode.ERROR, f"{type(error).__qualname__}: {error}")

    @contextmanager
    def step(
        self,
        workflow_id: str,
        workflow_name: str,
        step_id: int,
        step_name: str,
        attempts: _Attempts,
    ) -> Iterator[None]:
        """One step that runs: a child of the execution's span, current while the step
        function runs, with its outcome and number of attempts."""
        with self._tracer.start_as_current_span(
            f"step {step_name}",
            attributes={
                "durakit.workflow_id": workflow_id,
                "durakit.workflow_name": workflow_name,
                "durakit.step_id": step_id,
                "durakit.step_name": step_name,
            },
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield
            except Exception as exc:
                span.record_exception(exc)
                span.set_status(trace.StatusCode.ERROR, f"{type(exc).__qualname__}: {exc}")
                span.set_attribute("durakit.status", StatusType.ERROR.value)
                raise
            except BaseException:
                # Interrupted (cancelled, shut down, taken over): no outcome recorded.
                span.set_attribute("durakit.status", "INTERRUPTED")
                raise
            else:
                span.set_attribute("durakit.status", StatusType.SUCCESS.value)
            finally:
                span.set_attribute("durakit.attempts", attempts.count)
