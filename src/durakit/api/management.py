"""Workflow management: list, inspect, cancel, resume, fork, and messaging from outside
a workflow. A mixin of the engine (the external client reuses it later)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar, overload

from durakit.api.clock import Clock, now_ms
from durakit.api.handle import EngineHandle, WorkflowHandle, seconds
from durakit.api.registry import Registry
from durakit.api.serialization import UNKNOWN, Serializer
from durakit.api.status import StepInfo, WorkflowStatus, from_ms
from durakit.api.validation import check_text
from durakit.api.waiting import WakeHub
from durakit.core.errors import DurakitTimeoutError, NonExistentWorkflowError
from durakit.core.records import NewWorkflow, StepRecord, WorkflowQuery, WorkflowRecord, WriteResult
from durakit.core.status import StatusType, WorkflowEvent, sources, target, transition

if TYPE_CHECKING:
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

    @property
    def store(self) -> SystemStore:
        raise NotImplementedError

    def handle_for(self, workflow_id: str, output_type: Any) -> EngineHandle[Any]:
        raise NotImplementedError

    def _apply_stop(self, workflow_id: str, event: WorkflowEvent) -> WorkflowRecord | None:
        """Apply a stopping event (CANCEL, TIMEOUT) as a status compare-and-swap, and wake
        whoever waits on the workflow. Returns the updated row, or None if it was not
        in a status the event stops."""
        updated = self.store.transition_workflow(
            workflow_id,
            from_statuses=sources(event),
            to_status=target(event),
            now_ms=now_ms(self.clock),
        )
        self.hub.notify(f"wf:{workflow_id}")
        return updated

    # -- reading --------------------------------------------------------------------------
    def _types(self, name: str) -> tuple[Any, Any]:
        defn = self.registry.by_name(name)
        return (defn.input_type, defn.output_type) if defn else (UNKNOWN, UNKNOWN)

    def _status(self, rec: WorkflowRecord) -> WorkflowStatus:
        ser = self.serializer
        input_type, output_type = self._types(rec.name)
        return WorkflowStatus(
            workflow_id=rec.workflow_id,
            status=rec.status,
            name=rec.name,
            authenticated_user=rec.authenticated_user,
            assumed_role=rec.assumed_role,
            authenticated_roles=rec.authenticated_roles,
            input=None if rec.input is None else ser.loads(rec.input, input_type),
            output=None if rec.output is None else ser.loads(rec.output, output_type),
            error=None if rec.error is None else ser.loads_error(rec.error),
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

    def _require(self, workflow_id: str) -> WorkflowRecord:
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

        ``user`` matches the ``authenticated_user`` recorded by ``run_workflow``.
        """
        statuses = [status] if isinstance(status, StatusType) else status
        query = WorkflowQuery(
            workflow_ids=tuple(workflow_ids) if workflow_ids is not None else None,
            statuses=tuple(statuses) if statuses is not None else None,
            name=name,
            user=user,
            app_version=app_version,
            executor_ids=tuple(executor_ids) if executor_ids is not None else None,
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
        ser = self.serializer
        return [
            StepInfo(
                step_id=s.step_id,
                name=s.name,
                output=None if s.output is None else ser.loads(s.output),
                error=None if s.error is None else ser.loads_error(s.error),
                child_workflow_id=s.child_workflow_id,
            )
            for s in self.store.load_steps(workflow_id)
        ]

    @overload
    def retrieve_workflow(self, workflow_id: str) -> WorkflowHandle[Any]: ...

    @overload
    def retrieve_workflow(self, workflow_id: str, output_type: type[T]) -> WorkflowHandle[T]: ...

    def retrieve_workflow(self, workflow_id: str, output_type: Any = None) -> WorkflowHandle[Any]:
        """A handle on an existing workflow (NonExistentWorkflowError if none)."""
        rec = self._require(workflow_id)
        return self.handle_for(workflow_id, output_type or self._types(rec.name)[1])

    # -- control --------------------------------------------------------------------------
    def cancel_workflow(self, workflow_id: str, *, cascade: bool = True) -> None:
        """Mark the workflow CANCELLED now; a running body stops at its next durable
        operation (a running step is not interrupted). No-op if already finished.

        With ``cascade`` (the default) its child workflows are cancelled too, except
        those started with ``detached=True``.
        """
        self._require(workflow_id)
        self._apply_stop(workflow_id, WorkflowEvent.CANCEL)
        if cascade:
            for step in self.store.load_steps(workflow_id):
                child_id = step.child_workflow_id
                if child_id is None:
                    continue
                child = self.store.get_workflow(child_id)
                if child is not None and child.parent_workflow_id == workflow_id:
                    self.cancel_workflow(child_id, cascade=True)

    # -- messages and events from outside workflows ----------------------------------------
    def send(self, destination_id: str, message: object, topic: str | None = None) -> None:
        """Send a message to a workflow; NonExistentWorkflowError if it does not exist."""
        check_text(destination_id=destination_id, topic=topic)
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
        check_text(workflow_id=workflow_id, key=key)
        until = self.clock.now() + (seconds(timeout) or 0.0)
        backoff = self.hub.backoff()
        with self.hub.listening(f"evt:{workflow_id}") as event:
            while True:
                event.clear()
                payload = self.store.get_event(workflow_id, key)
                if payload is not None:
                    return self.serializer.loads(payload, type, what=f"event {key!r}")
                if self.clock.now() >= until:
                    raise DurakitTimeoutError(
                        f"event {key!r} of workflow {workflow_id!r} was not set within {timeout}",
                        workflow_id=workflow_id,
                    )
                self.clock.wait(event, until, poll=backoff.next())


class Control(Management):
    """Management calls that run workflows here: resume and fork (engine only)."""

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
            from_statuses=sources(WorkflowEvent.RESUME),
            to_status=target(WorkflowEvent.RESUME),
            now_ms=now_ms(self.clock),
            new_owner=owner,
            executor_id=self.executor_id,
            reset_attempts=True,
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
        steps ``< start_step`` and runs the rest."""
        original = self._require(original_workflow_id)
        defn = self._registered(original.name)
        new_id = forked_workflow_id or str(uuid.uuid4())
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
            )
        )
        if not result.created or result.record.owner != owner:
            return self.handle_for(new_id, defn.output_type)
        return self._spawn(defn, result.record, owner, self.store.load_steps(new_id))

    def _registered(self, name: str) -> WorkflowDef:
        defn = self.registry.by_name(name)
        if defn is None:
            raise NonExistentWorkflowError(f"workflow function {name!r} is not registered here")
        return defn
