"""The child process of the SIGKILL test in tests/test_exceptions_replay.py; not a test
module itself.

It starts the workflow ``declined`` (tests.test_exceptions_replay.observe_durably), whose
first steps raise exceptions that the workflow catches before a durable sleep, waits
until the sleep is recorded, prints ``sleeping`` and then waits to be killed. The parent
recovers the workflow in another engine: the replayed steps must raise the same classes
with the same attributes, so the recovered workflow takes the same branches.
"""

from __future__ import annotations

import argparse
import sys
import time

from tests.test_exceptions_replay import CRASH_APP, CRASH_VERSION, CRASH_WORKFLOW, observe_durably
from tests.worker_support import worker_app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", required=True, help="database URL")
    parser.add_argument("--schema", default="durakit", help="Postgres schema")
    args = parser.parse_args(argv)
    app = worker_app(
        app_name=CRASH_APP,
        db=args.db,
        schema=args.schema,
        version=CRASH_VERSION,
        executor_id="declined-worker",
    )
    app.register_workflow(observe_durably, name=CRASH_WORKFLOW)
    app.launch()
    app.run_workflow(observe_durably, workflow_id=CRASH_WORKFLOW)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if [s.name for s in app.get_workflow_steps(CRASH_WORKFLOW)][-1:] == ["durakit.sleep"]:
            print("sleeping", flush=True)
            time.sleep(120)  # the parent kills us here
        time.sleep(0.01)
    return 1


if __name__ == "__main__":
    sys.exit(main())
