"""Cron schedules: one workflow per tick, the tick as input, exactly once across
executors, nothing for ticks that passed while no engine ran, bad schedules refused."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

import durakit as dk
from durakit.testing import FakeClock
from tests.conftest import StoreFactory
from tests.helpers import WAIT, Counts, new_app, wait_until
from tests.proc_support import open_backend, start_worker

T0 = datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)


def register(app: dk.Durakit, counts: Counts) -> dk.Workflow[datetime, str]:
    @app.workflow(name="report", schedule="*/5 * * * * *")
    def report(ctx: dk.Context, tick: datetime) -> str:
        counts.bump(tick.isoformat())
        return ctx.run_step(lambda: f"report of {tick.isoformat()}", name="build")

    return report


def sched_id(second: int) -> str:
    return f"sched-report-2026-01-01T00:00:{second:02d}+00:00"


def finished(app: dk.Durakit) -> dict[str, object]:
    done = app.list_workflows(name="report", status=dk.StatusType.SUCCESS)
    return {s.workflow_id: s.output for s in done}


def test_each_tick_starts_one_workflow_with_the_tick_as_input(
    store_factory: StoreFactory,
) -> None:
    clock = FakeClock(T0, auto_advance=False)
    counts = Counts()
    app = new_app(store_factory(), clock=clock)
    register(app, counts)
    with app:
        assert finished(app) == {}
        clock.advance(4)  # 00:00:05, the first tick after the launch
        wait_until(lambda: len(finished(app)) == 1)
        clock.advance(10)  # 00:00:15: the ticks of :10 and :15, in order
        wait_until(lambda: len(finished(app)) == 3)
        assert finished(app) == {
            sched_id(s): f"report of 2026-01-01T00:00:{s:02d}+00:00" for s in (5, 10, 15)
        }
        status = app.get_workflow_status(sched_id(10))
        assert status.input == T0.replace(second=10)
    assert counts.as_dict() == {f"2026-01-01T00:00:{s:02d}+00:00": 1 for s in (5, 10, 15)}


def test_two_executors_start_each_tick_once(store_factory: StoreFactory) -> None:
    clock = FakeClock(T0, auto_advance=False)
    counts = Counts()
    a = new_app(store_factory(), clock=clock, executor_id="a")
    b = new_app(store_factory(), clock=clock, executor_id="b")
    register(a, counts)
    register(b, counts)
    with a, b:
        clock.advance(19)  # 00:00:20: ticks :05, :10, :15, :20
        wait_until(lambda: len(finished(a)) == 4)
    assert counts.as_dict() == {f"2026-01-01T00:00:{s:02d}+00:00": 1 for s in (5, 10, 15, 20)}


def test_ticks_while_no_engine_ran_are_not_run(store_factory: StoreFactory) -> None:
    clock = FakeClock(T0, auto_advance=False)
    counts = Counts()
    store = store_factory()
    first = new_app(store, clock=clock)
    register(first, counts)
    with first:
        clock.advance(4)
        wait_until(lambda: len(finished(first)) == 1)
    clock.advance(60)  # 00:01:05: twelve ticks pass with no engine
    second = new_app(store, clock=clock)
    register(second, counts)
    with second:
        clock.advance(5)  # 00:01:10
        wait_until(lambda: len(finished(second)) == 2)
        assert sorted(finished(second)) == [
            "sched-report-2026-01-01T00:00:05+00:00",
            "sched-report-2026-01-01T00:01:10+00:00",
        ]


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("every five seconds", "cron expression"),
        ("* * * * * * * *", "cron expression"),
        ("", "cron expression"),
    ],
)
def test_a_bad_cron_expression_is_refused_at_registration(schedule: str, message: str) -> None:
    app = new_app(dk.MemoryStore())

    def tick(ctx: dk.Context, at: datetime) -> None:
        pass

    with pytest.raises(dk.ConflictingRegistrationError, match=message):
        app.register_workflow(tick, name="tick", schedule=schedule)


def test_a_scheduled_workflow_must_take_the_tick() -> None:
    app = new_app(dk.MemoryStore())

    def no_input(ctx: dk.Context) -> None:
        pass

    def wrong_input(ctx: dk.Context, n: int) -> None:
        pass

    for fn in (no_input, wrong_input):
        with pytest.raises(dk.ConflictingRegistrationError, match="tick: datetime"):
            app.register_workflow(fn, name=fn.__name__, schedule="* * * * * *")


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_executors_in_separate_processes_run_each_tick_once(kind: str, tmp_path: Path) -> None:
    effects = tmp_path / "effects.txt"
    with open_backend(kind, tmp_path / "sched.db") as backend:
        logs = [(tmp_path / f"w{i}.log").open("wb") for i in range(3)]
        workers = [
            start_worker(
                "schedule_worker",
                [
                    f"--db={backend.url}",
                    f"--schema={backend.schema}",
                    f"--effects={effects}",
                    f"--executor=exec-{i}",
                    "--seconds=4",
                ],
                stderr=logs[i],
            )
            for i in range(3)
        ]
        try:
            codes = [w.wait(WAIT + 20) for w in workers]
        finally:
            for w, log in zip(workers, logs, strict=True):
                if w.poll() is None:
                    w.kill()
                    w.wait()
                if w.stdout is not None:
                    w.stdout.close()
                log.close()
        assert codes == [0, 0, 0], [(tmp_path / f"w{i}.log").read_text()[-2000:] for i in range(3)]
        lines = effects.read_text().splitlines()
        ticks = Counter(line.split(" ")[0] for line in lines)
        # Three executors ran the schedule for ~4 s: several ticks, each body run once.
        assert len(ticks) >= 2, lines
        assert set(ticks.values()) == {1}, ticks
        with dk.Client(backend.url, backend.schema) as client:
            runs = client.list_workflows(name="every_second")
        assert sorted(r.workflow_id for r in runs) == sorted(
            f"sched-every_second-{tick}" for tick in ticks
        )
        assert {r.status for r in runs} <= {dk.StatusType.SUCCESS, dk.StatusType.PENDING}
