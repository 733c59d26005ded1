"""Workload (a) seq_workflows.

A workflow with 3 no-op steps (each returns a small int) is called synchronously from
the main thread, one after another.
  * WARMUP=10 workflows first (not measured),
  * then N=300 measured workflows; latency = wall time of one synchronous call
    (``app.run_workflow(wf, i).get_result()``).
Same parameters and JSON keys as the reference's seq_workflows.py.
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

N = 300
WARMUP = 10


@dk.step()
def step_one(x: int) -> int:
    return x + 1


@dk.step()
def step_two(x: int) -> int:
    return x + 2


@dk.step()
def step_three(x: int) -> int:
    return x + 3


def three_step_workflow(ctx: dk.Context, i: int) -> int:
    a = step_one(i)
    b = step_two(a)
    return step_three(b)


def main() -> None:
    p = base_args(__doc__)
    p.add_argument("--n", type=int, default=N)
    args = p.parse_args()
    if not args.no_reset:
        reset_database(args.db_url)

    app = make_app(args.db_url)
    app.register_workflow(three_step_workflow)
    t_launch = time.perf_counter()
    app.launch()
    launch_s = time.perf_counter() - t_launch

    def call(i: int) -> int:
        result: int = app.run_workflow(three_step_workflow, i).get_result()
        return result

    for i in range(WARMUP):
        assert call(-1 - i) == -1 - i + 6

    lat: list[int] = []
    cpu = CpuMeter(args.db_url)
    t0 = time.perf_counter_ns()
    for i in range(args.n):
        s = time.perf_counter_ns()
        r = call(i)
        lat.append(time.perf_counter_ns() - s)
        assert r == i + 6
    total_ns = time.perf_counter_ns() - t0
    cpu_m = cpu.stop()

    app.shutdown()
    metrics: dict[str, Any] = {
        "n": args.n,
        "total_s": round(total_ns / 1e9, 4),
        "workflows_per_s": round(args.n / (total_ns / 1e9), 2),
        **lat_summary(lat, "latency"),
        "launch_s": round(launch_s, 3),
        **cpu_m,
        "write_xacts_per_workflow": per_unit(cpu_m, "cpu_write_xacts", args.n, 2),
        "wal_bytes_per_workflow": per_unit(cpu_m, "cpu_wal_bytes", args.n, 0),
    }
    emit(
        "seq_workflows",
        {
            "n": args.n,
            "warmup": WARMUP,
            "steps_per_workflow": 3,
            "caller": "main thread, synchronous",
        },
        metrics,
        args.db_url,
    )


if __name__ == "__main__":
    main()
