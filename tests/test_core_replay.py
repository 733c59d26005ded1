"""Properties of the replay decision (``durakit.core.replay.decide_step``).

A workflow is modelled as a list of steps; a tiny shell below runs it the way the engine
does (ask ``decide_step`` at each position, run the body only on ``Execute``, checkpoint
the outcome) against a checkpoint log that survives simulated crashes. Step bodies draw
a fresh number from an outside source on every call, the way real steps read clocks,
databases or random numbers: replay can only reproduce the uninterrupted result if it
returns recorded outcomes instead of running bodies again.
"""

from __future__ import annotations

import collections
import itertools
import json
import re
import string

import attrs
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from durakit.core.errors import ErrorCode, UnexpectedStepError
from durakit.core.records import StepRecord
from durakit.core.replay import EXECUTE, Execute, Replay, decide_step


class Crash(Exception):
    """The simulated process died here."""


class StepFailed(Exception):
    """A step body's own failure: an outcome to checkpoint, like a return value."""


@attrs.frozen
class StepSpec:
    name: str
    mul: int
    add: int
    may_fail: bool


@attrs.define
class World:
    """What outlives a crash: the checkpoint log and the outside world."""

    log: dict[int, StepRecord] = attrs.Factory(dict)
    calls: collections.Counter[int] = attrs.Factory(collections.Counter)
    entropy: itertools.count[int] = attrs.Factory(itertools.count)


def body(spec: StepSpec, acc: int, world: World) -> int:
    """A step's side effect: not a function of its input alone (it reads ``entropy``)."""
    noise = next(world.entropy)
    if spec.may_fail and (acc + noise) % 2 == 0:
        raise StepFailed(f"{spec.name} failed on {acc + noise}")
    return acc * spec.mul + spec.add + noise


def run_step(
    workflow_id: str,
    step_id: int,
    spec: StepSpec,
    acc: int,
    world: World,
    *,
    crash_before_checkpoint: bool,
) -> int:
    """The shell around one step: replay or execute, then checkpoint."""
    decision = decide_step(workflow_id, step_id, spec.name, world.log.get(step_id))
    if isinstance(decision, Replay):
        record = decision.record
        if record.error is not None:
            raise StepFailed(record.error)
        assert record.output is not None
        value: int = json.loads(record.output)
        return value
    assert decision is EXECUTE
    world.calls[step_id] += 1
    try:
        value = body(spec, acc, world)
    except StepFailed as exc:
        record = StepRecord(step_id=step_id, name=spec.name, error=str(exc))
    else:
        record = StepRecord(step_id=step_id, name=spec.name, output=json.dumps(value))
    if crash_before_checkpoint:
        raise Crash  # the body ran, its outcome is lost
    assert step_id not in world.log
    world.log[step_id] = record
    if record.error is not None:
        raise StepFailed(record.error)
    return value


def run_workflow(
    workflow_id: str,
    program: list[StepSpec],
    world: World,
    *,
    crash_at: int | None = None,
    crash_before_checkpoint: bool = False,
) -> int:
    """The workflow body: fold the steps, handling step failures in workflow code.

    With ``crash_at=k`` the process dies on reaching step k: before deciding about it, or
    (``crash_before_checkpoint``) after its body ran but before its checkpoint was written.
    """
    acc = 1
    for step_id, spec in enumerate(program):
        if step_id == crash_at and not crash_before_checkpoint:
            raise Crash
        try:
            acc = run_step(
                workflow_id, step_id, spec, acc, world, crash_before_checkpoint=step_id == crash_at
            )
        except StepFailed as exc:
            acc = -acc + len(str(exc))
    return acc


def run_until_done(workflow_id: str, program: list[StepSpec], world: World) -> int:
    """Recovery: start again from the log until the workflow finishes."""
    return run_workflow(workflow_id, program, world)


# -- strategies --------------------------------------------------------------------------

NAME = st.text(alphabet=string.ascii_letters + "_", min_size=1, max_size=8)
WORKFLOW_ID = st.text(alphabet=string.ascii_lowercase + "-", min_size=1, max_size=12)
STEP = st.builds(
    StepSpec,
    name=NAME,
    mul=st.integers(-3, 3),
    add=st.integers(-100, 100),
    may_fail=st.booleans(),
)
PROGRAM = st.lists(STEP, max_size=12)


def uninterrupted(workflow_id: str, program: list[StepSpec]) -> tuple[int, World]:
    world = World()
    return run_workflow(workflow_id, program, world), world


# -- crash and replay --------------------------------------------------------------------


@given(workflow_id=WORKFLOW_ID, program=PROGRAM, data=st.data())
def test_crash_after_k_steps_then_replay_equals_uninterrupted_run(
    workflow_id: str, program: list[StepSpec], data: st.DataObject
) -> None:
    k = data.draw(st.integers(0, len(program)), label="k")
    expected, clean = uninterrupted(workflow_id, program)

    world = World()
    if k < len(program):
        with pytest.raises(Crash):
            run_workflow(workflow_id, program, world, crash_at=k)
        assert sorted(world.log) == list(range(k))
    assert run_until_done(workflow_id, program, world) == expected
    assert world.log == clean.log
    # Every body ran exactly once: the k checkpointed steps were never run again.
    assert world.calls == collections.Counter(range(len(program)))


@given(
    workflow_id=WORKFLOW_ID,
    program=PROGRAM,
    crash_points=st.lists(st.integers(0, 12), max_size=6),
)
def test_any_number_of_crashes_still_runs_each_body_once(
    workflow_id: str, program: list[StepSpec], crash_points: list[int]
) -> None:
    expected, clean = uninterrupted(workflow_id, program)
    world = World()
    for point in crash_points:
        # A crash point already behind the log dies during replay, having run nothing.
        try:
            run_workflow(workflow_id, program, world, crash_at=point)
        except Crash:
            assert point < len(program)
        else:
            assert point >= len(program)
    assert run_until_done(workflow_id, program, world) == expected
    assert world.log == clean.log
    assert world.calls == collections.Counter(range(len(program)))


@given(workflow_id=WORKFLOW_ID, program=PROGRAM.filter(bool), data=st.data())
def test_crash_between_body_and_checkpoint_reruns_only_that_step(
    workflow_id: str, program: list[StepSpec], data: st.DataObject
) -> None:
    # Steps are at-least-once: a body whose checkpoint was not written runs again, and
    # it is the only one; everything checkpointed before it is replayed.
    k = data.draw(st.integers(0, len(program) - 1), label="k")
    world = World()
    with pytest.raises(Crash):
        run_workflow(workflow_id, program, world, crash_at=k, crash_before_checkpoint=True)
    assert sorted(world.log) == list(range(k))
    result = run_until_done(workflow_id, program, world)

    expected_calls = collections.Counter(range(len(program)))
    expected_calls[k] += 1
    assert world.calls == expected_calls
    # The result is the one the checkpoints describe: replaying them again agrees and
    # runs nothing.
    before = world.calls.copy()
    assert run_until_done(workflow_id, program, world) == result
    assert world.calls == before


@given(workflow_id=WORKFLOW_ID, program=PROGRAM)
def test_a_finished_workflow_replays_without_running_anything(
    workflow_id: str, program: list[StepSpec]
) -> None:
    expected, world = uninterrupted(workflow_id, program)
    log = dict(world.log)
    calls = world.calls.copy()
    assert run_until_done(workflow_id, program, world) == expected
    assert world.calls == calls
    assert world.log == log


def test_the_model_would_notice_a_replay_that_reruns_bodies() -> None:
    # Guard on the model itself: were recorded steps executed again, the entropy they
    # draw would change the result. Without that, the tests above would prove nothing.
    program = [StepSpec(name=n, mul=2, add=1, may_fail=False) for n in "abc"]
    expected, _ = uninterrupted("wf", program)
    world = World()
    with pytest.raises(Crash):
        run_workflow("wf", program, world, crash_at=2)
    world.log.clear()  # "replay" that ignores the checkpoints
    assert run_workflow("wf", program, world) != expected


# -- non-determinism ----------------------------------------------------------------------


def assert_message_names(err: UnexpectedStepError, step_id: int) -> None:
    message = str(err)
    assert err.workflow_id is not None
    assert err.workflow_id in message
    assert err.recorded_name is not None
    assert err.recorded_name in message
    assert err.expected_name is not None
    assert err.expected_name in message
    assert re.search(rf"\b{step_id}\b", message)


@given(workflow_id=WORKFLOW_ID, program=PROGRAM.filter(bool), data=st.data())
def test_a_renamed_step_is_caught_at_the_first_divergent_step(
    workflow_id: str, program: list[StepSpec], data: st.DataObject
) -> None:
    n = len(program)
    k = data.draw(st.integers(1, n), label="recorded steps")
    first = data.draw(st.integers(0, k - 1), label="first renamed position")
    later = data.draw(st.sets(st.integers(first, n - 1)), label="other renamed positions")
    renamed = {first} | later
    world = World()
    try:
        run_workflow(workflow_id, program, world, crash_at=k)
    except Crash:
        assert k < n
    changed = [
        attrs.evolve(spec, name=spec.name + "_v2") if i in renamed else spec
        for i, spec in enumerate(program)
    ]
    calls = world.calls.copy()
    log = dict(world.log)

    j = first
    with pytest.raises(UnexpectedStepError) as info:
        run_workflow(workflow_id, changed, world)
    err = info.value
    assert err.code is ErrorCode.UNEXPECTED_STEP
    assert err.workflow_id == workflow_id
    assert err.step_id == j
    assert err.recorded_name == program[j].name
    assert err.expected_name == changed[j].name
    assert_message_names(err, j)
    # Caught before anything ran or was written: not the divergent body, nor any other.
    assert world.calls == calls
    assert world.log == log


@given(workflow_id=WORKFLOW_ID, program=PROGRAM, changed=PROGRAM, data=st.data())
def test_any_edit_is_caught_exactly_where_names_first_differ_in_the_log(
    workflow_id: str, program: list[StepSpec], changed: list[StepSpec], data: st.DataObject
) -> None:
    # Insertions, deletions and renames all show up as the first recorded position whose
    # name differs; edits past the end of the log are not divergence (nothing recorded).
    k = data.draw(st.integers(0, len(program)), label="recorded steps")
    world = World()
    try:
        run_workflow(workflow_id, program, world, crash_at=k)
    except Crash:
        assert k < len(program)
    recorded = [world.log[i].name for i in range(k)]
    divergent = [i for i in range(min(k, len(changed))) if changed[i].name != recorded[i]]
    if not divergent:
        run_workflow(workflow_id, changed, world)
        assert len(world.log) == max(k, len(changed))
        return
    j = divergent[0]
    with pytest.raises(UnexpectedStepError) as info:
        run_workflow(workflow_id, changed, world)
    assert (info.value.step_id, info.value.recorded_name, info.value.expected_name) == (
        j,
        recorded[j],
        changed[j].name,
    )


@given(workflow_id=WORKFLOW_ID, program=PROGRAM.filter(lambda p: len(p) >= 2), data=st.data())
def test_renaming_a_step_not_yet_recorded_is_not_divergence(
    workflow_id: str, program: list[StepSpec], data: st.DataObject
) -> None:
    n = len(program)
    k = data.draw(st.integers(0, n - 1), label="recorded steps")
    j = data.draw(st.integers(k, n - 1), label="renamed position")
    world = World()
    with pytest.raises(Crash):
        run_workflow(workflow_id, program, world, crash_at=k)
    changed = list(program)
    changed[j] = attrs.evolve(program[j], name=program[j].name + "_v2")
    run_until_done(workflow_id, changed, world)
    assert world.log[j].name == changed[j].name
    assert world.calls == collections.Counter(range(n))


# -- decide_step itself --------------------------------------------------------------------


@given(workflow_id=WORKFLOW_ID, step_id=st.integers(0, 10_000), name=NAME)
def test_nothing_recorded_means_execute(workflow_id: str, step_id: int, name: str) -> None:
    decision = decide_step(workflow_id, step_id, name, None)
    assert decision is EXECUTE
    assert isinstance(decision, Execute)


@given(
    workflow_id=WORKFLOW_ID,
    step_id=st.integers(0, 10_000),
    name=NAME,
    output=st.none() | st.text(),
    error=st.none() | st.text(),
)
def test_same_name_replays_the_record_as_is(
    workflow_id: str, step_id: int, name: str, output: str | None, error: str | None
) -> None:
    record = StepRecord(step_id=step_id, name=name, output=output, error=error)
    decision = decide_step(workflow_id, step_id, name, record)
    assert isinstance(decision, Replay)
    assert decision.record is record


@given(
    workflow_id=WORKFLOW_ID,
    step_id=st.integers(0, 10_000),
    recorded_name=NAME,
    requested_name=NAME,
)
def test_another_name_raises_with_every_field(
    workflow_id: str, step_id: int, recorded_name: str, requested_name: str
) -> None:
    assume(recorded_name != requested_name)
    record = StepRecord(step_id=step_id, name=recorded_name, output="1")
    with pytest.raises(UnexpectedStepError) as info:
        decide_step(workflow_id, step_id, requested_name, record)
    err = info.value
    assert err.fields() == {
        "workflow_id": workflow_id,
        "step_name": requested_name,
        "step_id": step_id,
        "expected_name": requested_name,
        "recorded_name": recorded_name,
    }
    assert_message_names(err, step_id)
