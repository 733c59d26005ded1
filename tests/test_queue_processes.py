"""Queue limits across real OS processes on one database (SQLite and Postgres).

Workers are tests/queue_worker.py, each its own executor. Every job records ``start``
and ``end`` lines (with a nanosecond clock shared by the processes) inside its run, so
the recorded intervals lie within the real ones: if the recorded intervals ever overlap
more than ``concurrency`` (or, within one executor, ``worker_concurrency``), the limits
were broken.

The SIGKILL test kills a worker holding dequeued work in the middle of a step, restarts
it (same executor: its launch recovers the work by putting it back on the queue), and
checks that every job finishes once and no checkpointed step ran twice.
"""

from __future__ import annotations

import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

import durakit as dk
from tests.helpers import wait_until
from tests.proc_support import (
    Backend,
    open_backend,
    start_worker,
    tag_url,
    wait_for_line,
    wait_sessions_gone,
)
from tests.queue_worker import job_id

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")

TIMEOUT = 120.0


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    with open_backend(request.param, tmp_path / "queues.db") as made:
        yield made


class Workers:
    def __init__(self, backend: Backend, tmp_path: Path) -> None:
        self.backend = backend
        self.tmp_path = tmp_path
        self.effects = tmp_path / "effects.txt"
        self.procs: list[tuple[subprocess.Popen[bytes], Path, IO[bytes]]] = []

    def start(self, executor: str, *, total: int, **options: object) -> subprocess.Popen[bytes]:
        url = self.backend.url
        if self.backend.postgres:
            url = tag_url(url, f"queue-{executor}")
        log_path = self.tmp_path / f"{executor}-{len(self.procs)}.log"
        log = log_path.open("wb")
        argv = [
            f"--db={url}",
            f"--schema={self.backend.schema}",
            f"--effects={self.effects}",
            f"--executor={executor}",
            f"--total={total}",
        ]
        argv += [f"--{k.replace('_', '-')}={v}" for k, v in options.items()]
        proc = start_worker("queue_worker", argv, stderr=log)
        self.procs.append((proc, log_path, log))
        wait_for_line(proc, b"launched", log_path, TIMEOUT)
        return proc

    def finish(self, proc: subprocess.Popen[bytes]) -> None:
        for p, log_path, _ in self.procs:
            if p is proc:
                wait_for_line(p, b"done", log_path, TIMEOUT)
                assert p.wait(TIMEOUT) == 0, log_path.read_text()

    def close(self) -> None:
        for proc, _, log in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
            log.close()

    def lines(self) -> list[tuple[str, str, str, int]]:
        out = []
        for line in self.effects.read_text().splitlines():
            kind, wid, executor, ns = line.split(" ")
            out.append((kind, wid, executor, int(ns)))
        return out


@pytest.fixture
def workers(backend: Backend, tmp_path: Path) -> Iterator[Workers]:
    made = Workers(backend, tmp_path)
    yield made
    made.close()


def peak(intervals: list[tuple[int, int]]) -> int:
    """The most intervals open at one instant (an end before a start at a tie)."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    running = top = 0
    for _, delta in events:
        running += delta
        top = max(top, running)
    return top


@pytest.mark.parametrize("processes", [2, 3])
def test_global_and_worker_concurrency_hold_across_processes(
    workers: Workers, processes: int
) -> None:
    total, concurrency, per_worker = 24, 3, 2
    options: dict[str, object] = {
        "concurrency": concurrency,
        "worker_concurrency": per_worker,
        "hold": 0.15,
    }
    procs = [workers.start(f"x{i}", total=total, **options) for i in range(processes - 1)]
    procs.append(workers.start("enqueuer", total=total, enqueue=total, **options))
    for proc in procs:
        workers.finish(proc)
    lines = workers.lines()
    starts = {(w, x): ns for kind, w, x, ns in lines if kind == "start"}
    ends = {(w, x): ns for kind, w, x, ns in lines if kind == "end"}
    assert Counter(w for kind, w, _, _ in lines if kind == "start") == {
        job_id(i): 1 for i in range(total)
    }
    assert starts.keys() == ends.keys()
    intervals = {key: (starts[key], ends[key]) for key in starts}
    assert peak(list(intervals.values())) <= concurrency
    executors = {x for _, x in intervals}
    for executor in executors:
        mine = [span for (_, x), span in intervals.items() if x == executor]
        assert peak(mine) <= per_worker
    # The limit was reached, and the work spread: the test did test something.
    assert peak(list(intervals.values())) >= 2
    assert len(executors) >= 2


def test_a_killed_worker_holding_dequeued_work_is_recovered_through_the_queue(
    workers: Workers, backend: Backend
) -> None:
    total = 6
    options: dict[str, object] = {"concurrency": 3, "worker_concurrency": 3, "hold": 30.0}
    victim = workers.start("victim", total=total, enqueue=total, **options)

    with dk.Client(database_url=backend.url, database_schema=backend.schema) as client:

        def checkpointed() -> int:  # running jobs whose "start" step is recorded
            running = client.list_workflows(name="job", status=dk.StatusType.PENDING)
            return sum(1 for r in running if client.get_workflow_steps(r.workflow_id))

        wait_until(lambda: checkpointed() == 3, timeout=TIMEOUT)
    victim.send_signal(signal.SIGKILL)
    victim.wait(TIMEOUT)
    if backend.postgres:
        wait_sessions_gone(backend.url, "queue-victim", 30.0, "victim")
    # The restarted executor recovers its three and drains the queue, holding briefly.
    options["hold"] = 0.05
    again = workers.start("victim", total=total, **options)
    workers.finish(again)
    lines = workers.lines()
    assert Counter(w for kind, w, _, _ in lines if kind == "start") == {
        job_id(i): 1 for i in range(total)
    }  # the three killed mid-hold had checkpointed "start": it did not run again
    assert Counter(w for kind, w, _, _ in lines if kind == "end") == {
        job_id(i): 1 for i in range(total)
    }
    with dk.Client(database_url=backend.url, database_schema=backend.schema) as client:
        rows = client.list_workflows(name="job")
        assert {r.status for r in rows} == {dk.StatusType.SUCCESS}
        assert sorted(r.attempts for r in rows) == [1, 1, 1, 2, 2, 2]


def test_the_rate_limit_holds_across_processes(workers: Workers, backend: Backend) -> None:
    total, limit, period = 12, 4, 1.0
    options: dict[str, object] = {
        "concurrency": 10,
        "worker_concurrency": 5,
        "hold": 0.01,
        "rate_limit": limit,
        "rate_period": period,
    }
    other = workers.start("r0", total=total, **options)
    enqueuer = workers.start("r1", total=total, enqueue=total, **options)
    workers.finish(other)
    workers.finish(enqueuer)
    with dk.Client(database_url=backend.url, database_schema=backend.schema) as client:
        rows = client.list_workflows(name="job")
    # The dequeue times the stores recorded (on the engines' clocks): no window of one
    # period holds more than ``limit`` starts.
    starts = sorted(r.started_at.timestamp() for r in rows if r.started_at is not None)
    assert len(starts) == total
    for i, first in enumerate(starts):
        in_window = [t for t in starts[i:] if t < first + period]
        assert len(in_window) <= limit, starts
    assert starts[-1] - starts[0] >= (total // limit - 1) * period * 0.99
