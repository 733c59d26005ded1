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

import select
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import attrs
import pytest

import durakit as dk
from tests.recv_crash_worker import RECEIVER_ID, TOPIC, blocks, message_name

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL"),
]

WORKER = Path(__file__).with_name("recv_crash_worker.py")
MESSAGES = 16
BLOCK_EVERY = 4  # messages 0, 4, 8, 12 block once: four kills
MAX_WORKERS = MESSAGES // BLOCK_EVERY + 3
TIMEOUT = 60.0


@attrs.frozen(kw_only=True)
class Backend:
    url: str
    schema: str

    @property
    def postgres(self) -> bool:
        return self.url.startswith(("postgresql://", "postgres://"))


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        yield Backend(url=f"sqlite:///{tmp_path / 'recv.db'}", schema="durakit")
        return
    from tests import pg

    with pg.fresh_schema() as (url, schema):
        yield Backend(url=url, schema=schema)


def start_worker(
    backend: Backend, folder: Path, number: int, log: IO[bytes]
) -> subprocess.Popen[bytes]:
    url = backend.url
    if backend.postgres:  # tag its sessions, so the parent can wait for them to end
        url += ("&" if "?" in url else "?") + f"application_name=recv-worker-{number}"
    return subprocess.Popen(
        [
            sys.executable,
            str(WORKER),
            f"--db={url}",
            f"--schema={backend.schema}",
            f"--dir={folder}",
            f"--messages={MESSAGES}",
            f"--block-every={BLOCK_EVERY}",
        ],
        stdout=subprocess.PIPE,
        stderr=log,
    )


def wait_started(proc: subprocess.Popen[bytes], log_path: Path) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.05)
        if ready:
            line = proc.stdout.readline()
            if line.strip() == b"started":
                return
            if not line:
                break
    pytest.fail(f"worker {proc.pid} did not start (exit {proc.poll()}):\n{log_path.read_text()}")


def wait_sessions_gone(backend: Backend, number: int) -> None:
    """A killed worker's Postgres sessions may outlive it for a moment; wait them out."""
    if not backend.postgres:
        return
    import psycopg

    deadline = time.monotonic() + TIMEOUT
    with psycopg.connect(backend.url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                (f"recv-worker-{number}",),
            ).fetchone()
            if row is not None and row[0] == 0:
                return
            time.sleep(0.02)
    pytest.fail(f"the sessions of killed worker {number} did not go away")


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
                proc = start_worker(backend, tmp_path, number, log)
                try:
                    wait_started(proc, log_path)
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
            wait_sessions_gone(backend, number)
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
