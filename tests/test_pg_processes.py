"""Two OS processes on one Postgres schema start the same workflow IDs.

The workers are tests/pg_start_worker.py, driven over stdin. Every workflow body appends a
``body`` line to a shared side-effect file each time an execution enters it, and every
step appends a ``step`` line naming its process and a nonce unique to that execution of
the step, which it also returns; so the file shows every execution that happened and the
recorded outputs show which one was checkpointed.

* The race: both processes (different executors) are launched and their pools are
  open; then both are told to start the same IDs, each from one thread per ID released
  together. Each body must run once, each step once, in the process whose body ran, and
  both processes must report the same results, equal to what is recorded.
* The takeover: the owning process is SIGKILLed mid-run; the other process, with the
  same executor ID and application version, then launches (which recovers the
  workflows) and starts the same IDs. Every workflow finishes once, with results both
  processes' checkpoints agree on, and no step checkpointed before the kill runs again.
"""

from __future__ import annotations

import json
import select
import signal
import subprocess
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import attrs
import pytest

import durakit as dk
from tests import pg
from tests.pg_start_worker import workflow_id
from tests.proc_support import start_worker, tag_url, wait_sessions_gone

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL"),
]

IDS = 20  # workflow IDs per round
RACE_ROUNDS = 3  # the race is repeated on fresh IDs: 60 contested starts in all
RACE_STEPS = 3
RACE_STEP_SECONDS = 0.05
KILL_STEPS = 6
KILL_STEP_SECONDS = 0.2
REPLY_TIMEOUT = 60.0


# -- the worker processes ----------------------------------------------------------------
class Worker:
    """A running pg_start_worker.py: commands go to its stdin, replies come on stdout."""

    def __init__(
        self, name: str, url: str, schema: str, effects: Path, tmp_path: Path, **options: Any
    ) -> None:
        # Tag the worker's sessions, so that after a SIGKILL the test can wait for the
        # server to drop them (a COMMIT sent just before the kill may still be running).
        self.tag = f"pgproc-{name}-{uuid.uuid4().hex[:8]}"
        self.log_path = tmp_path / f"worker-{name}.log"
        self._log: IO[bytes] = self.log_path.open("wb")
        argv = [f"--db={tag_url(url, self.tag)}", f"--schema={schema}", f"--effects={effects}"]
        argv += [f"--{key.replace('_', '-')}={value}" for key, value in options.items()]
        self.proc = start_worker("pg_start_worker", argv, stdin=subprocess.PIPE, stderr=self._log)
        self.pid = self.proc.pid

    def __enter__(self) -> Worker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text()

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{command}\n".encode())
        self.proc.stdin.flush()

    def expect(self, word: str, timeout: float = REPLY_TIMEOUT) -> str:
        """Wait for a stdout line starting with ``word``; the rest of the line."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.05)
            if not ready:
                continue
            line = self.proc.stdout.readline().decode()
            if not line:
                break
            head, _, rest = line.strip().partition(" ")
            if head == word:
                return rest
            pytest.fail(f"worker {self.pid} said {line!r}, expected {word!r}:\n{self.log()}")
        pytest.fail(
            f"worker {self.pid} did not say {word!r} (exit code {self.proc.poll()}):\n{self.log()}"
        )

    def exit(self) -> None:
        """Ask the worker to exit; it must exit 0 and log no error. (Retry warnings are
        allowed: another test run may restart the shared server meanwhile.)"""
        self.send("exit")
        code = self.proc.wait(REPLY_TIMEOUT)
        assert code == 0, f"worker {self.pid} exited with {code}:\n{self.log()}"
        errors = [x for x in self.log().splitlines() if x.startswith(("ERROR", "CRITICAL"))]
        assert not errors, f"worker {self.pid} logged errors:\n{self.log()}"

    def kill(self, url: str) -> None:
        """SIGKILL, then wait until the server has dropped the worker's sessions."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        wait_sessions_gone(url, self.tag, 30.0, self.pid)


# -- what happened -------------------------------------------------------------------------
@attrs.frozen(kw_only=True)
class Effects:
    bodies: dict[str, list[int]]  # workflow -> pids of the executions that entered it
    steps: dict[tuple[str, int], list[tuple[int, str]]]  # (workflow, step) -> [(pid, nonce)]

    def step_count(self) -> int:
        return sum(len(v) for v in self.steps.values())


def read_effects(path: Path) -> Effects:
    bodies: dict[str, list[int]] = defaultdict(list)
    steps: dict[tuple[str, int], list[tuple[int, str]]] = defaultdict(list)
    text = path.read_text() if path.exists() else ""
    for number, line in enumerate(text.splitlines(), 1):
        parts = line.split(" ")
        assert len(parts) == 5, f"side-effect line {number} is torn: {line!r}"
        kind, wid, step, pid, nonce = parts
        if kind == "body":
            bodies[wid].append(int(pid))
        else:
            assert kind == "step", line
            steps[wid, int(step)].append((int(pid), nonce))
    return Effects(bodies=dict(bodies), steps=dict(steps))


def output(step: int, pid: int, nonce: str) -> str:
    return f"{step}@{pid}/{nonce}"


@attrs.frozen(kw_only=True)
class Recorded:
    status: dk.StatusType
    attempts: int
    executor_id: str | None
    output: Any
    steps: list[tuple[int, str, Any]]  # (step_id, name, output)


def read_database(url: str, schema: str, prefix: str) -> dict[str, Recorded]:
    with dk.Client(url, schema) as client:
        rows = client.list_workflows(workflow_id_prefix=f"{prefix}-", load_input=False)
        return {
            r.workflow_id: Recorded(
                status=r.status,
                attempts=r.attempts,
                executor_id=r.executor_id,
                output=r.output,
                steps=[
                    (s.step_id, s.name, s.output) for s in client.get_workflow_steps(r.workflow_id)
                ],
            )
            for r in rows
        }


# -- the race ------------------------------------------------------------------------------
def test_the_same_ids_started_by_two_processes_run_once(tmp_path: Path) -> None:
    started = time.monotonic()
    effects_path = tmp_path / "effects.txt"
    wins: Counter[int] = Counter()
    with pg.fresh_schema() as (url, schema):
        options = {"ids": IDS, "steps": RACE_STEPS, "step_seconds": RACE_STEP_SECONDS}
        with (
            Worker("a", url, schema, effects_path, tmp_path, executor_id="exec-a", **options) as a,
            Worker("b", url, schema, effects_path, tmp_path, executor_id="exec-b", **options) as b,
        ):
            pair = (a, b)
            for worker in pair:
                worker.send("launch")
            for worker in pair:
                worker.expect("launched")
            for round_ in range(RACE_ROUNDS):
                prefix = f"race{round_}"
                # Back to back, so both start every ID at once; who goes first alternates.
                for worker in pair if round_ % 2 == 0 else pair[::-1]:
                    worker.send(f"start {prefix}")
                for worker in pair:
                    worker.expect("started")
                results = [json.loads(worker.expect("result")) for worker in pair]
                ids = [workflow_id(prefix, i) for i in range(IDS)]
                assert sorted(results[0]) == ids, f"worker a did not get every result: {results}"
                assert results[0] == results[1], "the two processes saw different results"

                effects = read_effects(effects_path)
                recorded = read_database(url, schema, prefix)
                for wid in ids:
                    bodies = effects.bodies.get(wid, [])
                    assert len(bodies) == 1, f"{wid}: the body ran {len(bodies)} times ({bodies})"
                    (runner,) = bodies
                    assert runner in (a.pid, b.pid)
                    wins[runner] += 1
                    expected = []
                    for n in range(RACE_STEPS):
                        runs = effects.steps.get((wid, n), [])
                        assert len(runs) == 1, f"{wid}: step {n} ran {len(runs)} times: {runs}"
                        ((pid, nonce),) = runs
                        assert pid == runner, f"{wid}: step {n} ran outside the body's process"
                        expected.append(output(n, pid, nonce))
                    assert results[0][wid] == expected, f"{wid}: result not from its one run"
                    rec = recorded[wid]
                    assert rec.status is dk.StatusType.SUCCESS
                    assert rec.attempts == 1
                    assert rec.output == expected
                    assert rec.executor_id == ("exec-a" if runner == a.pid else "exec-b")
                    assert rec.steps == [(n, f"step_{n}", expected[n]) for n in range(RACE_STEPS)]
                assert effects.step_count() == (round_ + 1) * IDS * RACE_STEPS
            for worker in pair:
                worker.exit()
    print(
        f"\nrace: {RACE_ROUNDS * IDS} IDs started by 2 processes; bodies run by "
        f"a: {wins[a.pid]}, b: {wins[b.pid]}; {time.monotonic() - started:.1f} s"
    )


# -- the takeover --------------------------------------------------------------------------
def _wait_for_progress(path: Path, lines: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if read_effects(path).step_count() >= lines:
            return
        time.sleep(0.01)
    pytest.fail(f"the workflows made no progress: {read_effects(path)}")


def test_a_killed_owner_is_recovered_by_the_other_process(tmp_path: Path) -> None:
    started = time.monotonic()
    effects_path = tmp_path / "effects.txt"
    prefix = "takeover"
    ids = [workflow_id(prefix, i) for i in range(IDS)]
    with pg.fresh_schema() as (url, schema):
        # Same executor and version: b's launch() recovers what a left PENDING.
        options = {
            "ids": IDS,
            "steps": KILL_STEPS,
            "step_seconds": KILL_STEP_SECONDS,
            "executor_id": "exec-shared",
        }
        with (
            Worker("a", url, schema, effects_path, tmp_path, **options) as a,
            Worker("b", url, schema, effects_path, tmp_path, **options) as b,
        ):
            a.send("launch")
            a.expect("launched")
            a.send(f"start {prefix}")
            a.expect("started")
            # Kill with about a third of the steps done: each workflow is mid-run.
            _wait_for_progress(effects_path, IDS * KILL_STEPS // 3)
            a.kill(url)
            at_kill = read_database(url, schema, prefix)
            lines_at_kill = read_effects(effects_path)

            b.send("launch")  # recovers a's PENDING workflows
            b.expect("launched")
            b.send(f"start {prefix}")  # the same IDs: handles on the recovered executions
            b.expect("started")
            results = json.loads(b.expect("result"))
            b.exit()
        final = read_database(url, schema, prefix)
    effects = read_effects(effects_path)

    assert sorted(at_kill) == ids, "a did not start every workflow before it was killed"
    pending = [w for w in ids if at_kill[w].status is dk.StatusType.PENDING]
    mid_run = [w for w in pending if 0 < len(at_kill[w].steps) < KILL_STEPS]
    assert mid_run, "the kill did not catch any workflow between two checkpoints"
    assert sorted(results) == ids
    reruns = 0
    for wid in ids:
        before = at_kill[wid]
        done = len(before.steps)
        assert [s[0] for s in before.steps] == list(range(done)), f"{wid}: not a prefix"
        was_pending = before.status is dk.StatusType.PENDING
        entered = [a.pid, b.pid] if was_pending else [a.pid]
        assert effects.bodies[wid] == entered, (
            f"{wid}: bodies entered by {effects.bodies[wid]} (pending at the kill: {was_pending})"
        )
        expected = []
        for n in range(KILL_STEPS):
            runs = effects.steps.get((wid, n), [])
            by_a = [r for r in runs if r[0] == a.pid]
            by_b = [r for r in runs if r[0] == b.pid]
            assert len(by_a) + len(by_b) == len(runs), f"{wid}: a step ran in a third process"
            if n < done:
                # Checkpointed before the kill: never again, and the record is a's run.
                assert not by_b, f"{wid}: step {n} was checkpointed, yet b ran it again"
                assert len(by_a) == 1, f"{wid}: step {n} ran {len(by_a)} times in a"
                assert before.steps[n][2] == output(n, *by_a[0])
                expected.append(output(n, *by_a[0]))
                continue
            # Not checkpointed: a may have been inside it (only the first such step, and
            # only if its side effect came before the kill); b ran it exactly once.
            assert len(by_a) <= (1 if n == done else 0), f"{wid}: a ran unrecorded step {n}"
            reruns += len(by_a)
            assert len(by_b) == 1, f"{wid}: b ran step {n} {len(by_b)} times"
            expected.append(output(n, *by_b[0]))
        assert results[wid] == expected, f"{wid}: b's result is not the checkpointed one"
        rec = final[wid]
        assert rec.status is dk.StatusType.SUCCESS
        assert rec.output == expected
        assert rec.steps == [(n, f"step_{n}", expected[n]) for n in range(KILL_STEPS)]
        assert rec.attempts == (2 if was_pending else 1), f"{wid}: {rec.attempts} attempts"
        assert rec.executor_id == "exec-shared"
    assert reruns > 0, "the kill caught no step between its side effect and its checkpoint"
    print(
        f"\ntakeover: {len(pending)} of {IDS} workflows PENDING at the kill "
        f"({len(mid_run)} between checkpoints), {lines_at_kill.step_count()} steps had run, "
        f"{reruns} in-flight steps re-ran in b; {time.monotonic() - started:.1f} s"
    )
