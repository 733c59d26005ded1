"""OpenTelemetry spans (``Config(tracing=True)``), read back with the SDK's in-memory
exporter: one span per workflow execution, one child span per step that runs, durakit
attributes, and the starter's trace context stored with the workflow so that a
recovered execution (another engine, another process) continues the same trace."""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import durakit as dk
from durakit.core.records import NewWorkflow
from tests.conftest import StoreFactory
from tests.helpers import WAIT, wait_until
from tests.proc_support import ROOT


@functools.cache
def _exporter() -> InMemorySpanExporter:
    # The global tracer provider can be set once per process: one for the whole run.
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return exporter


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    made = _exporter()
    made.clear()
    yield made
    made.clear()


def traced_app(store: dk.SystemStore, *, version: str = "v1") -> dk.Durakit:
    return dk.Durakit(
        dk.Config(app_name="t", store=store, application_version=version, tracing=True)
    )


def finished(exporter: InMemorySpanExporter, count: int) -> list[ReadableSpan]:
    """The finished spans, once there are ``count`` (an execution's span ends after its
    outcome is published)."""
    wait_until(lambda: len(exporter.get_finished_spans()) >= count)
    return list(exporter.get_finished_spans())


def by_name(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    (span,) = [s for s in spans if s.name == name]
    return span


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.span_id)


def trace_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.trace_id)


def parent_id(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


def attributes(span: ReadableSpan) -> dict[str, object]:
    return dict(span.attributes or {})


def test_an_execution_and_its_steps_are_spans_under_the_callers_span(
    store: dk.SystemStore, exporter: InMemorySpanExporter
) -> None:
    app = traced_app(store)
    tracer = trace.get_tracer("test")

    @app.workflow(name="ship")
    def ship(ctx: dk.Context, order: str) -> str:
        label = ctx.run_step(lambda: f"label-{order}", name="label")
        return ctx.run_step(functools.partial(courier, label), name="post")

    def courier(label: str) -> str:
        # The application's own spans inside a step nest under the step's span.
        with tracer.start_as_current_span("courier call"):
            return label.upper()

    with app, tracer.start_as_current_span("request") as request:
        assert app.run_workflow(ship, "o1", workflow_id="s1").get_result() == "LABEL-O1"
        caller = request.get_span_context()

    spans = finished(exporter, 5)
    workflow = by_name(spans, "workflow ship")
    label, post = by_name(spans, "step label"), by_name(spans, "step post")
    assert {s.context.trace_id for s in spans if s.context} == {caller.trace_id}
    assert parent_id(workflow) == caller.span_id
    assert attributes(workflow) == {
        "durakit.workflow_id": "s1",
        "durakit.workflow_name": "ship",
        "durakit.attempts": 1,
        "durakit.status": "SUCCESS",
    }
    for step_id, step in enumerate((label, post)):
        assert parent_id(step) == span_id(workflow)
        assert attributes(step) == {
            "durakit.workflow_id": "s1",
            "durakit.workflow_name": "ship",
            "durakit.step_id": step_id,
            "durakit.step_name": step.name.removeprefix("step "),
            "durakit.status": "SUCCESS",
            "durakit.attempts": 1,
        }
    assert parent_id(by_name(spans, "courier call")) == span_id(post)
    assert app.get_workflow_status("s1").status is dk.StatusType.SUCCESS


def test_failures_set_error_status_with_the_exception_and_attempts(
    store: dk.SystemStore, exporter: InMemorySpanExporter
) -> None:
    app = traced_app(store)
    tries = [0]

    def flaky() -> int:
        tries[0] += 1
        if tries[0] < 2:
            raise TimeoutError("slow")
        return tries[0]

    @app.workflow(name="fails")
    def fails(ctx: dk.Context) -> None:
        ctx.run_step(flaky, name="flaky", max_retries=3, base_interval=0.001)
        ctx.run_step(lambda: int("x"), name="parse")

    with app, pytest.raises(ValueError, match="invalid literal"):
        app.run_workflow(fails, workflow_id="e1").get_result()

    spans = finished(exporter, 3)
    flaky_span, parse, workflow = (
        by_name(spans, "step flaky"),
        by_name(spans, "step parse"),
        by_name(spans, "workflow fails"),
    )
    assert attributes(flaky_span)["durakit.attempts"] == 2
    assert flaky_span.status.status_code is trace.StatusCode.UNSET
    assert attributes(parse)["durakit.status"] == "ERROR"
    assert parse.status.status_code is trace.StatusCode.ERROR
    assert [e.name for e in parse.events] == ["exception"]
    assert attributes(workflow)["durakit.status"] == "ERROR"
    assert workflow.status.status_code is trace.StatusCode.ERROR
    assert workflow.status.description is not None
    assert workflow.status.description.startswith("ValueError: invalid literal")


def test_a_child_workflows_execution_is_under_its_parents(
    store: dk.SystemStore, exporter: InMemorySpanExporter
) -> None:
    app = traced_app(store)

    @app.workflow(name="child")
    def child(ctx: dk.Context) -> int:
        return ctx.run_step(lambda: 7, name="seven")

    @app.workflow(name="parent")
    def parent(ctx: dk.Context) -> int:
        return ctx.run_workflow(child).get_result() + 1

    with app:  # no caller span: the parent's execution begins a trace
        assert app.run_workflow(parent, workflow_id="p1").get_result() == 8

    spans = finished(exporter, 3)
    parent_span, child_span = by_name(spans, "workflow parent"), by_name(spans, "workflow child")
    assert parent_span.parent is None
    assert parent_id(child_span) == span_id(parent_span)
    assert app.get_workflow_status("p1").status is dk.StatusType.SUCCESS


def test_a_recovered_execution_continues_the_starters_trace(
    store_factory: StoreFactory, exporter: InMemorySpanExporter
) -> None:
    """Engine A starts the workflow inside a span and stops mid-step (its row stays
    PENDING); engine B, on a new store object over the same database, recovers it."""
    gate, entered = threading.Event(), threading.Event()
    calls = [0]

    def register(app: dk.Durakit) -> dk.Workflow[None, str]:
        @app.workflow(name="long")
        def long(ctx: dk.Context) -> str:
            ctx.run_step(lambda: "first", name="first")
            return ctx.run_step(block, name="second")

        return long

    def block() -> str:
        calls[0] += 1
        if calls[0] == 1:  # A's execution: stays inside the step until the end
            entered.set()
            gate.wait(WAIT)
        return "second"

    first = traced_app(store_factory())
    long = register(first)
    tracer = trace.get_tracer("test")
    with first, tracer.start_as_current_span("request") as request:
        first.run_workflow(long, workflow_id="L1")
        assert entered.wait(WAIT)
    caller = request.get_span_context()
    exporter.clear()

    second = traced_app(store_factory())
    register(second)
    try:
        with second:
            assert second.retrieve_workflow("L1").get_result(timeout=WAIT) == "second"
    finally:
        gate.set()  # A's zombie execution: its checkpoint is refused, B owns the workflow

    spans = finished(exporter, 2)
    (recovered,) = [
        s for s in spans if s.name == "workflow long" and attributes(s)["durakit.attempts"] == 2
    ]
    assert trace_id(recovered) == caller.trace_id
    assert parent_id(recovered) == caller.span_id
    assert attributes(recovered)["durakit.attempts"] == 2


def test_the_trace_context_is_stored_and_read_back_by_every_store(
    store: dk.SystemStore, exporter: InMemorySpanExporter
) -> None:
    stored_parent = "00f067aa0ba902b7"
    stored_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    carrier = {"traceparent": f"00-{stored_trace}-{stored_parent}-01"}
    store.insert_workflow(
        NewWorkflow(
            workflow_id="crashed",
            name="resumed",
            status=dk.StatusType.PENDING,
            input=None,
            executor_id="local",
            application_version="v1",
            application_id="t",
            owner="dead-execution",
            created_at=1_700_000_000_000,
            trace_context=json.dumps(carrier),
        )
    )
    record = store.get_workflow("crashed")
    assert record is not None
    assert record.trace_context == json.dumps(carrier)
    app = traced_app(store)

    @app.workflow(name="resumed")
    def resumed(ctx: dk.Context) -> str:
        return "done"

    with app:
        assert app.retrieve_workflow("crashed").get_result(timeout=WAIT) == "done"
    span = by_name(finished(exporter, 1), "workflow resumed")
    assert format(trace_id(span), "032x") == stored_trace
    assert format(parent_id(span) or 0, "016x") == stored_parent


def test_tracing_must_be_a_bool() -> None:
    with pytest.raises(dk.InitializationError, match=r"Config\.tracing must be True or False"):
        dk.Config(app_name="t", tracing="yes")  # type: ignore[arg-type]


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


_WORKFLOW = """
import sys
import durakit as dk
app = dk.Durakit(dk.Config(app_name="t", database_url="memory://"{tracing}))

@app.workflow(name="w")
def w(ctx: dk.Context) -> int:
    return ctx.run_step(lambda: 1, name="one")

with app:
    assert app.run_workflow(w).get_result() == 1
print(sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry"))
"""


def test_nothing_of_opentelemetry_is_imported_without_tracing() -> None:
    done = _run(_WORKFLOW.format(tracing=""))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    # And it is with tracing on (the same program, so the check above means something).
    done = _run(_WORKFLOW.format(tracing=", tracing=True"))
    assert done.returncode == 0, done.stderr
    assert "opentelemetry.trace" in done.stdout


def test_tracing_without_opentelemetry_installed_is_refused_clearly() -> None:
    # ``sys.modules[name] = None`` makes ``import name`` fail as if it were not installed.
    done = _run(
        "import sys\n"
        "sys.modules['opentelemetry'] = None\n" + _WORKFLOW.format(tracing=", tracing=True")
    )
    assert done.returncode != 0
    assert "durakit.core.errors.InitializationError: Config.tracing=True needs " in done.stderr
    assert "pip install 'durakit[otel]'" in done.stderr


def _docs_block(marker: str) -> str:
    text = (ROOT / "docs" / "observability.md").read_text()
    (block,) = [b for b in text.split("```python\n")[1:] if marker in b.split("```")[0]]
    return block.split("```")[0]


def test_the_docs_examples_run() -> None:
    done = _run(_docs_block("ConsoleSpanExporter"))
    assert done.returncode == 0, done.stderr
    assert "charged o-17" in done.stdout
    names = re.findall(r'"name": "([^"]+)"', done.stdout)
    assert sorted(names) == ["POST /orders", "step charge", "step reserve", "workflow checkout"]
    assert len(set(re.findall(r'"trace_id": "(0x[0-9a-f]+)"', done.stdout))) == 1

    logging_example = _docs_block("WorkflowFields") + _WORKFLOW.format(tracing="")
    done = _run(logging_example)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("INFO [")
    assert lines[0].endswith(") started")
