"""The child process of tests/test_pg_restart.py; not a test module itself.

One engine runs ``--workflows`` workflows of ``--steps`` steps on a Postgres schema while
the parent restarts the server under it. ``--first-wave`` of them are started at once;
the rest one at a time, ``--trickle-seconds`` apart, so that some starts meet a server
that is going down or coming back. A durakit ``Client`` on the same schema (its own pool
and LISTEN connection) awaits every result from the store, as another process would.

Step ``n`` of workflow ``w`` appends ``"<w> <n> <pid> <nonce>"`` to the side-effect file
(one fsync'd ``write`` on an ``O_APPEND`` descriptor) partway through its jittered work,
and returns ``"<n>/<nonce>"``; the nonce is unique per execution of the step, so the
recorded output names the execution that was checkpointed.

Prints ``launched``, then ``started`` once the first wave is started, then one line
``summary <json>`` with the results (engine and client), how long calls stalled, how long
the client took to see outcomes it was waiting for, and what durakit logged; exits 0.
Every durakit log record also goes to stderr.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import random
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import durakit as dk
from tests.worker_support import append_line, worker_app

APP_NAME = "pg-restart"
APP_VERSION = "pg-restart-v1"
WORKFLOW_NAME = "chain"
OBSERVER_THREADS = 8
RESULT_TIMEOUT_S = 50.0  # for every result, engine's and client's, from the first start


def workflow_id(index: int) -> str:
    return f"restart-{index:03d}"


class Recorder(logging.Handler):
    """Counts durakit's log records by level and keeps the text of errors."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)  # retries are logged at DEBUG: counted too
        self.counts: Counter[str] = Counter()
        self.errors: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[f"{record.name} {record.levelname}"] += 1
        if record.levelno >= logging.ERROR:
            self.errors.append(self.format(record))


def summarize(latencies: list[float]) -> dict[str, Any]:
    ordered = sorted(latencies)
    if not ordered:
        return {"count": 0}
    return {
        "count": len(ordered),
        "median": ordered[len(ordered) // 2],
        "p99": ordered[min(len(ordered) - 1, len(ordered) * 99 // 100)],
        "max": ordered[-1],
        "over_0.5s": sum(x > 0.5 for x in ordered),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", required=True, help="Postgres URL")
    parser.add_argument("--schema", required=True)
    parser.add_argument("--effects", required=True, type=Path, help="side-effect file")
    parser.add_argument("--workflows", type=int, default=240)
    parser.add_argument("--first-wave", type=int, default=200)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--step-seconds", type=float, default=0.3, help="mean step duration")
    parser.add_argument("--trickle-seconds", type=float, default=0.1)
    args = parser.parse_args(argv)

    recorder = Recorder()
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    stderr.setLevel(logging.INFO)
    durakit_log = logging.getLogger("durakit")
    durakit_log.setLevel(logging.DEBUG)
    durakit_log.addHandler(recorder)
    durakit_log.addHandler(stderr)

    pid = os.getpid()
    effects: Path = args.effects
    steps: int = args.steps
    half: float = args.step_seconds / 2
    lock = threading.Lock()
    step_ended: dict[tuple[str, int], float] = {}
    checkpoint_latencies: list[float] = []  # end of a step's function -> run_step returned
    start_latencies: list[float] = []  # run_workflow calls
    body_ended: dict[str, float] = {}
    # How long the client took to see an outcome it was already waiting for when the
    # body returned: the outcome's commit, then a NOTIFY (or a fallback re-check).
    wake_latencies: list[float] = []

    app = worker_app(
        app_name=APP_NAME,
        db=args.db,
        schema=args.schema,
        version=APP_VERSION,
        executor_id="restart-exec",
    )

    def side_effect(wid: str, n: int) -> str:
        nonce = uuid.uuid4().hex[:12]
        time.sleep(half * random.uniform(0.2, 1.8))
        append_line(effects, f"{wid} {n} {pid} {nonce}")
        time.sleep(half * random.uniform(0.2, 1.8))
        with lock:
            step_ended[wid, n] = time.monotonic()
        return f"{n}/{nonce}"

    @app.workflow(name=WORKFLOW_NAME)
    def chain(ctx: dk.Context) -> list[str]:
        wid = ctx.workflow_id
        outputs: list[str] = []
        for n in range(steps):
            outputs.append(ctx.run_step(functools.partial(side_effect, wid, n), name=f"step_{n}"))
            with lock:
                checkpoint_latencies.append(time.monotonic() - step_ended[wid, n])
        with lock:
            body_ended[wid] = time.monotonic()
        return outputs

    def start(index: int) -> dk.WorkflowHandle[list[str]]:
        began = time.monotonic()
        handle = app.run_workflow(chain, workflow_id=workflow_id(index))
        with lock:
            start_latencies.append(time.monotonic() - began)
        return handle

    app.launch()
    client = dk.Client(args.db, args.schema)
    print("launched", flush=True)
    began = time.monotonic()

    def left() -> float:
        return max(0.1, began + RESULT_TIMEOUT_S - time.monotonic())

    handles = [start(i) for i in range(args.first_wave)]
    print("started", flush=True)

    ids = [workflow_id(i) for i in range(args.workflows)]
    observed: dict[str, Any] = {}
    observer_failures: list[str] = []

    def observe(share: list[str]) -> None:
        for wid in share:
            try:
                handle = client.retrieve_workflow(wid)
                waiting_since = time.monotonic()
                observed[wid] = handle.get_result(left())
                seen = time.monotonic()
                with lock:
                    ended = body_ended[wid]
                if ended > waiting_since:
                    with lock:
                        wake_latencies.append(seen - ended)
            except Exception as exc:
                observer_failures.append(f"{wid}: {exc!r}")

    # The trickled IDs may not exist yet when an observer gets to them: observe only the
    # first wave's, and the rest after they were started.
    first = ids[: args.first_wave]
    observers = [
        threading.Thread(target=observe, args=(first[k::OBSERVER_THREADS],), daemon=True)
        for k in range(OBSERVER_THREADS)
    ]
    for thread in observers:
        thread.start()
    for index in range(args.first_wave, args.workflows):
        time.sleep(args.trickle_seconds)
        handles.append(start(index))
    late = threading.Thread(target=observe, args=(ids[args.first_wave :],), daemon=True)
    late.start()
    observers.append(late)

    results: dict[str, Any] = {}
    failures: list[str] = []
    for handle in handles:
        try:
            results[handle.workflow_id] = handle.get_result(left())
        except Exception as exc:
            failures.append(f"{handle.workflow_id}: {exc!r}")
    engine_done = time.monotonic() - began
    for thread in observers:
        thread.join(left() + 5.0)
    summary = {
        "results": results,
        "failures": failures,
        "observed": observed,
        "observer_failures": observer_failures,
        "run_seconds": engine_done,
        "checkpoint_latency": summarize(checkpoint_latencies),
        "start_latency": summarize(start_latencies),
        "client_wake_latency": summarize(wake_latencies),
        "log_counts": dict(recorder.counts),
        "log_errors": recorder.errors,
    }
    print("summary " + json.dumps(summary, sort_keys=True), flush=True)
    client.close()
    app.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
