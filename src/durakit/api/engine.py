"""``Durakit``: the engine. Registers workflows, starts and recovers executions, and
answers management calls. No global state: every engine owns its registry and store."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, overload

from durakit.api.clock import Clock, TracksWorkflows, now_ms
from durakit.api.config import Config
from durakit.api.context import Context
from durakit.api.deadlines import DeadlineWatcher
from durakit.api.execution import CURRENT, WorkflowContext
from durakit.api.handle import EngineHandle, Outcome, WorkflowHandle, seconds
from durakit.api.management import Control
from durakit.api.registry import Registry, WorkflowDef
from durakit.api.serialization import Serializer
from durakit.api.validation import check_text
from durakit.api.waiting import WakeHub
from durakit.backends.protocol import PushNotifications, SystemStore
from durakit.core.errors import (
    ConflictingWorkflowError,
    InitializationError,
    StoreUnavailableError,
    StoreUnavailableSignal,
    WorkflowCancelledSignal,
    WorkflowExecutionError,
    WorkflowInterrupted,
)
from durakit.core.records import NewWorkflow, StepRecord, WorkflowQuery, WorkflowRecord, WriteResult
from durakit.core.retry import should_dead_letter
from durakit.core.status import StatusType, WorkflowEvent, sources, transition

if TYPE_CHECKING:
    from logging import Logger

_SLOTS = "slots"  # hub key: a max_concurrent_workflows slot was freed

R = TypeVar("R")
P = TypeVar("P")
F = TypeVar("F", bound=Callable[..., Any])


class Durakit(Control):
    """A durable-workflow engine bound to one store. Use ``with app:`` or launch/shutdown."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.registry = Registry()
        self.serializer = Serializer()
        self.hub = WakeHub()
        self.clock: Clock = config.clock
        self.log: Logger = config.resolved_logger()
        self.executor_id = config.resolved_executor_id()
        self.application_version = ""
        self._store: SystemStore | None = config.store
        self._lock = threading.Lock()
        self._active: dict[str, tuple[WorkflowContext, Outcome]] = {}
        self._threads: set[threading.Thread] = set()
        self._launched = False
        self._stopping = False
        bound = config.max_concurrent_workflows
        self._slots = threading.BoundedSemaphore(bound) if bound else None
        self._deadlines = DeadlineWatcher(self.clock, self._expire_quietly)
        # Checked once: isinstance() against a runtime-checkable Protocol costs ~20 us.
        self._tracker = self.clock if isinstance(self.clock, TracksWorkflows) else None
        # Executions past their body, recording their outcome: a NOTIFY about them is
        # (most likely) that outcome's own, and needs no cancellation check.
        self._finishing: set[WorkflowContext] = set()

    # -- registration --------------------------------------------------------------
    def workflow(
        self,
        *,
        name: str | None = None,
        max_recovery_attempts: int = 100,
        schedule: str | None = None,
    ) -> Callable[[F], F]:
        """Decorator form of :meth:`register_workflow`; returns the function unchanged."""

        def register(fn: F) -> F:
            self.register_workflow(
                fn, name=name, max_recovery_attempts=max_recovery_attempts, schedule=schedule
            )
            return fn

        return register

    def register_workflow(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        max_recovery_attempts: int = 100,
        schedule: str | None = None,
    ) -> None:
        """Register ``fn`` (``(ctx)`` or ``(ctx, input)``) as a workflow, before launch."""
        self.registry.register(
            fn, name=name, max_recovery_attempts=max_recovery_attempts, schedule=schedule
        )

    # -- lifecycle -------------------------------------------------------------------
    @property
    def store(self) -> SystemStore:
        if self._store is None:
            raise InitializationError("the engine has no store yet: call launch() first")
        return self._store

    def launch(self) -> None:
        """Open and migrate the store, then recover this executor's pending workflows."""
        if self._launched:
            return
        if self._store is None:
            from durakit.backends.urls import open_store  # noqa: PLC0415 - drivers load on demand

            self._store = open_store(self.config.database_url, self.config.database_schema)
        self._store.migrate()
        self.registry.freeze()
        self.application_version = (
            self.config.application_version
            or os.environ.get("DURAKIT_APP_VERSION")
            or self.registry.version_hash()
        )
        if isinstance(self._store, PushNotifications):
            self._store.subscribe(self._on_notification)
            self.hub.pushed = True
        self._launched = True
        self.recover_pending_workflows()

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop: running workflows are interrupted at their next durable operation and
        stay PENDING, to be recovered by the next launch; then the store is closed."""
        if not self._launched:
            return
        self._stopping = True
        with self._lock:
            running = list(self._active.values())
            threads = list(self._threads)
        for ctx, _ in running:
            ctx.request_interrupt(WorkflowInterrupted(ctx.workflow_id, "engine shut down"))
        # A real-time bound: a fake clock may jump while we wait for the threads.
        deadline = time.monotonic() + timeout
        self._deadlines.stop()
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self.config.store is None and self._store is not None:
            self._store.close()
        self._launched = False

    def __enter__(self) -> Durakit:
        self.launch()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

    def _require_launched(self) -> None:
        if not self._launched:
            raise InitializationError(
                "the engine is not launched: call launch() or use `with app:`"
            )

    def _on_notification(self, key: str) -> None:
        self.hub.notify(key)
        if key.startswith("wf:"):
            self._check_remote_cancel(key[3:])

    def _check_remote_cancel(self, workflow_id: str) -> None:
        with self._lock:
            running = self._active.get(workflow_id)
        if running is None or running[0] in self._finishing:
            return
        record = self.store.get_workflow(workflow_id)
        if record is not None and record.status is StatusType.CANCELLED:
            running[0].request_interrupt(WorkflowCancelledSignal(workflow_id))

    # -- starting ----------------------------------------------------------------------
    @overload
    def run_workflow(
        self,
        fn: Callable[[Context], R],
        /,
        *,
        workflow_id: str | None = None,
        queue: str | None = None,
        timeout: float | timedelta | None = None,
        application_version: str | None = None,
        authenticated_user: str | None = None,
        authenticated_roles: list[str] | None = None,
        assumed_role: str | None = None,
    ) -> WorkflowHandle[R]: ...

    @overload
    def run_workflow(
        self,
        fn: Callable[[Context, P], R],
        input: P,
        /,
        *,
        workflow_id: str | None = None,
        queue: str | None = None,
        timeout: float | timedelta | None = None,
        application_version: str | None = None,
        authenticated_user: str | None = None,
        authenticated_roles: list[str] | None = None,
        assumed_role: str | None = None,
    ) -> WorkflowHandle[R]: ...

    def run_workflow(
        self,
        fn: Callable[..., R],
        *args: Any,
        workflow_id: str | None = None,
        queue: str | None = None,
        timeout: float | timedelta | None = None,
        application_version: str | None = None,
        authenticated_user: str | None = None,
        authenticated_roles: list[str] | None = None,
        assumed_role: str | None = None,
    ) -> WorkflowHandle[R]:
        """Start a workflow (or find the one with this ID) and return its handle.

        The same ``workflow_id`` again runs the body once: later calls get a handle to
        the recorded outcome. A non-serializable input is rejected before anything is
        written.
        """
        defn = self.registry.by_fn(fn)
        if queue is not None:
            raise WorkflowExecutionError(
                f"queue {queue!r} is not registered on this engine", queue_name=queue
            )
        parent = CURRENT.get()
        if parent is not None:
            return parent.run_workflow(fn, *args, workflow_id=workflow_id, timeout=timeout)
        return self.start_workflow(
            defn,
            args,
            workflow_id=workflow_id,
            timeout=timeout,
            application_version=application_version,
            authenticated_user=authenticated_user,
            authenticated_roles=authenticated_roles,
            assumed_role=assumed_role,
        )

    def start_workflow(
        self,
        defn: WorkflowDef,
        args: tuple[Any, ...],
        *,
        workflow_id: str | None,
        timeout: float | timedelta | None = None,
        parent: WorkflowContext | None = None,
        application_version: str | None = None,
        authenticated_user: str | None = None,
        authenticated_roles: list[str] | None = None,
        assumed_role: str | None = None,
    ) -> EngineHandle[Any]:
        """Insert the workflow row (one atomic upsert) and run it if this call created it."""
        self._require_launched()
        expected = 1 if defn.takes_input else 0
        if len(args) != expected:
            raise TypeError(
                f"workflow {defn.name!r} takes {expected} input argument(s), got {len(args)}"
            )
        check_text(workflow_id=workflow_id)
        wid = workflow_id or str(uuid.uuid4())
        input_text = (
            self.serializer.dumps(args[0], defn.input_type, what=f"input of workflow {defn.name!r}")
            if defn.takes_input
            else None
        )
        with self._lock:
            running = self._active.get(wid)
        if running is not None:
            self._check_name(wid, running[0].defn.name, defn.name)
            return EngineHandle(self, wid, defn.output_type, running[1])
        now = now_ms(self.clock)
        timeout_s = seconds(timeout)
        timeout_ms = None if timeout_s is None else int(timeout_s * 1000)
        deadline = None if timeout_ms is None else now + timeout_ms
        if parent is not None and parent.deadline_ms is not None:
            deadline = parent.deadline_ms if deadline is None else min(deadline, parent.deadline_ms)
        owner = uuid.uuid4().hex
        result = self.store.insert_workflow(
            NewWorkflow(
                workflow_id=wid,
                name=defn.name,
                status=StatusType.PENDING,
                input=input_text,
                executor_id=self.executor_id,
                application_version=application_version or self.application_version,
                application_id=self.config.app_name,
                owner=owner,
                created_at=now,
                timeout_ms=timeout_ms,
                deadline_ms=deadline,
                authenticated_user=authenticated_user,
                assumed_role=assumed_role,
                authenticated_roles=tuple(authenticated_roles) if authenticated_roles else None,
                parent_workflow_id=parent.workflow_id if parent is not None else None,
            )
        )
        record = result.record
        self._check_name(wid, record.name, defn.name)
        if not result.created or record.owner != owner:
            return self.handle_for(wid, defn.output_type)
        return self._spawn(defn, record, owner, recorded=[])

    @staticmethod
    def _check_name(workflow_id: str, recorded: str, requested: str) -> None:
        if recorded != requested:
            raise ConflictingWorkflowError(
                f"workflow ID {workflow_id!r} belongs to workflow {recorded!r}, not {requested!r}",
                workflow_id=workflow_id,
                expected_name=requested,
                recorded_name=recorded,
            )

    def handle_for(self, workflow_id: str, output_type: Any) -> EngineHandle[Any]:
        """A handle on a workflow, live if this process is running it."""
        with self._lock:
            running = self._active.get(workflow_id)
        return EngineHandle(self, workflow_id, output_type, running[1] if running else None)

    # -- executing ---------------------------------------------------------------------
    def _spawn(
        self, defn: WorkflowDef, record: WorkflowRecord, owner: str, recorded: list[StepRecord]
    ) -> EngineHandle[Any]:
        ctx = WorkflowContext(self, defn, record, owner, recorded)
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
        except (StoreUnavailableSignal, StoreUnavailableError):
            outcome.set_unknown()
            if not self._stopping:
                self.log.warning("workflow %s paused: the store is unavailable", wid)
                self._recover_later(wid)
        except WorkflowInterrupted:
            outcome.set_unknown()
        except BaseException:
            # A store failure while stopping (or a bug): leave the row PENDING for
            # recovery rather than record an outcome we are unsure of.
            if not self._stopping:
                self.log.exception("workflow %s stopped without an outcome", wid)
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
            if ours:
                self._deadlines.unwatch(wid)
            self.hub.notify(f"wf:{wid}")
            CURRENT.reset(token)
            if self._tracker is not None:
                self._tracker.workflow_finished()

    def _take_slot(self) -> None:
        """Wait for a free slot under ``max_concurrent_workflows``, through the clock,
        so a fake clock sees a queued workflow as waiting rather than busy."""
        if self._slots is None:
            return
        with self.hub.listening(_SLOTS) as freed:
            while not self._slots.acquire(blocking=False):
                self.clock.wait(freed, None, poll=1.0)
                freed.clear()

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

    def _finish(
        self,
        ctx: WorkflowContext,
        status: StatusType,
        output: str | None,
        value: Any,
        outcome: Outcome,
    ) -> None:
        error_text = self.serializer.dumps_error(value) if status is StatusType.ERROR else None
        self._finishing.add(ctx)
        verdict = self.store.finish_workflow(
            ctx.fence, status, output, error_text, now_ms(self.clock)
        )
        if verdict is not WriteResult.OK:
            outcome.set_unknown()  # cancelled or taken over meanwhile: the store knows
        elif status is StatusType.ERROR:
            outcome.set_error(value)
        else:
            outcome.set_value(value)

    # -- recovery, cancellation, expiry ------------------------------------------------------
    def _recover_later(self, workflow_id: str) -> None:
        """Retry recovering one workflow whose execution stopped on a store outage, in
        the background, until the store answers (or the engine stops)."""

        def retry() -> None:
            delay = 0.5
            while not self._stopping:
                time.sleep(delay)
                try:
                    self.recover_pending_workflows(workflow_ids=[workflow_id])
                except StoreUnavailableError:
                    delay = min(delay * 2, 10.0)
                    continue
                return

        threading.Thread(target=retry, name=f"durakit-retry-{workflow_id}", daemon=True).start()

    def recover_pending_workflows(
        self, executor_ids: list[str] | None = None, *, workflow_ids: list[str] | None = None
    ) -> list[str]:
        """Resume PENDING workflows of these executors (default: this one) and this
        application version. Each recovery counts an attempt; past the workflow's
        ``max_recovery_attempts`` it dead-letters. Returns the IDs recovered."""
        self._require_launched()
        query = WorkflowQuery(
            statuses=(StatusType.PENDING,),
            executor_ids=tuple(executor_ids or [self.executor_id]),
            workflow_ids=tuple(workflow_ids) if workflow_ids is not None else None,
            app_version=self.application_version,
            load_output=False,
        )
        recovered: list[str] = []
        for record in self.store.list_workflows(query):
            wid = record.workflow_id
            defn = self.registry.by_name(record.name)
            with self._lock:
                busy = wid in self._active
            if busy:
                continue
            if defn is None:
                self.log.warning(
                    "cannot recover %s: workflow %r is not registered", wid, record.name
                )
                continue
            owner = uuid.uuid4().hex
            claimed = self.store.transition_workflow(
                wid,
                from_statuses=frozenset({StatusType.PENDING}),
                to_status=transition(StatusType.PENDING, WorkflowEvent.RECOVER),
                now_ms=now_ms(self.clock),
                new_owner=owner,
                executor_id=self.executor_id,
                bump_attempts=True,
            )
            if claimed is None:
                continue
            if should_dead_letter(claimed.attempts, defn.max_recovery_attempts):
                self.store.transition_workflow(
                    wid,
                    from_statuses=sources(WorkflowEvent.DEAD_LETTER),
                    to_status=transition(StatusType.PENDING, WorkflowEvent.DEAD_LETTER),
                    now_ms=now_ms(self.clock),
                )
                self.log.error(
                    "workflow %s dead-lettered after %d recoveries", wid, claimed.attempts - 1
                )
                self.hub.notify(f"wf:{wid}")
                continue
            self._spawn(defn, claimed, owner, self.store.load_steps(wid))
            recovered.append(wid)
        return recovered

    def _expire_quietly(self, workflow_id: str) -> None:
        try:
            self.expire_workflow(workflow_id)
        except Exception:  # the watcher thread must survive a store hiccup
            self.log.exception("could not expire workflow %s", workflow_id)

    def expire_workflow(self, workflow_id: str) -> None:
        """The workflow's deadline passed: it is cancelled (timeouts are cancellations)."""
        self._apply_stop(workflow_id, WorkflowEvent.TIMEOUT)

    def _apply_stop(self, workflow_id: str, event: WorkflowEvent) -> WorkflowRecord | None:
        """As for the client, and a body running here stops at its next operation."""
        with self._lock:
            running = self._active.get(workflow_id)
        if running is not None:
            running[0].request_interrupt(WorkflowCancelledSignal(workflow_id))
        return super()._apply_stop(workflow_id, event)
