"""The child process of tests/test_recv_crash.py; not a test module itself.

It runs one receiver workflow (ID ``receiver``) that takes ``--messages`` messages off
the topic ``jobs`` one by one and handles each in a step. The handler appends
``"<message> <pid>"`` to the handled-log file (one fsync'd ``O_APPEND`` write), and on
the first handling of every ``--block-every``-th message (by index) writes the marker
file ``<message>.marker`` and then blocks: the parent SIGKILLs the process there, between
the recv (checkpointed) and the end of the workflow. A restarted worker's ``launch()``
recovers the workflow; its replayed recv must return the same message, not consume the
next one. The workflow returns the messages in the order its recvs returned them.

Prints ``started`` once the workflow runs (the parent sends only to a workflow that
exists) and ``finished`` before exiting normally.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from pathlib import Path

import durakit as dk
from tests.worker_support import append_line, worker_app

APP_NAME = "recv-crash"
APP_VERSION = "recv-crash-v1"
RECEIVER_ID = "receiver"
TOPIC = "jobs"


def message_name(index: int) -> str:
    return f"m-{index:03d}"


def blocks(message: str, every: int) -> bool:
    """Whether the first handling of ``message`` blocks (waits for the parent's kill)."""
    return int(message.removeprefix("m-")) % every == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", required=True, help="database URL")
    parser.add_argument("--schema", default="durakit", help="Postgres schema")
    parser.add_argument("--dir", required=True, type=Path, help="marker and log directory")
    parser.add_argument("--messages", type=int, required=True)
    parser.add_argument("--block-every", type=int, required=True)
    args = parser.parse_args(argv)

    pid = os.getpid()
    folder: Path = args.dir
    every: int = args.block_every

    def handle(message: str) -> None:
        append_line(folder / "handled.log", f"{message} {pid}")
        marker = folder / f"{message}.marker"
        if blocks(message, every) and not marker.exists():
            marker.write_text(str(pid))
            time.sleep(120)  # the parent kills us here

    app = worker_app(
        app_name=APP_NAME,
        db=args.db,
        schema=args.schema,
        version=APP_VERSION,
        executor_id="recv-worker",
    )

    @app.workflow(name="receiver")
    def receiver(ctx: dk.Context, count: int) -> list[str]:
        received: list[str] = []
        for _ in range(count):
            message: str = ctx.recv(TOPIC, timeout=300)
            ctx.run_step(functools.partial(handle, message), name="handle")
            received.append(message)
        return received

    app.launch()
    handle_ = app.run_workflow(receiver, args.messages, workflow_id=RECEIVER_ID)
    print("started", flush=True)
    handle_.get_result()
    app.shutdown()
    print("finished", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
