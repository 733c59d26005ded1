"""Running executions: one thread per execution, its body, and its recorded outcome.

A mixin of the engine (``Durakit``); the attributes it uses are set up there.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, cast

from durakit.api.clock import Clock, TracksWorkflows, now_ms
from durakit.api.config import Config
from durakit.api.deadlines import DeadlineWatcher
from durakit.api.execution import WorkflowContext
from durakit.api.handle import EngineHandle, Outcome
from durakit.api.management import Control
from durakit.api.observability import Observer, observe_execution, observe_finish
from durakit.api.registry import Registry, WorkflowDef
from durakit.api.serialization import Serializer
from durakit.api.waiting import CURRENT, WakeHub
from durakit.backends.health import StoreHealth
from durakit.backends.protocol import ReportsHealth
from durakit.core.errors import StoreUnavailableError, StoreUnavailableSignal, WorkflowInterrupted
from durakit.core.records import StepRecord, WorkflowRecord, WriteResult
from durakit.core.status import StatusType, WorkflowEvent
from durakit.core.transitions import plan_finish

if TYPE_CHECKING:
    from durakit.api.engine import Durakit

Logger = logging.Logger

_SLOTS = "slots"  # hub key: a max_concurrent_workflows slot was freed


class EngineStopped(WorkflowInterrupted):
    """The engine shut down while this execution ran: it stops, leaving the workflow
    PENDING for the next launch to recover."""

    def __init__(self, workflow_id: str) -> None:
        super().__init__(workflow_id, "engine shut down")


class Runner(Control):
    """Starts execution threads and records what their bodies return or raise."""

    config: Config
    registry: Registry
    serializer: Serializer
    hub: WakeHub
    clock: Clock
    log: Logger
    observer: Observer
    executor_id: str
    application_version: str
    _lock: threading.Lock
    _active: dict[str, tuple[WorkflowContext, Outcome]]
    _threads: set[threading.Thread]
    _stopping: bool
    _slots: threading.BoundedSemaphore | None
    _deadlines: DeadlineWatcher
    _launched: bool
    _tracker: TracksWorkflows | None
    _finishing: set[WorkflowContext]

    def _recover_later(self, workflow_id: str, first_delay: float = 0.5) -> None:
        raise NotImplementedError

    _own_health: StoreHealth | None = None  # for a store that keeps no health itself

    def _store_health(self) -> StoreHealth:
        """The up/down tracker outages of this engine's store are logged by."""
        store = self.store
        if isinstance(store, ReportsHealth):
            return store.health
        if self._own_health is None:
            # Told only of pauses (confirmed) and of recoveries: no flapping to smooth.
            self._own_health = StoreHealth(f"the store {store!r}", self.log, grace_s=0.0)
        return self._own_health

    # -- executing ---------------------------------------------------------------------
    def _spawn(
        self, defn: WorkflowDef, record: WorkflowRecord, owner: str, recorded: list[StepRecord]
    ) -> EngineHandle[Any]:
        # Runner is only ever the engine's base class: the context gets the engine.
        ctx = WorkflowContext(cast("Durakit", self), defn, record, owner, recorded)
        outcome = Outcome()
        thread = threading.Thread(
            target=self._execute,
            args=(ctx, record, outcome),
            name=f"durakit-{record.workflow_id}",
            daemon=True,
        )
        with self._lock:
            self._active[record.workflow_id] = (ctx, outcome)
            self._threads.add(thread)
        if self._tracker is not None:
            self._tracker.workflow_started()
        if record.deadline_ms is not None:
            self._deadlines.watch(record.workflow_id, record.deadline_ms / 1000)
        thread.start()
        return EngineHandle(self, record.workflow_id, defn.output_type, outcome)

    def _execute(self, ctx: WorkflowContext, record: WorkflowRecord, outcome: Outcome) -> None:
        wid = ctx.workflow_id
        token = CURRENT.set(ctx)
        try:
            self._take_slot()
            try:
                self._run_body(ctx, record, outcome)
            finally:
                if self._slots is not None:
                    self._slots.release()
                    self.hub.notify(_SLOTS)
        except (StoreUnavailableSignal, StoreUnavailableError) as exc:
            outcome.set_unknown()
            if not self._stopping:
                # One warning per outage (the store's health), not one per workflow.
                cause = exc if isinstance(exc, StoreUnavailableError) else exc.__cause__
                self._store_health().down(str(cause or exc), confirmed=True)
                self.log.debug("workflow %s paused: the store is unavailable", wid)
                self._recover_later(wid)
        except WorkflowInterrupted:
            outcome.set_unknown()
        except BaseException:  # noqa: BLE001 - logged with its traceback by the observer
            # A store failure while stopping (or a bug): leave the row PENDING for
            # recovery rather than record an outcome we are unsure of.
            if not self._stopping:
                self.observer.stopped_without_outcome(ctx)
            outcome.set_unknown()
        finally:
            if not outcome.done.is_set():
                outcome.set_unknown()
            with self._lock:
                # A resume may have started a newer execution of this workflow while
                # this one was still inside a step: leave its entry (and deadline) alone.
                current = self._active.get(wid)
                ours = current is not None and current[0] is ctx
                if ours:
                    del self._active[wid]
                self._threads.discard(threading.current_thread())
                self._finishing.discard(ctx)
                # Stopped by a shutdown, but the engine was launched again before this
                # thread ended (a step outlasted the shutdown's wait): that launch's
                # recovery skipped the workflow as still running here, so nobody else
                # will resume it. Read under the lock that recovery's check takes.
                orphaned = (
                    ours
                    and not outcome.known
                    and isinstance(ctx.interrupt, EngineStopped)
                    and self._launched
                )
            if ours:
                self._deadlines.unwatch(wid)
            self.hub.notify(f"wf:{wid}")
            if record.queue_name is not None:
                self.hub.notify(f"q:{record.queue_name}")  # a slot of its queue is free
            CURRENT.reset(token)
            if self._tracker is not None:
                self._tracker.workflow_finished()
            if orphaned:
                self._recover_later(wid, first_delay=0.0)

    def _take_slot(self) -> None:
        """Wait for a free slot under ``max_concurrent_workflows``, through the clock,
        so a fake clock sees a queued workflow as waiting rather than busy."""
        if self._slots is None:
            return
        with self.hub.listening(_SLOTS) as freed:
            while not self._slots.acquire(blocking=False):
                self.clock.wait(freed, None, poll=1.0)
                freed.clear()

    @observe_execution
    def _run_body(self, ctx: WorkflowContext, record: WorkflowRecord, outcome: Outcome) -> None:
        defn = ctx.defn
        ser = self.serializer
        try:
            ctx.check_interrupt()
            if defn.takes_input:
                value = ser.loads(
                    record.input or ser.dumps(None),
                    defn.input_type,
                    what=f"input of workflow {defn.name!r}",
                )
                result = defn.fn(ctx, value)
            else:
                result = defn.fn(ctx)
            text, live = ser.roundtrip(
                result, defn.output_type, what=f"output of workflow {defn.name!r}"
            )
        except Exception as exc:  # noqa: BLE001 - the workflow's error is its outcome
            self._finish(ctx, StatusType.ERROR, None, exc, outcome)
            return
        self._finish(ctx, StatusType.SUCCESS, text, live, outcome)

    @observe_finish
    def _finish(
        self,
        ctx: WorkflowContext,
        status: StatusType,
        output: str | None,
        value: Any,
        outcome: Outcome,
    ) -> None:
        error_text = None
        if status is StatusType.ERROR:
            # Awaiting the result here raises what any other process would rebuild.
            error_text, value = self.serializer.roundtrip_error(value)
        self._finishing.add(ctx)
        event = WorkflowEvent.FAIL if status is StatusType.ERROR else WorkflowEvent.COMPLETE
        update = plan_finish(
            event,
            owner=ctx.fence.owner,
            output=output,
            error=error_text,
            now_ms=now_ms(self.clock),
        )
        verdict = self.store.finish_workflow(ctx.fence, update)
        if verdict is not WriteResult.OK:
            outcome.set_unknown()  # cancelled or taken over meanwhile: the store knows
        elif status is StatusType.ERROR:
            outcome.set_error(value)
        else:
            outcome.set_value(value)
