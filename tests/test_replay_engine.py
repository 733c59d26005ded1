"""The replay properties of ``test_core_replay.py``, against the real execution code.

The core's replay test runs a tiny shell written inside the test; this one runs the
engine itself (``Durakit`` on a ``MemoryStore``). A generated workflow folds a list of
steps whose bodies draw a fresh number from an outside source on every call, as real
steps read clocks or databases, so only replaying recorded outcomes reproduces a result.
A crash is a real in-process one: the execution's step body blocks, the engine shuts
down with the workflow PENDING, and a new engine on the same store recovers it; at the
end the blocked bodies of the dead executions are released, and the late checkpoints of
these zombies must be refused.
"""

from __future__ import annotations

import itertools
import string
import threading
from collections import Counter

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import durakit as dk
from tests.helpers import WAIT, ThreadLog, new_app


class StepFailed(Exception):
    """A step body's own failure: an outcome to checkpoint and replay, like a value."""


@attrs.frozen
class StepSpec:
    name: str
    mul: int
    add: int
    may_fail: bool


@attrs.define
class World:
    """What outlives a crash: the outside world the step bodies touch."""

    entropy: itertools.count[int] = attrs.Factory(itertools.count)
    calls: Counter[int] = attrs.Factory(Counter)
    lock: threading.Lock = attrs.Factory(threading.Lock)

    def draw(self, position: int) -> int:
        with self.lock:
            self.calls[position] += 1
            return next(self.entropy)


@attrs.define
class Crash:
    """One execution that dies inside the body of step ``position``."""

    position: int
    entered: threading.Event = attrs.Factory(threading.Event)
    release: threading.Event = attrs.Factory(threading.Event)
    zombies: ThreadLog = attrs.Factory(ThreadLog)


Fold = dk.Workflow[list[StepSpec], int]


def step_value(spec: StepSpec, acc: int, noise: int) -> int:
    if spec.may_fail and (acc + noise) % 2 == 0:
        raise StepFailed(f"{spec.name} failed on {acc + noise}")
    return acc * spec.mul + spec.add + noise


def after_failure(acc: int, error: StepFailed) -> int:
    return -acc + len(str(error))


def register(
    app: dk.Durakit, world: World, crash: Crash | None
) -> dk.Workflow[list[StepSpec], int]:
    """The workflow, as this execution's code: identical but for where it dies."""

    @app.workflow(name="fold")
    def fold(ctx: dk.Context, program: list[StepSpec]) -> int:
        acc = 1
        for position, spec in enumerate(program):

            def body(position: int = position, spec: StepSpec = spec, acc: int = acc) -> int:
                noise = world.draw(position)
                if crash is not None and crash.position == position:
                    crash.zombies.here()
                    crash.entered.set()
                    crash.release.wait()  # the process is dead from here on: a zombie
                return step_value(spec, acc, noise)

            try:
                acc = ctx.run_step(body, name=spec.name)
            except StepFailed as exc:
                acc = after_failure(acc, exc)
        return acc

    return fold


def fold_recorded(program: list[StepSpec], steps: list[dk.StepInfo]) -> int:
    """The result that the recorded outcomes imply, folded as the workflow folds them."""
    acc = 1
    for spec, step in zip(program, steps, strict=True):
        assert step.name == spec.name
        if step.error is not None:
            assert isinstance(step.error, StepFailed)  # replayed as itself
            acc = after_failure(acc, step.error)
        else:
            assert isinstance(step.output, int)
            acc = step.output
    return acc


NAME = st.text(alphabet=string.ascii_letters + "_", min_size=1, max_size=8)
STEP = st.builds(
    StepSpec, name=NAME, mul=st.integers(-3, 3), add=st.integers(-100, 100), may_fail=st.booleans()
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(program=st.lists(STEP, max_size=6), data=st.data())
def test_crashes_anywhere_then_recovery_equal_an_uninterrupted_fold(
    program: list[StepSpec], data: st.DataObject
) -> None:
    # Each crash dies in a body at or after the previous one's position (a recovered
    # execution replays what was recorded without running those bodies).
    positions = (
        sorted(data.draw(st.lists(st.integers(0, len(program) - 1), max_size=3), label="crashes"))
        if program
        else []
    )
    crashes = [Crash(p) for p in positions]
    world = World()
    store = dk.MemoryStore()
    handles: list[dk.WorkflowHandle[int]] = []
    try:
        for crash in crashes:
            app = new_app(store)
            fold = register(app, world, crash)
            app.launch()  # recovers the previous execution's PENDING workflow
            if not handles:
                handles.append(app.run_workflow(fold, program, workflow_id="wf"))
            assert crash.entered.wait(WAIT)
            app.shutdown(timeout=0.05)  # the body is still blocked: it stays PENDING
            assert store.get_workflow("wf").status is dk.StatusType.PENDING  # type: ignore[union-attr]
        survivor = new_app(store)
        fold = register(survivor, world, None)
        with survivor:
            handle = survivor.run_workflow(fold, program, workflow_id="wf")
            result = handle.get_result(timeout=WAIT)
            steps = survivor.get_workflow_steps("wf")
            status = handle.get_status()
        recorded, row = store.load_steps("wf"), store.get_workflow("wf")
        # The zombies wake up and try to checkpoint (and to finish): all refused.
        for crash in crashes:
            crash.release.set()
            crash.zombies.join_all()
        assert store.load_steps("wf") == recorded
        assert store.get_workflow("wf") == row
    finally:
        for crash in crashes:
            crash.release.set()

    assert result == fold_recorded(program, steps)
    assert [s.step_id for s in steps] == list(range(len(program)))
    assert status.status is dk.StatusType.SUCCESS
    assert status.attempts == 1 + len(crashes)
    # Each body ran once, and once more for every execution that died inside it (steps
    # are at-least-once; a checkpointed one never runs again).
    assert world.calls == Counter(range(len(program))) + Counter(positions)
    for earlier in handles:
        assert earlier.get_result(timeout=WAIT) == result
