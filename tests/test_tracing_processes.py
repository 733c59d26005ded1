"""A workflow killed mid-step in one process and recovered in another continues the trace
of the code that started it: the recovered execution's span has the starter's trace ID
and the starter's span as its parent (tests/trace_worker.py is the process)."""

from __future__ import annotations

import json
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.proc_support import open_backend, start_worker

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL"),
]

TIMEOUT = 60.0


def read_lines(proc: subprocess.Popen[bytes], log: Path, until: str) -> list[str]:
    """The worker's stdout lines up to and including ``until``."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.05)
        if not ready:
            continue
        line = proc.stdout.readline().decode().strip()
        if not line and proc.poll() is not None:
            break
        lines.append(line)
        if line == until:
            return lines
    pytest.fail(f"worker {proc.pid} did not say {until!r} ({proc.poll()}):\n{log.read_text()}")


def kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(TIMEOUT)
    if proc.stdout is not None:
        proc.stdout.close()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_workflow_recovered_in_another_process_continues_the_starters_trace(
    kind: str, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    with open_backend(kind, tmp_path / "trace.db") as backend, log.open("wb") as err:
        db = ["--db", backend.url, "--schema", backend.schema]
        first = start_worker("trace_worker", [*db, "--mode", "start"], stderr=err)
        try:
            (caller, *_) = read_lines(first, log, "in-step")
        finally:
            kill(first)
        _, trace_id, caller_span = caller.split()

        second = start_worker("trace_worker", [*db, "--mode", "recover"], stderr=err)
        try:
            lines = read_lines(second, log, "finished")
        finally:
            kill(second)

    spans = [json.loads(line.removeprefix("span ")) for line in lines if line.startswith("span ")]
    (workflow,) = [s for s in spans if s["name"] == "workflow traced"]
    assert workflow["trace_id"] == trace_id
    assert workflow["parent_id"] == caller_span
    assert workflow["attributes"]["durakit.attempts"] == 2
    assert workflow["attributes"]["durakit.status"] == "SUCCESS"
    # The first step was recorded before the kill: replayed, it runs (and spans) no more.
    (step,) = [s for s in spans if s["name"].startswith("step ")]
    assert step["name"] == "step second"
    assert step["parent_id"] == workflow["span_id"]
    assert step["trace_id"] == trace_id
