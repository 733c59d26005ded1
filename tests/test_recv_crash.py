"""Exactly-once delivery when the receiver is killed with SIGKILL between receiving a
message and finishing.

A worker process (tests/recv_crash_worker.py) runs a receiver workflow that recv's
MESSAGES messages, handling each in a step; the first handling of every BLOCK_EVERY-th
message writes a marker file and blocks. The parent sends the messages from a thread
(through a Client, as another process would) while it watches for markers, SIGKILLs the
worker at each one, and starts a new worker, whose ``launch()`` recovers the workflow.

Checked at the end: the workflow returns every message sent, in order, each once (a
recovered recv replays its recorded message instead of consuming another one, and no
message is lost), and the handler ran once per message except the blocked ones, which
ran twice (killed once, then again with the same message after recovery).
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

import durakit as dk
from tests.proc_support import (
    Backend,
    open_backend,
    start_worker,
    tag_url,
    wait_for_line,
    wait_sessions_gone,
)
from tests.recv_crash_worker import RECEIVER_ID, TOPIC, blocks, message_name

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL"),
]

MESSAGES = 16
BLOCK_EVERY = 4  # messages 0, 4, 8, 12 block once: four kills
MAX_WORKERS = MESSAGES // BLOCK_EVERY + 3
TIMEOUT = 60.0


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    with open_backend(request.param, tmp_path / "recv.db") as made:
        yield made


def start_recv_worker(
    backend: Backend, folder: Path, number: int, log: IO[bytes]
) -> subprocess.Popen[bytes]:
    url = backend.url
    if backend.postgres:  # tag its sessions, so the parent can wait for them to end
        url = tag_url(url, f"recv-worker-{number}")
    return start_worker(
        "recv_crash_worker",
        [
            f"--db={url}",
            f"--schema={backend.schema}",
            f"--dir={folder}",
            f"--messages={MESSAGES}",
            f"--block-every={BLOCK_EVERY}",
        ],
        stderr=log,
    )


def test_a_killed_receiver_gets_every_message_exactly_once(
    backend: Backend, tmp_path: Path
) -> None:
    sent = [message_name(i) for i in range(MESSAGES)]
    blocking = [m for m in sent if blocks(m, BLOCK_EVERY)]
    killed_at: list[str] = []
    send_errors: list[BaseException] = []
    client = dk.Client(database_url=backend.url, database_schema=backend.schema)

    def send_all() -> None:  # runs across the kills and restarts
        try:
            for message in sent:
                client.send(RECEIVER_ID, message, topic=TOPIC)
                time.sleep(0.01)
        except BaseException as exc:
            send_errors.append(exc)

    sender = threading.Thread(target=send_all)
    try:
        for number in range(MAX_WORKERS):
            log_path = tmp_path / f"worker-{number}.log"
            with log_path.open("wb") as log:
                proc = start_recv_worker(backend, tmp_path, number, log)
                try:
                    wait_for_line(proc, b"started", log_path, TIMEOUT)
                    if number == 0:
                        sender.start()
                    deadline = time.monotonic() + TIMEOUT
                    while proc.poll() is None and time.monotonic() < deadline:
                        waiting = [m for m in blocking if m not in killed_at]
                        hit = [m for m in waiting if (tmp_path / f"{m}.marker").exists()]
                        if hit:
                            proc.send_signal(signal.SIGKILL)
                            proc.wait()
                            killed_at.extend(hit)
                            break
                        time.sleep(0.005)
                finally:
                    if proc.poll() is None:
                        proc.kill()
                    proc.wait()
                    if proc.stdout is not None:
                        proc.stdout.close()
            if backend.postgres:  # a killed worker's sessions may outlive it for a moment
                wait_sessions_gone(backend.url, f"recv-worker-{number}", TIMEOUT, number)
            if proc.returncode != -signal.SIGKILL:
                assert proc.returncode == 0, log_path.read_text()
                break
        else:
            pytest.fail(f"the receiver did not finish after {MAX_WORKERS} workers")
        sender.join(TIMEOUT)
        assert send_errors == []

        assert killed_at == blocking  # one kill per blocking message, in order
        handle = client.retrieve_workflow(RECEIVER_ID)
        assert handle.get_status().status is dk.StatusType.SUCCESS
        assert handle.get_result(timeout=TIMEOUT) == sent  # each message once, in order
        steps = client.get_workflow_steps(RECEIVER_ID)
        assert [s.output for s in steps if s.name == "durakit.recv"] == sent
        handled = Counter(
            line.split(" ")[0] for line in (tmp_path / "handled.log").read_text().splitlines()
        )
        assert handled == Counter({m: 2 if m in blocking else 1 for m in sent})
    finally:
        if sender.is_alive():
            sender.join(TIMEOUT)
        client.close()
