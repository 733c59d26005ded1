"""Workflow management: list, inspect, cancel, resume, fork, and messaging from outside
a workflow. A mixin of the engine (the external client reuses it later)."""

from __future__ import annotations

import logging
import types
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar, overload

from durakit.api import retention
from durakit.api.clock import Clock, now_ms
from durakit.api.handle import EngineHandle, WorkflowHandle, seconds
from durakit.api.registry import Registry
from durakit.api.serialization import UNKNOWN, Serializer
from durakit.api.status import StepInfo, WorkflowStatus, from_ms
from durakit.api.validation import (
    check_identifier,
    check_identifiers,
    check_text,
    identifier_problem,
    possible_ids,
    storable,
)
from durakit.api.waiting import Deadline, WakeHub, poll_store
from durakit.core.errors import (
    ConflictingIDError,
    DurakitTimeoutError,
    NonExistentWorkflowError,
    SerializationError,
    WorkflowUnexpectedTypeError,
)
from durakit.core.records import (
    NewWorkflow,
    StepRecord,
    VersionMove,
    WorkflowQuery,
    WorkflowRecord,
    WriteResult,
)
from durakit.core.status import StatusType, WorkflowEvent, transition
from durakit.core.transitions import plan

if TYPE_CHECKING:
    from durakit.api.observability import Observer
    from durakit.api.registry import WorkflowDef
    from durakit.backends.protocol import SystemStore

T = TypeVar("T")


def _ms(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


class Management:
    """Management calls; needs ``store``, ``serializer``, ``registry``, ``clock``, ``hub``."""

    registry: Registry
    serializer: Serializer
    clock: Clock
    hub: WakeHub
    executor_id: str
    application_version: str
    log: logging.Logger = logging.getLogger("durakit")  # the engine sets Config.logger

    @property
    def store(self) -> SystemStore:
        raise NotImplementedError

    def handle_for(self, workflow_id: str, output_type: Any) -> EngineHandle[Any]:
        raise NotImplementedError

    def _apply_stop(self, workflow_id: str, event: WorkflowEvent) -> WorkflowRecord | None:
        """Apply a stopping event (CANCEL, TIMEOUT) as a status compare-and-swap, and wake
        whoever waits on the workflow. Returns the updated row, or None if it was not
        in a status the event stops."""
        updated = self.store.transition_workflow(workflow_id, plan(event, now_ms(self.clock)))
        self.hub.notify(f"wf:{workflow_id}")
        return updated

    # -- reading --------------------------------------------------------------------------
    def _types(self, name: str) -> tuple[Any, Any]:
        defn = self.registry.by_name(name)
        return (defn.input_type, defn.output_type) if defn else (UNKNOWN, UNKNOWN)

    def _shown(self, wid: str, text: str | None, type_: Any, what: str) -> Any:
        """A stored payload for reading: decoded, or, if it cannot be (a class that
        changed shape, a damaged row), its plain JSON with a warning. One bad row must
        not make every listing fail; ``get_result`` is where it raises."""
        if text is None:
            return None
        value, problem = self.serializer.loads_or_plain(text, type_, what=what)
        if problem is not None:
            self.log.warning("%s; shown undecoded", problem, extra={"workflow_id": wid})
        return value

    def _shown_error(self, wid: str, text: str | None, what: str) -> BaseException | None:
        """A recorded error for reading: rebuilt, or the SerializationError that
        ``get_result`` would raise, with a warning."""
        if text is None:
            return None
        try:
            return self.serializer.loads_error(text, what=what)
        except SerializationError as exc:
            self.log.warning("%s; shown as this error", exc, extra={"workflow_id": wid})
            return exc

    def _status(self, rec: WorkflowRecord) -> WorkflowStatus:
        input_type, output_type = self._types(rec.name)
        wid = rec.workflow_id
        of = f"of workflow {wid!r}"
        return WorkflowStatus(
            workflow_id=rec.workflow_id,
            status=rec.status,
            name=rec.name,
            authenticated_user=rec.authenticated_user,
            assumed_role=rec.assumed_role,
            authenticated_roles=rec.authenticated_roles,
            input=self._shown(wid, rec.input, input_type, f"input {of}"),
            output=self._shown(wid, rec.output, output_type, f"output {of}"),
            error=self._shown_error(wid, rec.error, f"error {of}"),
            executor_id=rec.executor_id,
            created_at=from_ms(rec.created_at),  # type: ignore[arg-type]
            updated_at=from_ms(rec.updated_at),  # type: ignore[arg-type]
            application_version=rec.application_version,
            application_id=rec.application_id,
            attempts=rec.attempts,
            queue_name=rec.queue_name,
            timeout=None if rec.timeout_ms is None else timedelta(milliseconds=rec.timeout_ms),
            deadline=from_ms(rec.deadline_ms),
            started_at=from_ms(rec.started_at),
            deduplication_id=rec.deduplication_id,
            priority=rec.priority,
        )

    def _require(self, workflow_id: str, argument: str = "workflow_id") -> WorkflowRecord:
        """The workflow's row (NonExistentWorkflowError if none), after checking the ID:
        a call that names one workflow refuses an ID that no workflow can have."""
        check_identifier(argument, workflow_id)
        rec = self.store.get_workflow(workflow_id)
        if rec is None:
            raise NonExistentWorkflowError(
                f"workflow {workflow_id!r} does not exist", workflow_id=workflow_id
            )
        return rec

    def get_workflow_status(self, workflow_id: str) -> WorkflowStatus:
        """The workflow's status row; NonExistentWorkflowError if there is none."""
        return self._status(self._require(workflow_id))

    def list_workflows(
        self,
        *,
        workflow_ids: list[str] | None = None,
        status: StatusType | list[StatusType] | None = None,
        name: str | None = None,
        user: str | None = None,
        app_version: str | None = None,
        executor_ids: list[str] | None = None,
        workflow_id_prefix: str | None = None,
        queue_name: str | None = None,
        queues_only: bool = False,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        limit: int | None = None,
        offset: int | None = None,
        sort_desc: bool = False,
        load_input: bool = True,
        load_output: bool = True,
    ) -> list[WorkflowStatus]:
        """Workflows matching every given filter, oldest first unless ``sort_desc``.

        A filter value that no stored workflow can have (an ID, name or queue name that
        breaks the identifier rule, text with NUL or a lone surrogate) matches nothing.
        ``user`` matches the ``authenticated_user`` recorded by ``run_workflow``.
        """
        statuses = [status] if isinstance(status, StatusType) else status
        names = (name, queue_name, workflow_id_prefix or None)
        if any(v is not None and identifier_problem(v) for v in names) or any(
            v is not None and not storable(v) for v in (user, app_version)
        ):
            return []
        query = WorkflowQuery(
            workflow_ids=possible_ids(workflow_ids) if workflow_ids is not None else None,
            statuses=tuple(statuses) if statuses is not None else None,
            name=name,
            user=user,
            app_version=app_version,
            executor_ids=(
                tuple(e for e in executor_ids if storable(e)) if executor_ids is not None else None
            ),
            workflow_id_prefix=workflow_id_prefix,
            queue_name=queue_name,
            queues_only=queues_only,
            start_time=_ms(start_time),
            end_time=_ms(end_time),
            limit=limit,
            offset=offset,
            sort_desc=sort_desc,
            load_input=load_input,
            load_output=load_output,
        )
        return [self._status(r) for r in self.store.list_workflows(query)]

    def get_workflow_steps(self, workflow_id: str) -> list[StepInfo]:
        """The workflow's recorded steps in order (see ``StepInfo`` for durakit's own)."""
        check_identifier("workflow_id", workflow_id)
        steps = []
        for s in self.store.load_steps(workflow_id):
            of = f"of step {s.step_id} ({s.name!r}) of workflow {workflow_id!r}"
            steps.append(
                StepInfo(
                    step_id=s.step_id,
                    name=s.name,
                    output=self._shown(workflow_id, s.output, UNKNOWN, f"output {of}"),
                    error=self._shown_error(workflow_id, s.error, f"error {of}"),
                    child_workflow_id=s.child_workflow_id,
                    started_at=from_ms(s.started_at),
                    completed_at=from_ms(s.completed_at),
                )
            )
        return steps

    @overload
    def retrieve_workflow(self, workflow_id: str) -> WorkflowHandle[Any]: ...

    @overload
    def retrieve_workflow(self, workflow_id: str, output_type: type[T]) -> WorkflowHandle[T]: ...

    def retrieve_workflow(self, workflow_id: str, output_type: Any = None) -> WorkflowHandle[Any]:
        """A handle on an existing workflow (NonExistentWorkflowError if none).

        ``output_type`` decodes the output; WorkflowUnexpectedTypeError if the workflow
        is registered here with another declared output type."""
        rec = self._require(workflow_id)
        declared = self._types(rec.name)[1]
        if output_type in (None, Any):
            return self.handle_for(workflow_id, declared)
        if declared is not UNKNOWN and output_type != declared:
            raise WorkflowUnexpectedTypeError(
                f"workflow {workflow_id!r} ({rec.name!r}) declares output type "
                f"{_type_name(declared)}, not {_type_name(output_type)}",
                workflow_id=workflow_id,
            )
        return self.handle_for(workflow_id, output_type)

    # -- control --------------------------------------------------------------------------
    def cancel_workflow(self, workflow_id: str, *, cascade: bool = True) -> None:
        """Mark the workflow CANCELLED now; a running body stops at its next durable
        operation. A running step is not interrupted: its outcome is recorded (a resume
        does not run it again), and a body that returns right after it leaves the
        workflow CANCELLED. No-op if already finished.

        With ``cascade`` (the default) its child workflows are cancelled too, except
        those started with ``detached=True``.
        """
        self._require(workflow_id)
        self._cancel(workflow_id, cascade)

    def _cancel(self, workflow_id: str, cascade: bool) -> None:
        self._apply_stop(workflow_id, WorkflowEvent.CANCEL)
        if cascade:
            for step in self.store.load_steps(workflow_id):
                child_id = step.child_workflow_id
                if child_id is None:
                    continue
                child = self.store.get_workflow(child_id)
                if child is not None and child.parent_workflow_id == workflow_id:
                    self._cancel(child_id, cascade=True)

    # -- queues ---------------------------------------------------------------------------
    def _check_queue(self, name: str) -> None:
        """Refuse a queue name (the engine refuses one it has not registered)."""
        check_identifier("queue_name", name)

    def pause_queue(self, queue_name: str) -> None:
        """Pause the queue on every executor: nothing more is dequeued from it (running
        workflows go on, enqueues still succeed) until :meth:`resume_queue`."""
        self._check_queue(queue_name)
        self.store.set_queue_paused(queue_name, True)

    def resume_queue(self, queue_name: str) -> None:
        """Resume a paused queue on every executor (a no-op if it is not paused)."""
        self._check_queue(queue_name)
        self.store.set_queue_paused(queue_name, False)
        self.hub.notify(f"q:{queue_name}")

    # -- messages and events from outside workflows ----------------------------------------
    def send(self, destination_id: str, message: object, topic: str | None = None) -> None:
        """Send a message to a workflow; NonExistentWorkflowError if it does not exist."""
        check_identifiers(destination_id=destination_id, topic=topic)
        payload = self.serializer.dumps_payload(message, what=f"message to {destination_id!r}")
        verdict = self.store.send_message(destination_id, topic, payload, now_ms(self.clock))
        if verdict is not WriteResult.OK:
            raise NonExistentWorkflowError(
                f"cannot send to workflow {destination_id!r}: it does not exist",
                destination_id=destination_id,
            )
        self.hub.notify(f"msg:{destination_id}")

    @overload
    def get_event(self, workflow_id: str, key: str, timeout: float | timedelta = 60.0) -> Any: ...

    @overload
    def get_event(
        self, workflow_id: str, key: str, timeout: float | timedelta = 60.0, *, type: type[T]
    ) -> T: ...

    def get_event(
        self, workflow_id: str, key: str, timeout: float | timedelta = 60.0, *, type: Any = None
    ) -> Any:
        """Wait up to ``timeout`` for the workflow's event; DurakitTimeoutError after."""
        check_identifiers(workflow_id=workflow_id, key=key)
        # Outside a workflow the caller's real time, inside one the engine's clock.
        deadline = Deadline(self.clock, seconds(timeout) or 0.0)
        payload = poll_store(
            self.hub, f"evt:{workflow_id}", deadline, lambda: self.store.get_event(workflow_id, key)
        )
        if payload is None:
            raise DurakitTimeoutError(
                f"event {key!r} of workflow {workflow_id!r} was not set within {timeout}",
                workflow_id=workflow_id,
            )
        return self.serializer.loads(payload, type, what=f"event {key!r}")

    def set_workflow_version(
        self,
        workflow_ids: list[str] | None = None,
        *,
        from_version: str | None = None,
        to_version: str | None = None,
    ) -> list[str]:
        """Move PENDING and ENQUEUED workflows to application version ``to_version``
        (None: this engine's own version), so that engines of that version run them.
        Picks the workflows in ``workflow_ids`` and/or of ``from_version`` (at least
        one of the two), of this engine's application (a client: of any application).
        Returns the IDs moved; finished workflows are never changed. On an engine that
        moved work to its own version, the moved workflows start running at once.
        """
        check_identifiers(to_version=to_version, from_version=from_version)
        target = to_version if to_version is not None else self.application_version
        if not target:
            raise ValueError("to_version is required here: a client has no version of its own")
        if workflow_ids is not None:
            for wid in workflow_ids:
                check_identifier("workflow_ids", wid)
        if workflow_ids is None and from_version is None:
            raise ValueError("give workflow_ids or from_version: which work to move")
        moved = self.store.set_version(
            VersionMove(
                to_version=target,
                now_ms=now_ms(self.clock),
                application_id=self._application_id(),
                workflow_ids=None if workflow_ids is None else tuple(workflow_ids),
                from_version=from_version,
            )
        )
        self._adopt(moved)
        return moved

    def _application_id(self) -> str | None:
        """Whose workflows management calls that select by version touch (None: any)."""
        return None

    def _adopt(self, workflow_ids: list[str]) -> None:
        """Workflows just moved between versions (the engine runs its own at once)."""

    def garbage_collect(self, older_than: timedelta | datetime, keep: int | None = None) -> int:
        """Delete finished workflows (SUCCESS, ERROR, CANCELLED,
        MAX_RECOVERY_ATTEMPTS_EXCEEDED) last updated before the cutoff, with their
        steps, messages and events, in bounded batches; return how many were deleted.

        ``older_than`` is an age (a timedelta, on the engine's clock) or a cutoff (an
        aware datetime). ``keep=N`` spares the N most recently finished workflows
        whatever their age. PENDING and ENQUEUED workflows are never deleted, nor a
        child whose parent is still PENDING or ENQUEUED.
        """
        return retention.garbage_collect(self.store, self.clock, older_than, keep)


def _type_name(type_: Any) -> str:
    plain = isinstance(type_, type) and not isinstance(type_, types.GenericAlias)
    return str(type_.__qualname__) if plain else repr(type_)


class Control(Management):
    """Management calls that run workflows here: resume and fork (engine only)."""

    observer: Observer

    def _spawn(
        self, defn: WorkflowDef, record: WorkflowRecord, owner: str, recorded: list[StepRecord]
    ) -> EngineHandle[Any]:
        raise NotImplementedError

    def resume_workflow(self, workflow_id: str) -> WorkflowHandle[Any]:
        """Continue a cancelled, dead-lettered or enqueued workflow from its last
        completed step, on this executor. No-op (just a handle) otherwise."""
        rec = self._require(workflow_id)
        _, output_type = self._types(rec.name)
        if transition(rec.status, WorkflowEvent.RESUME) is rec.status:
            return self.handle_for(workflow_id, output_type)
        defn = self._registered(rec.name)
        owner = uuid.uuid4().hex
        claimed = self.store.transition_workflow(
            workflow_id,
            plan(
                WorkflowEvent.RESUME, now_ms(self.clock), owner=owner, executor_id=self.executor_id
            ),
        )
        if claimed is None:  # someone else resumed or finished it first
            return self.handle_for(workflow_id, output_type)
        self.hub.notify(f"wf:{workflow_id}")
        return self._spawn(defn, claimed, owner, self.store.load_steps(workflow_id))

    def fork_workflow(
        self,
        original_workflow_id: str,
        start_step: int,
        forked_workflow_id: str | None = None,
        application_version: str | None = None,
    ) -> WorkflowHandle[Any]:
        """A new workflow with the original's input that reuses the recorded outcomes of
        steps ``< start_step`` and runs the rest.

        ``forked_workflow_id`` must be new: ConflictingIDError if a workflow (an earlier
        fork included) already has it."""
        original = self._require(original_workflow_id, "original_workflow_id")
        check_text(application_version=application_version)
        if forked_workflow_id is None:
            new_id = str(uuid.uuid4())
        else:
            new_id = check_identifier("forked_workflow_id", forked_workflow_id)
        defn = self._registered(original.name)
        if self.store.get_workflow(new_id) is not None:
            # Checked before the steps are copied: copying into an existing workflow
            # would change what it replays.
            raise self._taken(new_id, original_workflow_id)
        # Steps first: a crash before the row exists leaves only unreachable steps,
        # while the reverse order could let a recovery run the fork without them.
        self.store.copy_steps(original_workflow_id, new_id, start_step)
        owner = uuid.uuid4().hex
        result = self.store.insert_workflow(
            NewWorkflow(
                workflow_id=new_id,
                name=original.name,
                status=StatusType.PENDING,
                input=original.input,
                executor_id=self.executor_id,
                application_version=application_version or self.application_version,
                application_id=original.application_id,
                owner=owner,
                created_at=now_ms(self.clock),
                authenticated_user=original.authenticated_user,
                assumed_role=original.assumed_role,
                authenticated_roles=original.authenticated_roles,
                trace_context=self.observer.trace_context(),
            )
        )
        if not result.created or result.record.owner != owner:
            raise self._taken(new_id, original_workflow_id)  # created meanwhile
        self.observer.started(result.record)
        return self._spawn(defn, result.record, owner, self.store.load_steps(new_id))

    @staticmethod
    def _taken(new_id: str, original_id: str) -> ConflictingIDError:
        return ConflictingIDError(
            f"cannot fork {original_id!r} as {new_id!r}: a workflow with that ID exists; "
            "pick a new forked_workflow_id (or retrieve_workflow the existing one)",
            workflow_id=new_id,
        )

    def _registered(self, name: str) -> WorkflowDef:
        defn = self.registry.by_name(name)
        if defn is None:
            raise NonExistentWorkflowError(f"workflow function {name!r} is not registered here")
        return defn
