"""The child process of tests/test_pg_processes.py; not a test module itself.

One durakit engine on a Postgres schema, driven by commands on stdin, one per line:

``launch``
    ``app.launch()`` (migrates, and recovers the PENDING workflows of this executor and
    application version); prints ``launched``.
``start <prefix>``
    Starts every workflow ID ``<prefix>-000`` .. at the same moment: one thread per ID,
    all released together, each calling ``run_workflow``. Prints ``started`` once every
    ``run_workflow`` returned, then ``result <json>`` (a mapping of workflow ID to
    result) once every result is in.
``exit``
    Shuts the engine down and exits: 0, or 1 if any call above raised (``FAILED ...``
    lines on stderr, where log records go too).

Side effects go to one file, each a single fsync'd ``write`` on an ``O_APPEND``
descriptor: the workflow body appends ``body <workflow_id> - <pid> -`` each time it is
entered (an execution, first or recovered), and step ``n`` appends ``step <workflow_id>
<n> <pid> <nonce>`` partway through its (jittered) work and returns
``"<n>@<pid>/<nonce>"`` (the nonce is unique per execution of the step). So the
recorded output of a step names the one execution whose checkpoint won, and the file
shows every execution that happened.

The pool's connections are all opened before ``launched`` is printed, so that at
``start`` no thread waits for a new connection and the two processes' upserts of the
same ID really meet in the database.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import os
import random
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg_pool

import durakit as dk
from durakit.backends.postgres import PostgresStore
from tests.worker_support import append_line

APP_NAME = "pg-processes"
APP_VERSION = "pg-processes-v1"
WORKFLOW_NAME = "chain"
POOL_SIZE = 8


def workflow_id(prefix: str, index: int) -> str:
    return f"{prefix}-{index:03d}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", required=True, help="Postgres URL")
    parser.add_argument("--schema", required=True)
    parser.add_argument("--effects", required=True, type=Path, help="side-effect file")
    parser.add_argument("--ids", type=int, default=20)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--step-seconds", type=float, default=0.05)
    parser.add_argument("--executor-id", required=True)
    args = parser.parse_args(argv)
    # Records go to stderr as "<LEVEL> <logger>: <message>". Warnings are expected if
    # someone restarts the shared server meanwhile (calls are retried); errors are not.
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )

    pid = os.getpid()
    effects: Path = args.effects
    steps: int = args.steps
    half: float = args.step_seconds / 2
    # A small pool, opened in full before the race (the server's connections are shared
    # with other tests): the threads queue on it in the same order in both processes.
    store = PostgresStore(args.db, args.schema, min_size=POOL_SIZE, max_size=POOL_SIZE)
    app = dk.Durakit(
        dk.Config(
            app_name=APP_NAME,
            store=store,
            application_version=APP_VERSION,
            executor_id=args.executor_id,
        )
    )

    def side_effect(wid: str, n: int) -> str:
        nonce = uuid.uuid4().hex[:12]
        # Jittered, so that the workflows drift apart and a kill finds them at every
        # point of a step: before its side effect, or between it and the checkpoint.
        time.sleep(half * random.uniform(0.2, 1.8))
        append_line(effects, f"step {wid} {n} {pid} {nonce}")
        time.sleep(half * random.uniform(0.2, 1.8))
        return f"{n}@{pid}/{nonce}"

    @app.workflow(name=WORKFLOW_NAME)
    def chain(ctx: dk.Context) -> list[str]:
        wid = ctx.workflow_id
        append_line(effects, f"body {wid} - {pid} -")
        return [
            ctx.run_step(functools.partial(side_effect, wid, n), name=f"step_{n}")
            for n in range(steps)
        ]

    failures: list[str] = []

    def start_all(prefix: str) -> dict[str, list[str]]:
        ids = [workflow_id(prefix, i) for i in range(args.ids)]
        go = threading.Event()
        handles: dict[str, dk.WorkflowHandle[list[str]]] = {}

        def start_one(wid: str) -> None:
            go.wait()
            try:
                handles[wid] = app.run_workflow(chain, workflow_id=wid)
            except Exception as exc:
                failures.append(f"{wid}: run_workflow raised {exc!r}")

        threads = [threading.Thread(target=start_one, args=(wid,), daemon=True) for wid in ids]
        for thread in threads:
            thread.start()
        go.set()
        for thread in threads:
            thread.join()
        print("started", flush=True)
        results: dict[str, list[str]] = {}
        for wid, handle in sorted(handles.items()):
            try:
                results[wid] = handle.get_result(timeout=30.0)
            except Exception as exc:
                failures.append(f"{wid}: get_result raised {exc!r}")
        return results

    try:
        for line in sys.stdin:
            command, _, argument = line.strip().partition(" ")
            if command == "launch":
                app.launch()
                # Every connection open before the race (see the module docstring).
                with contextlib.suppress(psycopg_pool.PoolTimeout):
                    store._db.pool.wait(timeout=10.0)
                print("launched", flush=True)
            elif command == "start":
                results = start_all(argument)
                print("result " + json.dumps(results, sort_keys=True), flush=True)
            elif command == "exit":
                break
            else:
                failures.append(f"unknown command {line!r}")
                break
    finally:
        app.shutdown()
        store.close()
    for failure in failures:
        print(f"FAILED {failure}", file=sys.stderr, flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
