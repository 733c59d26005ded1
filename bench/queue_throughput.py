"""Workload (c) queue_drain: enqueue and complete N trivial queued workflows.

Workflow: one no-op step (takes int i, returns i). N=2000 workflows.
Queue: worker concurrency 20, no global limit, no rate limit. Enqueues are issued one at
a time from the main thread (one call each, no batching); workflow IDs are generated.
Same parameters and JSON keys as the reference's queue_drain.py:

Phase 1 -- enqueue_only (fresh database): the queue is paused (``app.pause_queue``), so
    this process does not consume it; 10 warm-up enqueues on another queue, then N
    enqueues are timed  ->  enqueue_only_per_s.
Phase 1b -- backlog_drain (same database, a new engine in the same process that
    consumes the queue): the N workflows left ENQUEUED are drained; t0 = just before
    ``resume_queue``, t_end = the first completion poll that sees N rows SUCCESS
    ->  backlog_drain_wf_per_s.
Phase 2 -- drain, the headline number (fresh database, new engine): the queue's runner
    is up and idle; t0 = just before the first enqueue; N enqueues from the main thread
    while the runner drains in the same process; t_end = first poll that sees N SUCCESS.
    drain_wf_per_s = N / (t_end - t0).
Completion polls: plain SQL ``count(*) ... status = 'SUCCESS'`` every 10 ms.

Run: ``python bench/queue_throughput.py [postgresql://.../scratch_db | sqlite:///x.db]``.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import psycopg
from common import CpuMeter, base_args, emit, is_sqlite, make_app, reset_database, sqlite_path

import durakit as dk

N = 2000
WORKER_CONCURRENCY = 20
QUEUE = "drain_q"
WARM = "warm_q"


class CountPoller:
    """Counts the queue's SUCCESS rows with plain SQL, outside durakit."""

    def __init__(self, url: str, queue: str) -> None:
        self.queue = queue
        self.sql = "SELECT count(*) FROM {}workflows WHERE queue_name = ? AND status = 'SUCCESS'"
        if is_sqlite(url):
            self.lite: sqlite3.Connection | None = sqlite3.connect(sqlite_path(url))
            self.pg: psycopg.Connection[Any] | None = None
        else:
            self.lite = None
            self.pg = psycopg.connect(url, autocommit=True)

    def count(self) -> int:
        if self.lite is not None:
            row = self.lite.execute(self.sql.format(""), (self.queue,)).fetchone()
        else:
            assert self.pg is not None
            text = self.sql.format("durakit.").replace("?", "%s")
            row = self.pg.execute(text, (self.queue,)).fetchone()  # type: ignore[call-overload]
        return int(row[0])

    def wait_for(self, target: int, interval_s: float = 0.010, timeout_s: float = 600.0) -> float:
        deadline = time.perf_counter() + timeout_s
        while True:
            count = self.count()
            now = time.perf_counter()
            if count >= target:
                return now
            if now > deadline:
                raise TimeoutError(f"count {count} < {target} after {timeout_s}s")
            time.sleep(interval_s)

    def close(self) -> None:
        if self.lite is not None:
            self.lite.close()
        if self.pg is not None:
            self.pg.close()


def engine(url: str, concurrency: int) -> tuple[dk.Durakit, Any]:
    app = make_app(url)

    def queued_workflow(ctx: dk.Context, i: int) -> int:
        return ctx.run_step(lambda: i, name="noop")

    wf = app.register_workflow(queued_workflow, name="queued_workflow")
    app.queue(QUEUE, worker_concurrency=concurrency)
    app.queue(WARM)
    return app, wf


def enqueue_n(app: dk.Durakit, wf: Any, n: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        app.run_workflow(wf, i, queue=QUEUE)
    return time.perf_counter() - t0


def main() -> None:
    p = base_args(__doc__)
    p.add_argument("--n", type=int, default=N)
    p.add_argument("--concurrency", type=int, default=WORKER_CONCURRENCY)
    args = p.parse_args()
    n, url = args.n, args.db_url
    metrics: dict[str, Any] = {"n": n}

    # Phase 1: enqueue only (the queue paused, so nothing is consumed).
    if not args.no_reset:
        reset_database(url)
    app, wf = engine(url, args.concurrency)
    app.launch()
    app.pause_queue(QUEUE)
    for i in range(10):
        app.run_workflow(wf, -1 - i, queue=WARM).get_result()
    cpu = CpuMeter(url)
    enq_s = enqueue_n(app, wf, n)
    metrics.update(cpu.stop(prefix="enqonly_cpu"))
    if "enqonly_cpu_write_xacts" in metrics:
        metrics["enqonly_write_xacts_per_wf"] = round(metrics["enqonly_cpu_write_xacts"] / n, 2)
    metrics["enqueue_only_s"] = round(enq_s, 4)
    metrics["enqueue_only_per_s"] = round(n / enq_s, 1)
    metrics["enqueue_only_us_per_op"] = round(enq_s * 1e6 / n, 1)
    app.shutdown()

    # Phase 1b: drain that backlog with a new engine.
    app, wf = engine(url, args.concurrency)
    poller = CountPoller(url, QUEUE)
    assert poller.count() == 0
    app.launch()
    cpu = CpuMeter(url)
    t0 = time.perf_counter()
    app.resume_queue(QUEUE)
    t_end = poller.wait_for(n)
    metrics.update(cpu.stop(prefix="backlog_cpu"))
    if "backlog_cpu_write_xacts" in metrics:
        metrics["backlog_write_xacts_per_wf"] = round(metrics["backlog_cpu_write_xacts"] / n, 2)
    poller.close()
    metrics["backlog_drain_s"] = round(t_end - t0, 4)
    metrics["backlog_drain_wf_per_s"] = round(n / (t_end - t0), 1)
    app.shutdown()

    # Phase 2: enqueue and drain at once (the headline).
    if not args.no_reset:
        reset_database(url)
    app, wf = engine(url, args.concurrency)
    app.launch()
    time.sleep(0.5)  # the runner is up and idle
    poller = CountPoller(url, QUEUE)
    cpu = CpuMeter(url)
    t0 = time.perf_counter()
    enq_s2 = enqueue_n(app, wf, n)
    t_end = poller.wait_for(n)
    metrics.update(cpu.stop(prefix="drain_cpu"))
    if "drain_cpu_write_xacts" in metrics:
        metrics["drain_write_xacts_per_wf"] = round(metrics["drain_cpu_write_xacts"] / n, 2)
    drain_s = t_end - t0
    errors = len(app.list_workflows(queue_name=QUEUE, status=[dk.StatusType.ERROR]))
    poller.close()
    app.shutdown()
    metrics["drain_s"] = round(drain_s, 4)
    metrics["drain_wf_per_s"] = round(n / drain_s, 1)
    metrics["drain_enqueue_phase_s"] = round(enq_s2, 4)
    metrics["drain_enqueue_per_s"] = round(n / enq_s2, 1)
    metrics["drain_non_success"] = errors
    emit(
        "queue_drain",
        {
            "n": n,
            "worker_concurrency": args.concurrency,
            "steps_per_workflow": 1,
            "enqueue": "sequential from main thread, one call per workflow",
            "completion_detection": "plain SQL count(SUCCESS) poll every 10 ms",
        },
        metrics,
        url,
    )


if __name__ == "__main__":
    main()
