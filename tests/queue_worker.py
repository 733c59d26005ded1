"""A child process of tests/test_queue_processes.py; not a test module itself.

Registers the queue ``shared`` (``--concurrency`` on all processes, ``--worker-concurrency``
per process) and the workflow ``job``: a step that appends ``start <id> <executor> <ns>``
to the side-effect file, a step that holds its slot for ``--hold`` seconds, and a step
that appends ``end <id> <executor> <ns>``; ``--rate-limit L`` (with ``--rate-period``)
adds a rate limit. After ``launch()`` it prints ``launched``; with ``--enqueue N`` it then
enqueues ``job-000`` .. ``job-<N-1>``. It exits 0 once ``--total`` jobs have succeeded
(printing ``done``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import durakit as dk
from tests.worker_support import append_line, worker_app

APP_VERSION = "queue-v1"


def job_id(index: int) -> str:
    return f"job-{index:03d}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", required=True)
    parser.add_argument("--schema", default="durakit")
    parser.add_argument("--effects", required=True, type=Path)
    parser.add_argument("--executor", required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--worker-concurrency", type=int, required=True)
    parser.add_argument("--hold", type=float, default=0.1)
    parser.add_argument("--enqueue", type=int, default=0)
    parser.add_argument("--total", type=int, required=True)
    parser.add_argument("--rate-limit", type=int, default=0, help="starts per --rate-period")
    parser.add_argument("--rate-period", type=float, default=1.0)
    args = parser.parse_args(argv)

    app = worker_app(
        app_name="queue-test",
        db=args.db,
        schema=args.schema,
        version=APP_VERSION,
        executor_id=args.executor,
    )
    app.queue(
        "shared",
        concurrency=args.concurrency,
        worker_concurrency=args.worker_concurrency,
        rate_limit=dk.RateLimit(args.rate_limit, args.rate_period) if args.rate_limit else None,
    )
    effects: Path = args.effects
    me: str = args.executor
    hold: float = args.hold

    @app.workflow(name="job")
    def job(ctx: dk.Context, n: int) -> int:
        wid = ctx.workflow_id
        ctx.run_step(lambda: append_line(effects, f"start {wid} {me} {time.time_ns()}"), name="s")
        ctx.run_step(lambda: time.sleep(hold), name="hold")
        ctx.run_step(lambda: append_line(effects, f"end {wid} {me} {time.time_ns()}"), name="e")
        return n

    with app:
        print("launched", flush=True)
        for i in range(args.enqueue):
            app.run_workflow(job, i, queue="shared", workflow_id=job_id(i))
        while len(app.list_workflows(name="job", status=dk.StatusType.SUCCESS)) < args.total:
            time.sleep(0.1)
        print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
