"""Workload (b) step_overhead.

One workflow runs STEPS=1000 no-op steps sequentially (step i takes int i and returns
it). Called synchronously from the main thread after one warm-up workflow of 10 steps.
  * us_per_step_inner : time measured inside the workflow body, from before step 0 to
                        after step 999, divided by 1000
  * us_per_step_total : wall time of the whole synchronous workflow call
                        (start + 1000 steps + completion) divided by 1000
Same parameters and JSON keys as the reference's step_overhead.py.
"""

from __future__ import annotations

import time
from typing import Any

from common import (
    CpuMeter,
    base_args,
    emit,
    lat_summary,
    make_app,
    per_unit,
    reset_database,
)

import durakit as dk

STEPS = 1000
WARMUP_STEPS = 10

_step_ns: list[int] = []


@dk.step()
def noop_step(i: int) -> int:
    return i


def many_steps_workflow(ctx: dk.Context, n: int) -> int:
    t0 = time.perf_counter_ns()
    last = time.perf_counter_ns()
    for i in range(n):
        assert noop_step(i) == i
        now = time.perf_counter_ns()
        _step_ns.append(now - last)
        last = now
    return time.perf_counter_ns() - t0


def main() -> None:
    p = base_args(__doc__)
    p.add_argument("--steps", type=int, default=STEPS)
    args = p.parse_args()
    if not args.no_reset:
        reset_database(args.db_url)

    app = make_app(args.db_url)
    app.register_workflow(many_steps_workflow)
    app.launch()

    app.run_workflow(many_steps_workflow, WARMUP_STEPS).get_result()
    _step_ns.clear()

    cpu = CpuMeter(args.db_url)
    t0 = time.perf_counter_ns()
    inner_ns: int = app.run_workflow(many_steps_workflow, args.steps).get_result()
    total_ns = time.perf_counter_ns() - t0
    cpu_m = cpu.stop()
    app.shutdown()

    metrics: dict[str, Any] = {
        "steps": args.steps,
        "workflow_total_ms": round(total_ns / 1e6, 3),
        "us_per_step_inner": round(inner_ns / 1e3 / args.steps, 2),
        "us_per_step_total": round(total_ns / 1e3 / args.steps, 2),
        "steps_per_s_inner": round(args.steps / (inner_ns / 1e9), 1),
        **lat_summary(_step_ns, "step", unit="us"),
        **cpu_m,
        "write_xacts_per_step": per_unit(cpu_m, "cpu_write_xacts", args.steps, 3),
        "wal_bytes_per_step": per_unit(cpu_m, "cpu_wal_bytes", args.steps, 0),
    }
    emit(
        "step_overhead",
        {
            "steps": args.steps,
            "warmup_workflow_steps": WARMUP_STEPS,
            "caller": "main thread, synchronous",
        },
        metrics,
        args.db_url,
    )


if __name__ == "__main__":
    main()
