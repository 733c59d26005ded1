"""Cron schedules: ``@app.workflow(schedule="*/5 * * * * *")``.

Each launched engine runs one scheduler thread for the scheduled workflows it
registered. At every tick it starts the workflow with the ID
``sched-<workflow name>-<tick in ISO 8601>`` and the tick (an aware UTC datetime) as its
input. Workflow IDs are unique, so when several executors run the same schedule,
exactly one of them creates each tick's workflow and the others get a handle on it.
Ticks are counted from the launch: ticks that passed while no engine ran are not run.
Time is the engine's clock, so a ``FakeClock`` drives schedules in tests.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from croniter import croniter

from durakit.api.background import BackgroundThread
from durakit.api.clock import Clock
from durakit.core.errors import ConflictingRegistrationError


def check_cron(workflow_name: str, cron: object) -> str:
    """``cron`` if it is a valid expression (six fields with seconds first, or five),
    else ConflictingRegistrationError naming the workflow and the expression."""
    if not isinstance(cron, str) or not croniter.is_valid(cron, second_at_beginning=True):
        raise ConflictingRegistrationError(
            f"workflow {workflow_name!r}: schedule must be a cron expression (six fields, "
            f"seconds first, e.g. '*/5 * * * * *', or five fields), got {cron!r}"
        )
    return cron


def next_tick(cron: str, after: datetime) -> datetime:
    """The first tick of ``cron`` strictly after ``after`` (aware, UTC)."""
    tick: datetime = croniter(cron, after, second_at_beginning=True).get_next(datetime)
    return tick.astimezone(UTC)


def schedule_workflow_id(name: str, tick: datetime) -> str:
    return f"sched-{name}-{tick.isoformat()}"


class Scheduler(BackgroundThread):
    """One thread that starts each scheduled workflow at each of its ticks."""

    def __init__(
        self,
        schedules: Sequence[tuple[str, str]],
        start: Callable[[str, datetime], None],
        clock: Clock,
        log: logging.Logger,
    ) -> None:
        """``schedules``: (workflow name, cron) pairs; ``start(name, tick)`` starts one."""
        self._schedules = list(schedules)
        self._start = start
        self._clock = clock
        self._log = log
        super().__init__("durakit-scheduler")

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.now(), UTC)

    def _run(self) -> None:
        launched = self._now()
        due = {name: next_tick(cron, launched) for name, cron in self._schedules}
        crons = dict(self._schedules)
        while not self._stop.is_set():
            earliest = min(due.values())
            if self._clock.wait(self._stop, earliest.timestamp()):
                return  # stopped
            now = self._now()
            for name in sorted(due):
                # Every tick that has come, in order: the engine ran through all of them.
                while due[name] <= now and not self._stop.is_set():
                    self._fire(name, due[name])
                    due[name] = next_tick(crons[name], due[name])

    def _fire(self, name: str, tick: datetime) -> None:
        try:
            self._start(name, tick)
        except Exception:  # noqa: BLE001 - one failed start must not end the schedule
            self._log.warning(
                "schedule of %r: could not start the workflow of tick %s",
                name,
                tick.isoformat(),
                exc_info=True,
            )
