"""The child process of the cross-process tracing test (tests/test_tracing_processes.py);
not a test module itself.

``--mode start``: starts workflow ``T1`` inside a span "request", prints
``caller <trace_id> <span_id>`` (hex), then ``in-step`` from inside the workflow's
second step, where it stays until the parent kills it with SIGKILL.

``--mode recover``: launches (which recovers ``T1``), waits for its result, and prints
each finished span as ``span <json>``, then ``finished``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import durakit as dk


def say(line: str) -> None:
    print(line, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", required=True)
    parser.add_argument("--schema", default="durakit")
    parser.add_argument("--mode", choices=["start", "recover"], required=True)
    args = parser.parse_args(argv)
    starting = args.mode == "start"

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)

    app = dk.Durakit(
        dk.Config(
            app_name="trace-test",
            database_url=args.db,
            database_schema=args.schema,
            application_version="trace-v1",
            executor_id="local",
            tracing=True,
        )
    )

    def second() -> str:
        if starting:
            say("in-step")
            time.sleep(600)  # until SIGKILL
        return "done"

    @app.workflow(name="traced")
    def traced(ctx: dk.Context) -> str:
        ctx.run_step(lambda: "first", name="first")
        return ctx.run_step(second, name="second")

    with app:
        if starting:
            with trace.get_tracer("worker").start_as_current_span("request") as request:
                caller = request.get_span_context()
                say(f"caller {caller.trace_id:032x} {caller.span_id:016x}")
                app.run_workflow(traced, workflow_id="T1")
            time.sleep(600)  # the step says "in-step"; the parent kills us
            return 1
        result = app.retrieve_workflow("T1").get_result(timeout=60)
        assert result == "done", result
    for span in exporter.get_finished_spans():
        ctx = span.context
        assert ctx is not None
        say(
            "span "
            + json.dumps(
                {
                    "name": span.name,
                    "trace_id": f"{ctx.trace_id:032x}",
                    "parent_id": None if span.parent is None else f"{span.parent.span_id:016x}",
                    "span_id": f"{ctx.span_id:016x}",
                    "attributes": dict(span.attributes or {}),
                }
            )
        )
    say("finished")
    return 0


if __name__ == "__main__":
    sys.exit(main())
