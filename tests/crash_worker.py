"""The child process of the crash test (tests/test_crash.py); not a test module itself.

It runs ``--workflows`` workflows of ``--steps`` steps each on one database and exits 0
when every one of them has finished. The parent kills it with SIGKILL at random points
and starts it again; each start calls ``launch()`` (which recovers the PENDING workflows
of executor "local", application version "crash-v1") and then starts every workflow ID
again with ``run_workflow`` (the same ID never runs twice: a started one is awaited).

Each step appends one line ``"<workflow_id> <step> <pid>\\n"`` to the side-effect file
with a single ``write`` on an ``O_APPEND`` descriptor, fsync'd, halfway through its
work: a kill can land before the line (the step left no trace), or between the line and
the checkpoint (the step will run again, in a later process), or after the checkpoint
(the step must never run again). The step returns ``"<input>.<step>@<pid>"``, so the
recorded result names the process whose execution was checkpointed.

Prints ``launched`` on stdout once ``launch()`` returned (the parent times some kills
from it) and ``finished`` before exiting normally.
"""

from __future__ import annotations

import argparse
import functools
import os
import random
import sys
import time
from pathlib import Path

import durakit as dk
from tests.worker_support import append_line, worker_app

APP_NAME = "crash-test"
APP_VERSION = "crash-v1"
WORKFLOW_NAME = "chain"


def workflow_id(index: int) -> str:
    return f"crash-{index:03d}"


def step_output(index: int, step: int, pid: int) -> str:
    return f"{index}.{step}@{pid}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", required=True, help="database URL")
    parser.add_argument("--schema", default="durakit", help="Postgres schema")
    parser.add_argument("--effects", required=True, type=Path, help="side-effect file")
    parser.add_argument("--workflows", type=int, default=40)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--step-seconds", type=float, default=0.15, help="mean step duration")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    pid = os.getpid()
    effects: Path = args.effects
    steps: int = args.steps
    mean: float = args.step_seconds
    rng = random.Random(args.seed)
    durations = {
        (i, n): rng.uniform(mean / 3, mean * 5 / 3)
        for i in range(args.workflows)
        for n in range(steps)
    }

    app = worker_app(app_name=APP_NAME, db=args.db, schema=args.schema, version=APP_VERSION)

    def side_effect(index: int, wid: str, n: int) -> str:
        half = durations[index, n] / 2
        time.sleep(half)
        append_line(effects, f"{wid} {n} {pid}")
        time.sleep(half)
        return step_output(index, n, pid)

    @app.workflow(name=WORKFLOW_NAME)
    def chain(ctx: dk.Context, index: int) -> list[str]:
        wid = ctx.workflow_id
        outputs: list[str] = []
        for n in range(steps):
            outputs.append(
                ctx.run_step(functools.partial(side_effect, index, wid, n), name=f"step_{n}")
            )
        return outputs

    app.launch()
    print("launched", flush=True)
    handles = [
        app.run_workflow(chain, i, workflow_id=workflow_id(i)) for i in range(args.workflows)
    ]
    for handle in handles:
        handle.get_result()
    app.shutdown()
    print("finished", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
