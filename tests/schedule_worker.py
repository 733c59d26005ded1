"""The child process of the multi-executor schedule test (tests/test_schedules.py); not
a test module itself.

Runs an engine with one workflow scheduled every second, for ``--seconds`` seconds, then
shuts down. Each run of the workflow body appends ``"<tick> <pid>"`` to the side-effect
file. Prints ``launched`` once ``launch()`` returned.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime
from pathlib import Path

import durakit as dk
from tests.worker_support import append_line, worker_app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", required=True)
    parser.add_argument("--schema", default="durakit")
    parser.add_argument("--effects", required=True, type=Path)
    parser.add_argument("--executor", required=True)
    parser.add_argument("--seconds", type=float, required=True)
    args = parser.parse_args(argv)
    app = worker_app(
        app_name="sched-test",
        db=args.db,
        schema=args.schema,
        version="sched-v1",
        executor_id=args.executor,
    )

    @app.workflow(name="every_second", schedule="* * * * * *")
    def every_second(ctx: dk.Context, tick: datetime) -> str:
        append_line(args.effects, f"{tick.isoformat()} {os.getpid()}")
        return tick.isoformat()

    with app:
        print("launched", flush=True)
        time.sleep(args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
