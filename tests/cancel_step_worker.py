"""The child process of tests/test_cancel_step_outcome.py; not a test module itself.

It runs one workflow (ID ``cancel-me``) of two steps. The first, ``slow``, appends
``slow`` to ``<dir>/ran.log``, prints ``in-step`` and blocks until the file
``<dir>/release`` exists (the parent cancels the workflow meanwhile, from a Client), then
returns 42. The second, ``after``, appends ``after`` and returns 1; the workflow returns
their sum.

Prints ``cancelled`` once awaiting the workflow raised AwaitedWorkflowCancelledError,
then waits for a line on stdin, resumes the workflow, and prints ``result <value>``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import durakit as dk
from tests.worker_support import append_line, worker_app

WORKFLOW_ID = "cancel-me"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", required=True, help="database URL")
    parser.add_argument("--schema", default="durakit", help="Postgres schema")
    parser.add_argument("--dir", required=True, type=Path, help="log and release directory")
    args = parser.parse_args(argv)
    folder: Path = args.dir

    def slow() -> int:
        append_line(folder / "ran.log", "slow")
        print("in-step", flush=True)
        deadline = time.monotonic() + 60
        while not (folder / "release").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        return 42

    def after() -> int:
        append_line(folder / "ran.log", "after")
        return 1

    app = worker_app(app_name="cancel-step", db=args.db, schema=args.schema, version="v1")

    @app.workflow(name="two-steps")
    def two_steps(ctx: dk.Context) -> int:
        return ctx.run_step(slow, name="slow") + ctx.run_step(after, name="after")

    with app:
        handle = app.run_workflow(two_steps, workflow_id=WORKFLOW_ID)
        try:
            handle.get_result(timeout=120)
        except dk.AwaitedWorkflowCancelledError:
            print("cancelled", flush=True)
        sys.stdin.readline()
        print(f"result {app.resume_workflow(WORKFLOW_ID).get_result(timeout=60)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
