"""``Durakit``: the engine. Registers workflows, starts and recovers executions, and
answers management calls. No global state: every engine owns its registry and store."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, overload

from durakit.api.clock import Clock, TracksWorkflows, now_ms
from durakit.api.config import Config
from durakit.api.context import Context
from durakit.api.deadlines import DeadlineWatcher
from durakit.api.execution import WorkflowContext
from durakit.api.handle import EngineHandle, Outcome, WorkflowHandle, seconds
from durakit.api.observability import Observer
from durakit.api.queues import Enqueue, Queue, QueueRunner, RateLimit, enqueue_options
from durakit.api.recovery import Recovery
from durakit.api.registry import Registry, WorkflowDef
from durakit.api.retention import RetentionThread
from durakit.api.running import EngineStopped
from durakit.api.schedules import Scheduler, schedule_workflow_id
from durakit.api.serialization import Serializer
from durakit.api.validation import check_duration, check_identifiers, check_text
from durakit.api.waiting import CURRENT, WakeHub
from durakit.api.workflow import Workflow
from durakit.backends.protocol import PushNotifications, SystemStore
from durakit.core.errors import (
    ConflictingRegistrationError,
    ConflictingWorkflowError,
    InitializationError,
    WorkflowExecutionError,
)
from durakit.core.records import NewWorkflow, WorkflowRecord
from durakit.core.status import StatusType

if TYPE_CHECKING:
    from logging import Logger

    from durakit.admin.server import AdminServer


R = TypeVar("R")
P = TypeVar("P")


class WorkflowDecorator:
    """What ``app.workflow(...)`` returns: applied to a function, registers it."""

    def __init__(
        self,
        app: Durakit,
        *,
        name: str | None,
        max_recovery_attempts: int,
        schedule: str | None,
    ) -> None:
        self._app = app
        self._options: dict[str, Any] = {
            "name": name,
            "max_recovery_attempts": max_recovery_attempts,
            "schedule": schedule,
        }

    @overload
    def __call__(self, fn: Callable[[Context], R], /) -> Workflow[None, R]: ...

    @overload
    def __call__(self, fn: Callable[[Context, P], R], /) -> Workflow[P, R]: ...

    def __call__(self, fn: Callable[..., Any], /) -> Workflow[Any, Any]:
        return self._app.register_workflow(fn, **self._options)


class Durakit(Recovery):
    """A durable-workflow engine bound to one store. Use ``with app:`` or launch/shutdown."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.registry = Registry()
        self.serializer = Serializer()
        self.hub = WakeHub()
        self.clock: Clock = config.clock
        self.log: Logger = config.resolved_logger()
        self.observer = Observer(self.log, tracing=config.tracing)
        self.executor_id = config.resolved_executor_id()
        self.application_version = ""
        self._store: SystemStore | None = config.store
        # The store this engine opened from ``database_url`` (kept closed after a
        # shutdown, so that the next launch reopens the same database), and the store its
        # notification callback is subscribed to (once per store object).
        self._opened: SystemStore | None = None
        self._subscribed: SystemStore | None = None
        self._lock = threading.Lock()
        self._active: dict[str, tuple[WorkflowContext, Outcome]] = {}
        self._threads: set[threading.Thread] = set()
        self._launched = False
        self._stopping = False
        bound = config.max_concurrent_workflows
        self._slots = threading.BoundedSemaphore(bound) if bound else None
        self._deadlines = DeadlineWatcher(self.clock, self._expire_quietly)
        self._retention: RetentionThread | None = None
        self._scheduler: Scheduler | None = None
        # Checked once: isinstance() against a runtime-checkable Protocol costs ~20 us.
        self._tracker = self.clock if isinstance(self.clock, TracksWorkflows) else None
        # Executions past their body, recording their outcome: a NOTIFY about them is
        # (most likely) that outcome's own, and needs no cancellation check.
        self._finishing: set[WorkflowContext] = set()
        self._admin: AdminServer | None = None
        self.queues: dict[str, Queue] = {}
        self._queue_runner: QueueRunner | None = None

    # -- registration --------------------------------------------------------------
    def workflow(
        self,
        *,
        name: str | None = None,
        max_recovery_attempts: int = 100,
        schedule: str | None = None,
    ) -> WorkflowDecorator:
        """Decorator form of :meth:`register_workflow`: returns the :class:`Workflow`."""
        return WorkflowDecorator(
            self, name=name, max_recovery_attempts=max_recovery_attempts, schedule=schedule
        )

    @overload
    def register_workflow(
        self,
        fn: Callable[[Context], R],
        *,
        name: str | None = None,
        max_recovery_attempts: int = 100,
        schedule: str | None = None,
    ) -> Workflow[None, R]: ...

    @overload
    def register_workflow(
        self,
        fn: Callable[[Context, P], R],
        *,
        name: str | None = None,
        max_recovery_attempts: int = 100,
        schedule: str | None = None,
    ) -> Workflow[P, R]: ...

    def register_workflow(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        max_recovery_attempts: int = 100,
        schedule: str | None = None,
    ) -> Workflow[Any, Any]:
        """Register ``fn`` (``(ctx)`` or ``(ctx, input)``) as a workflow, before launch.

        Returns the :class:`Workflow`: callable as ``fn``, typed by its input and output.
        ``schedule`` (a cron expression, six fields with seconds first, or five) runs it
        once per tick from ``launch()`` on, across all executors, with the tick (an aware
        UTC datetime) as its input: ``fn`` must then be ``(ctx, tick: datetime)``.
        """
        defn = self.registry.register(
            fn, name=name, max_recovery_attempts=max_recovery_attempts, schedule=schedule
        )
        return Workflow(defn)

    def queue(
        self,
        name: str,
        *,
        worker_concurrency: int | None = None,
        concurrency: int | None = None,
        rate_limit: RateLimit | None = None,
        priority_enabled: bool = False,
        partition_queue: bool = False,
        max_tasks_per_iteration: int | None = None,
    ) -> Queue:
        """Register a queue, before launch; returns it (``run_workflow(..., queue=q.name)``).

        Args:
            name: The queue's name, unique in this engine.
            worker_concurrency: At most this many of its workflows run at once on this
                executor (process); None: no bound.
            concurrency: At most this many run at once on all executors together.
            rate_limit: At most ``limit`` start per ``period`` on all executors.
            priority_enabled: Order by ``run_workflow(priority=)`` (lower first), then
                by arrival; without it, ``priority=`` is refused.
            partition_queue: Every limit applies per ``queue_partition_key``, which each
                enqueue must then give.
            max_tasks_per_iteration: At most this many are claimed at once.

        Raises:
            InitializationError: A limit is invalid (the message names it).
            ConflictingRegistrationError: The name is taken, or the engine is launched.
        """
        q = Queue(
            name=name,
            worker_concurrency=worker_concurrency,
            concurrency=concurrency,
            rate_limit=rate_limit,
            priority_enabled=priority_enabled,
            partition_queue=partition_queue,
            max_tasks_per_iteration=max_tasks_per_iteration,
        )
        if self._launched:
            raise ConflictingRegistrationError(
                f"queue {name!r} registered after launch(): register queues before"
            )
        if name in self.queues:
            raise ConflictingRegistrationError(f"queue {name!r} is already registered")
        self.queues[name] = q
        return q

    # -- lifecycle -------------------------------------------------------------------
    @property
    def store(self) -> SystemStore:
        if self._store is None:
            raise InitializationError(
                "the engine is not launched (its store is not open): call launch() "
                "or use `with app:`"
            )
        return self._store

    @property
    def admin_url(self) -> str | None:
        """The admin server's base URL (``http://127.0.0.1:3001``) while it runs, else None.

        With ``Config(admin_port=0)`` this is where to read the port it picked."""
        return None if self._admin is None else self._admin.url

    def launch(self) -> None:
        """Open and migrate the store, recover this executor's pending workflows, and
        start the schedules (and retention, when configured), and the admin server when
        ``Config.admin_server`` is set.

        Also after :meth:`shutdown`: a store the engine opened from ``database_url`` is
        opened again on the same database, and the background threads start again.
        """
        if self._launched:
            return
        token = self.config.resolved_admin_token()
        if self.config.admin_server:
            # Imported here: an application without the admin server never loads the
            # web stack. Checked before anything opens, so a refused config leaves nothing.
            from durakit.admin.server import AdminServer, check_exposure  # noqa: PLC0415

            check_exposure(self.config.admin_host, token)
        if self._store is None:
            from durakit.backends import urls  # noqa: PLC0415 - drivers load on demand

            url, schema = self.config.database_url, self.config.database_schema
            self._store = (
                urls.open_store(url, schema)
                if self._opened is None
                else urls.reopen_store(self._opened, url, schema)
            )
            self._opened = self._store
        try:
            self._store.migrate()
        except BaseException:
            # A launch that failed leaves nothing open: a store it opened is closed.
            if self.config.store is None:
                self._store.close()
                self._store = None
            raise
        self.registry.freeze()
        self.application_version = (
            self.config.application_version
            or os.environ.get("DURAKIT_APP_VERSION")
            or self.registry.version_hash()
        )
        if isinstance(self._store, PushNotifications) and self._subscribed is not self._store:
            self._store.subscribe(self._on_notification)
            self._subscribed = self._store
            self.hub.pushed = True
        # The last shutdown stopped the previous watcher's thread for good.
        self._deadlines = DeadlineWatcher(self.clock, self._expire_quietly)
        self._stopping = False
        self._launched = True
        self.recover_pending_workflows()
        self.warn_about_other_versions()
        if self.queues:
            self._queue_runner = QueueRunner(self, self.queues)
            self._queue_runner.start()
        scheduled = [(d.name, d.schedule) for d in self.registry.all() if d.schedule]
        if scheduled:
            self._scheduler = Scheduler(scheduled, self._start_tick, self.clock, self.log)
            self._scheduler.start()
        if self.config.retention is not None:
            self._retention = RetentionThread(
                self._store, self.clock, self.config.retention, self.log
            )
            self._retention.start()
        if self.config.admin_server:
            try:
                self._admin = AdminServer(
                    self,
                    host=self.config.admin_host,
                    port=self.config.admin_port,
                    token=token,
                    log=self.log,
                )
                self._admin.start()
            except BaseException:
                self._admin = None
                self.shutdown()
                raise

    def _start_tick(self, name: str, tick: datetime) -> None:
        """Start one tick of a scheduled workflow (its ID makes it once per tick)."""
        defn = self.registry.by_name(name)
        assert defn is not None  # the scheduler only knows registered workflows
        self.run_workflow(defn.fn, tick, workflow_id=schedule_workflow_id(name, tick))

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop: running workflows are interrupted at their next durable operation and
        stay PENDING, to be recovered by the next launch; then a store the engine opened
        from ``database_url`` is closed (``launch()`` opens it again)."""
        check_duration("timeout", timeout)
        if not self._launched:
            return
        if self._admin is not None:
            self._admin.stop(timeout)
            self._admin = None
        self._stopping = True
        # A real-time bound: a fake clock may jump while we wait for the threads.
        deadline = time.monotonic() + timeout
        if self._queue_runner is not None:
            # First, so that nothing is dequeued while the rest stops.
            self._queue_runner.stop(max(0.0, deadline - time.monotonic()))
            self._queue_runner = None
        with self._lock:
            running = list(self._active.values())
            threads = list(self._threads)
        for ctx, _ in running:
            ctx.request_interrupt(EngineStopped(ctx.workflow_id))
        self._deadlines.stop()
        if self._retention is not None:
            self._retention.stop()
            self._retention = None
        if self._scheduler is not None:
            self._scheduler.stop()
            self._scheduler = None
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self.config.store is None and self._store is not None:
            self._store.close()
            # Until the next launch, calls that need the store say the engine is not
            # launched, rather than fail inside a closed driver.
            self._store = None
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

    # -- starting ----------------------------------------------------------------------
    @overload
    def run_workflow(
        self,
        fn: Callable[[Context], R],
        /,
        *,
        workflow_id: str | None = None,
        queue: str | None = None,
        deduplication_id: str | None = None,
        priority: int | None = None,
        queue_partition_key: str | None = None,
        delay: float | timedelta | None = None,
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
        deduplication_id: str | None = None,
        priority: int | None = None,
        queue_partition_key: str | None = None,
        delay: float | timedelta | None = None,
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
        deduplication_id: str | None = None,
        priority: int | None = None,
        queue_partition_key: str | None = None,
        delay: float | timedelta | None = None,
        timeout: float | timedelta | None = None,
        application_version: str | None = None,
        authenticated_user: str | None = None,
        authenticated_roles: list[str] | None = None,
        assumed_role: str | None = None,
    ) -> WorkflowHandle[R]:
        """Start a workflow (or find the one with this ID) and return its handle.

        The same ``workflow_id`` again runs the body once: later calls get a handle to
        the recorded outcome. A non-serializable input is rejected before anything is
        written. Called inside a workflow, it starts a child (as ``ctx.run_workflow``).

        Args:
            fn: A registered workflow function.
            *args: The workflow's input, if its function takes one (one positional value).
            workflow_id: The workflow's identity; a random UUID if not given.
            queue: Enqueue on this registered queue instead of starting now: the workflow
                is ENQUEUED until the queue's limits let it start (an unknown name
                raises ``WorkflowExecutionError``: a typo must not strand work).
            deduplication_id: With ``queue``: while a workflow of that queue with this
                ID is ENQUEUED or running, another enqueue with it raises
                ``QueueDeduplicatedError``.
            priority: With a ``priority_enabled`` queue: lower starts first (0 default).
            queue_partition_key: With a ``partition_queue`` queue (required there): the
                partition whose limits apply.
            delay: With ``queue``: seconds or a ``timedelta`` before it may start.
            timeout: Seconds or a ``timedelta``; when it passes, the workflow is cancelled.
            application_version: Recorded instead of the engine's version.
            authenticated_user: Who asked for this workflow, as your application
                authenticated them. Recorded on the workflow, shown in its
                ``WorkflowStatus``, and matched by ``list_workflows(user=...)``.
                durakit does no authentication or authorization itself: it stores what
                it is given. Child workflows do not inherit it, and a call inside a
                workflow (which starts a child) refuses it and the other caller
                fields with ``ValueError``.
            authenticated_roles: The roles that user holds, recorded and shown likewise
                (``WorkflowStatus.authenticated_roles``, a tuple).
            assumed_role: The role the user acts in for this workflow, recorded and
                shown likewise.

        Returns:
            A handle typed by the workflow's output.
        """
        defn = self.registry.by_fn(fn)
        enqueue = enqueue_options(
            self.queues,
            queue,
            deduplication_id=deduplication_id,
            priority=priority,
            queue_partition_key=queue_partition_key,
            delay=delay,
        )
        parent = CURRENT.get()
        if parent is not None:
            # A child runs as its parent's step: what the caller's request carries
            # (version, who asked) belongs to the parent and cannot be set per child.
            given = {
                "application_version": application_version,
                "authenticated_user": authenticated_user,
                "authenticated_roles": authenticated_roles,
                "assumed_role": assumed_role,
            }
            if enqueue is not None:
                # A child is started as a step of its parent; enqueueing one would need
                # that step to record the enqueue, which is not built yet.
                given["queue"] = queue
            refused = [name for name, value in given.items() if value is not None]
            if refused:
                raise ValueError(
                    f"run_workflow inside a workflow starts a child, which takes no "
                    f"{', '.join(refused)}: a child runs with its parent's version and "
                    "records no caller identity"
                )
            return parent.run_workflow(fn, *args, workflow_id=workflow_id, timeout=timeout)
        return self.start_workflow(
            defn,
            args,
            workflow_id=workflow_id,
            timeout=timeout,
            enqueue=enqueue,
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
        enqueue: Enqueue | None = None,
    ) -> EngineHandle[Any]:
        """Insert the workflow row (one atomic upsert) and run it if this call created it
        (or, with ``enqueue``, leave it ENQUEUED for a queue runner)."""
        self._require_launched()
        check_identifiers(workflow_id=workflow_id)  # "" is an error, not "generate one"
        timeout_s = seconds(timeout)
        check_text(
            authenticated_user=authenticated_user,
            assumed_role=assumed_role,
            application_version=application_version,
        )
        for role in authenticated_roles or ():
            check_text(authenticated_roles=role)
        expected = 1 if defn.takes_input else 0
        if len(args) != expected:
            raise TypeError(
                f"workflow {defn.name!r} takes {expected} input argument(s), got {len(args)}"
            )
        wid = str(uuid.uuid4()) if workflow_id is None else workflow_id
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
        timeout_ms = None if timeout_s is None else int(timeout_s * 1000)
        # A queued workflow's timeout starts when it is dequeued (the claim sets it).
        deadline = None if timeout_ms is None or enqueue is not None else now + timeout_ms
        if parent is not None and parent.deadline_ms is not None:
            deadline = parent.deadline_ms if deadline is None else min(deadline, parent.deadline_ms)
        owner = None if enqueue is not None else uuid.uuid4().hex
        result = self.store.insert_workflow(
            NewWorkflow(
                workflow_id=wid,
                name=defn.name,
                status=StatusType.PENDING if enqueue is None else StatusType.ENQUEUED,
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
                trace_context=self.observer.trace_context(),
                **({} if enqueue is None else self._queue_fields(enqueue, now)),
            )
        )
        record = result.record
        self._check_name(wid, record.name, defn.name)
        if enqueue is not None:
            if result.created:
                self.observer.enqueued(record)
                # At once, in this process; other processes hear the store's NOTIFY (the
                # echo of which the runner's coalescing folds into the same claim).
                self.hub.notify(f"q:{enqueue.queue}")
            return self.handle_for(wid, defn.output_type)
        if not result.created or owner is None or record.owner != owner:
            return self.handle_for(wid, defn.output_type)
        self.observer.started(record)
        return self._spawn(defn, record, owner, recorded=[])

    @staticmethod
    def _queue_fields(enqueue: Enqueue, now: int) -> dict[str, Any]:
        return {
            "queue_name": enqueue.queue,
            "deduplication_id": enqueue.deduplication_id,
            "priority": enqueue.priority,
            "queue_partition_key": enqueue.partition_key,
            "visible_at": now + enqueue.delay_ms if enqueue.delay_ms else None,
        }

    def _check_queue(self, name: str) -> None:
        super()._check_queue(name)
        if name not in self.queues:
            raise WorkflowExecutionError(
                f"queue {name!r} is not registered on this engine", queue_name=name
            )

    def run_dequeued(self, record: WorkflowRecord, owner: str) -> None:
        """Run a workflow the queue runner claimed (it is PENDING, owned by ``owner``)."""
        defn = self.registry.by_name(record.name)
        if defn is None:  # same application version, so this should not happen
            self.log.error(
                "dequeued workflow %s, but %r is not registered here; it stays PENDING "
                "for recovery",
                record.workflow_id,
                record.name,
            )
            return
        # Only REQUEUE puts a workflow that has checkpoints on a queue, and it always
        # follows a RECOVER, which counted an attempt: a first attempt has none to read.
        steps = self.store.load_steps(record.workflow_id) if record.attempts > 1 else []
        self._spawn(defn, record, owner, steps)

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
