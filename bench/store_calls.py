"""Diagnostic: the cost of each store call of a 3-step workflow, beside the floor.

usage: python bench/store_calls.py URL [--n 400]

Calls the store directly (no engine, no threads), in the order a 3-step workflow makes
them: insert_workflow, record_step x 3, finish_workflow; interleaved, in every
iteration, with one floor commit (Postgres: BEGIN; INSERT; COMMIT on plain psycopg, as
pg_floor.py; SQLite: the same on plain sqlite3, WAL, synchronous=FULL), a Python thread
start + hand-off (what the engine does per workflow), and a read of a missing workflow
(one round trip that commits nothing). Prints one JSON line with the median and mean
of each, in microseconds, after 20 un-timed iterations. The database is reset first.
"""

from __future__ import annotations

import sqlite3
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from common import base_args, emit, is_sqlite, reset_database, sqlite_path

from durakit.backends.urls import open_store
from durakit.core.records import Fence, NewWorkflow, StepRecord
from durakit.core.status import StatusType, WorkflowEvent
from durakit.core.transitions import plan_finish

N = 400
WARMUP = 20
PAYLOAD = '{"result":1}'


def main() -> None:
    p = base_args(__doc__)
    p.add_argument("--n", type=int, default=N)
    args = p.parse_args()
    if not args.no_reset:
        reset_database(args.db_url)
    store = open_store(args.db_url, "durakit")
    store.migrate()

    floor_commit: Callable[[int], None]
    if is_sqlite(args.db_url):
        sq = sqlite3.connect(sqlite_path(args.db_url), isolation_level=None)
        sq.execute("PRAGMA synchronous = FULL")
        sq.execute("CREATE TABLE floor_t (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)")

        def floor_commit(i: int) -> None:
            sq.execute("BEGIN IMMEDIATE")
            sq.execute("INSERT INTO floor_t (id, payload) VALUES (?, ?)", (i, PAYLOAD))
            sq.execute("COMMIT")
    else:
        pg = psycopg.connect(args.db_url)
        pg.execute("CREATE TABLE floor_t (id bigint PRIMARY KEY, payload text NOT NULL)")
        pg.commit()

        def floor_commit(i: int) -> None:
            pg.execute("INSERT INTO floor_t (id, payload) VALUES (%s, %s)", (i, PAYLOAD))
            pg.commit()

    names = ["floor", "insert_workflow", "record_step", "finish_workflow", "thread", "read"]
    times: dict[str, list[int]] = {k: [] for k in names}

    def timed(key: str, fn: Callable[[], object], keep: bool) -> None:
        s = time.perf_counter_ns()
        fn()
        if keep:
            times[key].append(time.perf_counter_ns() - s)

    def thread_handoff() -> None:
        done = threading.Event()
        threading.Thread(target=done.set, daemon=True).start()
        done.wait()

    for i in range(WARMUP + args.n):
        keep = i >= WARMUP
        wid, owner = str(uuid.uuid4()), uuid.uuid4().hex
        new = NewWorkflow(
            workflow_id=wid,
            name="three_step_workflow",
            status=StatusType.PENDING,
            input='{"v":1,"d":1}',
            executor_id="local",
            application_version="bench-v1",
            application_id="bench",
            owner=owner,
            created_at=int(time.time() * 1000),
        )
        fence = Fence(workflow_id=wid, owner=owner)
        timed("floor", lambda i=i: floor_commit(i), keep)  # type: ignore[misc]
        timed("insert_workflow", lambda new=new: store.insert_workflow(new), keep)  # type: ignore[misc]
        for step_id in range(3):
            step = StepRecord(
                step_id=step_id,
                name="step_one",
                output='{"v":1,"d":2}',
                started_at=int(time.time() * 1000),
                completed_at=int(time.time() * 1000),
            )
            timed("record_step", lambda s=step, f=fence: store.record_step(f, s), keep)  # type: ignore[misc]
        timed(
            "finish_workflow",
            lambda f=fence: store.finish_workflow(  # type: ignore[misc]
                f,
                plan_finish(
                    WorkflowEvent.COMPLETE,
                    owner=f.owner,
                    output='{"v":1,"d":7}',
                    error=None,
                    now_ms=int(time.time() * 1000),
                ),
            ),
            keep,
        )
        timed("thread", thread_handoff, keep)
        timed("read", lambda: store.get_workflow("no-such-workflow"), keep)
    store.close()

    metrics: dict[str, Any] = {"n": args.n}
    for k, v in times.items():
        metrics[f"{k}_median_us"] = round(statistics.median(v) / 1e3, 1)
        metrics[f"{k}_mean_us"] = round(statistics.fmean(v) / 1e3, 1)
    floor = metrics["floor_median_us"]
    for k in names[1:4]:
        metrics[f"{k}_x_floor"] = round(metrics[f"{k}_median_us"] / floor, 2)
    emit("store_calls", {"n": args.n, "warmup": WARMUP}, metrics, args.db_url)


if __name__ == "__main__":
    main()
