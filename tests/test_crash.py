"""Crash test with real processes: SIGKILL a worker at random points, restart it, and prove
from its side effects that every workflow finished once and no checkpointed step ran again.

The worker (tests/crash_worker.py) runs WORKFLOWS workflows of STEPS steps. Every step
appends ``"<workflow> <step> <pid>"`` to a side-effect file (fsync'd) before it returns,
and returns a value naming its pid. The parent kills the worker with SIGKILL at seeded
random moments (during start-up and recovery, or while steps run), KILLS times (at
least MIN_KILLS must hit a live worker), then lets a last worker finish. After every
worker's death the parent reads the database and keeps that snapshot: the worker is dead,
so nothing it wrote can still change (on Postgres, once the server has dropped its
sessions).

What is checked, per workflow and per worker incarnation ``i`` (snapshot before = after
incarnation ``i-1``, with ``c`` checkpointed steps):

* the checkpoints are always a prefix ``step_0 .. step_{c-1}`` that only grows, and a
  recorded step's output never changes; a SUCCESS workflow stays SUCCESS;
* incarnation ``i`` ran exactly the steps ``c, c+1, ...`` in order, each once: it never ran
  a step that was checkpointed before it started (the headline invariant), it resumed at
  the first unrecorded step, and it skipped nothing;
* when incarnation ``i`` ended, every step it ran was checkpointed, except at most the last
  one, and only if it was killed (that step was in flight: steps are at-least-once);
* at the end every workflow is SUCCESS with the output built from the checkpointed
  executions (the last pid to run each step), the side-effect file has exactly one line
  per step plus one per step that was in flight at a kill, and one more clean start runs
  nothing at all.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import attrs
import pytest

import durakit as dk
from tests.crash_worker import APP_NAME, step_output, workflow_id
from tests.proc_support import (
    Backend,
    open_backend,
    start_worker,
    tag_url,
    wait_for_line,
    wait_sessions_gone,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL"),
]

WORKFLOWS = 40
STEPS = 10
STEP_SECONDS = 0.15  # mean step duration: a run is ~1.5 s of steps, kills come sooner
KILLS = 8  # at least this many SIGKILLs of a live worker
MIN_KILLS = 5
SEED = 20240611
MAX_INCARNATIONS = KILLS + 6
LAUNCH_TIMEOUT = 30.0
FINISH_TIMEOUT = 30.0

Effect = tuple[str, int, int]  # (workflow_id, step, pid)


@attrs.frozen(kw_only=True)
class Snapshot:
    """The database as a dead worker left it."""

    statuses: dict[str, dk.StatusType]
    outputs: dict[str, Any]
    attempts: dict[str, int]
    steps: dict[str, list[tuple[int, str, Any]]]  # workflow -> [(step_id, name, output)]

    def recorded(self, wid: str) -> int:
        return len(self.steps.get(wid, []))


EMPTY = Snapshot(statuses={}, outputs={}, attempts={}, steps={})


@attrs.frozen(kw_only=True)
class Incarnation:
    """One worker process and how it ended."""

    number: int
    pid: int
    killed: bool
    kill_point: str  # "start-up", "running" or "none"
    after: Snapshot


# -- backends --------------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    with open_backend(request.param, tmp_path / "crash.db") as made:
        yield made


# -- running workers -------------------------------------------------------------------------
def _start_worker(
    backend: Backend, effects: Path, number: int, log: IO[bytes]
) -> subprocess.Popen[bytes]:
    url = backend.url
    if backend.postgres:
        url = tag_url(url, f"crash-worker-{number}")
    return start_worker(
        "crash_worker",
        [
            f"--db={url}",
            f"--schema={backend.schema}",
            f"--effects={effects}",
            f"--workflows={WORKFLOWS}",
            f"--steps={STEPS}",
            f"--step-seconds={STEP_SECONDS}",
            f"--seed={SEED + number}",
        ],
        stderr=log,
    )


def _wait_gone(backend: Backend, number: int) -> None:
    if backend.postgres:  # on SQLite a dead worker committed (or not) itself
        wait_sessions_gone(backend.url, f"crash-worker-{number}", 30.0, number)


def _snapshot(observer: dk.Durakit) -> Snapshot:
    rows = observer.list_workflows(workflow_id_prefix="crash-", load_input=False)
    return Snapshot(
        statuses={r.workflow_id: r.status for r in rows},
        outputs={r.workflow_id: r.output for r in rows},
        attempts={r.workflow_id: r.attempts for r in rows},
        steps={
            r.workflow_id: [
                (s.step_id, s.name, s.output) for s in observer.get_workflow_steps(r.workflow_id)
            ]
            for r in rows
        },
    )


def _all_done(snap: Snapshot) -> bool:
    wids = [workflow_id(i) for i in range(WORKFLOWS)]
    return all(snap.statuses.get(w) is dk.StatusType.SUCCESS for w in wids)


def _read_effects(path: Path) -> list[Effect]:
    effects: list[Effect] = []
    if not path.exists():
        return effects
    for number, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split(" ")
        assert len(parts) == 3, f"side-effect line {number} is torn: {line!r}"
        effects.append((parts[0], int(parts[1]), int(parts[2])))
    return effects


def _crash_and_restart(backend: Backend, tmp_path: Path) -> tuple[list[Incarnation], Path, bool]:
    """Kill and restart workers until every workflow is SUCCESS. Returns the workers,
    the side-effect file, and whether the last worker stalled (ran past FINISH_TIMEOUT:
    it is killed, and the invariants are checked on what it left, to say why)."""
    effects = tmp_path / "effects.txt"
    rng = random.Random(SEED)
    # The observer reads the database between workers. It launches (and so migrates the
    # schema) only after the first worker ended, so that a kill can hit a first migration.
    observer = dk.Durakit(
        dk.Config(
            app_name=APP_NAME,
            database_url=backend.url,
            database_schema=backend.schema,
            executor_id="crash-observer",  # recovers nothing: no workflow is its own
            application_version="observer",
        )
    )
    incarnations: list[Incarnation] = []
    stalled = False
    try:
        while not _all_done(incarnations[-1].after if incarnations else EMPTY):
            number = len(incarnations)
            assert number < MAX_INCARNATIONS, "the workflows did not finish after many restarts"
            kills = sum(i.killed for i in incarnations)
            log_path = tmp_path / f"worker-{number}.log"
            with log_path.open("wb") as log:
                proc = _start_worker(backend, effects, number, log)
                try:
                    if kills < KILLS:
                        # The first kill and a quarter of the others land anywhere from
                        # interpreter start-up through migration and recovery; the rest
                        # while steps run.
                        if rng.random() < 0.25 or number == 0:
                            kill_point, delay = "start-up", rng.uniform(0.0, 0.8)
                        else:
                            kill_point, delay = "running", rng.uniform(0.02, 0.3)
                            wait_for_line(proc, b"launched", log_path, LAUNCH_TIMEOUT)
                        time.sleep(delay)
                        proc.send_signal(signal.SIGKILL)
                        proc.wait()
                    else:
                        kill_point = "none"
                        try:
                            proc.wait(FINISH_TIMEOUT)
                        except subprocess.TimeoutExpired:
                            stalled = True
                finally:
                    if proc.poll() is None:
                        proc.kill()
                        proc.wait()
                    if proc.stdout is not None:
                        proc.stdout.close()
            killed = proc.returncode == -signal.SIGKILL and not stalled
            if not killed and not stalled:
                assert proc.returncode == 0, (
                    f"worker {number} failed (exit code {proc.returncode}):\n"
                    + log_path.read_text()
                )
                # durakit logs a workflow that stopped without an outcome, a store error, ...
                assert not log_path.read_text(), f"worker {number} logged:\n{log_path.read_text()}"
            _wait_gone(backend, number)
            observer.launch()  # once; later calls do nothing
            incarnations.append(
                Incarnation(
                    number=number,
                    pid=proc.pid,
                    killed=killed,
                    kill_point=kill_point if killed else "none",
                    after=_snapshot(observer),
                )
            )
            if stalled:
                break
    finally:
        observer.shutdown()
    return incarnations, effects, stalled


# -- the invariants ----------------------------------------------------------------------------
def _check_snapshot_growth(before: Snapshot, after: Snapshot, number: int) -> None:
    for wid, steps in after.steps.items():
        assert [s[0] for s in steps] == list(range(len(steps))), (
            f"{wid}: checkpoints are not a prefix after worker {number}: {steps}"
        )
        assert [s[1] for s in steps] == [f"step_{n}" for n in range(len(steps))]
        old = before.steps.get(wid, [])
        assert steps[: len(old)] == old, f"{wid}: a recorded checkpoint changed in worker {number}"
    for wid, status in before.statuses.items():
        assert wid in after.statuses, f"{wid} disappeared in worker {number}"
        if status is dk.StatusType.SUCCESS:
            assert after.statuses[wid] is dk.StatusType.SUCCESS
            assert after.outputs[wid] == before.outputs[wid], f"{wid} finished twice"


def _check(incarnations: list[Incarnation], effects: list[Effect]) -> int:
    """Assert every invariant; return the number of step re-executions (all explained)."""
    pids = {inc.pid: inc.number for inc in incarnations}
    assert len(pids) == len(incarnations), "a pid was reused; the attribution below needs them"
    ran: dict[tuple[str, int], list[int]] = defaultdict(list)  # (workflow, pid) -> steps
    for wid, step, pid in effects:
        assert pid in pids, f"side effect from an unknown process: {wid} {step} {pid}"
        ran[wid, pid].append(step)

    wids = [workflow_id(i) for i in range(WORKFLOWS)]
    reruns = 0
    before = EMPTY
    for inc in incarnations:
        after = inc.after
        _check_snapshot_growth(before, after, inc.number)
        for wid in wids:
            done = before.recorded(wid)
            steps = ran.get((wid, inc.pid), [])
            again = [n for n in steps if n < done]
            assert not again, (
                f"{wid}: worker {inc.number} ran checkpointed step(s) {again} again "
                f"({done} steps were recorded before it started)"
            )
            assert steps == list(range(done, done + len(steps))), (
                f"{wid}: worker {inc.number} should resume at step {done} and run the following "
                f"steps once each, in order; it ran {steps}"
            )
            if before.statuses.get(wid) is dk.StatusType.SUCCESS:
                assert not steps, f"{wid} ran steps {steps} after it had finished"
            unrecorded = [n for n in steps if n >= after.recorded(wid)]
            if inc.killed:
                assert unrecorded in ([], steps[-1:]), (
                    f"{wid}: worker {inc.number} was killed with steps {unrecorded} unrecorded; "
                    "only the one in flight may be"
                )
            else:
                assert not unrecorded, (
                    f"{wid}: worker {inc.number} exited normally but steps {unrecorded} "
                    "were not checkpointed"
                )
            reruns += len(unrecorded)
        before = after

    final = incarnations[-1].after
    lines: dict[tuple[str, int], list[int]] = defaultdict(list)  # (workflow, step) -> pids
    for wid, step, pid in effects:
        lines[wid, step].append(pid)
    for index, wid in enumerate(wids):
        assert final.statuses[wid] is dk.StatusType.SUCCESS
        expected = [step_output(index, n, lines[wid, n][-1]) for n in range(STEPS)]
        assert final.outputs[wid] == expected, f"{wid} has a wrong result"
        assert [s[2] for s in final.steps[wid]] == expected, f"{wid} has wrong checkpoints"
        assert final.attempts[wid] <= len(incarnations)
    assert len(effects) == WORKFLOWS * STEPS + reruns, (
        "the side effects are not one per step plus one per step in flight at a kill"
    )
    return reruns


# -- the test ----------------------------------------------------------------------------------
def test_sigkill_at_random_points_never_reruns_a_checkpointed_step(
    backend: Backend, tmp_path: Path
) -> None:
    started = time.monotonic()
    incarnations, effects_path, stalled = _crash_and_restart(backend, tmp_path)
    effects = _read_effects(effects_path)
    reruns = _check(incarnations, effects)
    assert not stalled, f"the last worker did not finish in {FINISH_TIMEOUT} s"

    kills = [inc for inc in incarnations if inc.killed]
    assert len(kills) >= MIN_KILLS, f"only {len(kills)} kills landed on a live worker"
    # The test must have exercised the interesting cases, not only killed idle workers.
    assert any(inc.kill_point == "running" for inc in kills)
    assert reruns > 0, "no kill caught a step between its side effect and its checkpoint"

    # One more start after everything finished: it recovers nothing and runs no step.
    lines_before = len(effects)
    log_path = tmp_path / "worker-final.log"
    with log_path.open("wb") as log:
        proc = _start_worker(backend, effects_path, len(incarnations), log)
        out, _ = proc.communicate(timeout=FINISH_TIMEOUT)
    assert proc.returncode == 0, log_path.read_text()
    assert not log_path.read_text(), log_path.read_text()
    assert out.split() == [b"launched", b"finished"]
    assert len(_read_effects(effects_path)) == lines_before, "a finished workflow ran again"

    print(
        f"\ncrash test ({backend.url.split(':')[0]}): {len(incarnations)} workers, "
        f"{len(kills)} SIGKILLs ({sum(k.kill_point == 'start-up' for k in kills)} during "
        f"start-up), {reruns} in-flight steps re-ran, {len(effects)} side effects, "
        f"{time.monotonic() - started:.1f} s"
    )
