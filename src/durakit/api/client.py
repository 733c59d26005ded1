"""``Client``: management and messaging for code outside the application process."""

from __future__ import annotations

import uuid
from datetime import timedelta
from types import TracebackType
from typing import Any, TypeVar, overload

from durakit.api.clock import Clock, SystemClock, now_ms
from durakit.api.handle import EngineHandle, WorkflowHandle, seconds
from durakit.api.management import Management
from durakit.api.queues import check_priority, delay_ms
from durakit.api.registry import Registry
from durakit.api.serialization import UNKNOWN, Serializer
from durakit.api.validation import check_identifiers, check_text
from durakit.api.waiting import WakeHub
from durakit.api.workflow import Workflow
from durakit.backends.protocol import PushNotifications, SystemStore
from durakit.core.errors import ConflictingWorkflowError
from durakit.core.records import NewWorkflow
from durakit.core.status import StatusType

P = TypeVar("P")
R = TypeVar("R")


class Client(Management):
    """Reads, cancels and messages workflows in a durakit database without running any.

    ``Client(database_url="postgresql://...")`` (or ``store=`` any SystemStore). Payloads
    are decoded as plain JSON unless a call takes a ``type``/``output_type``. Resuming,
    forking and enqueueing need an executor to run the work: use the engine for those.
    """

    def __init__(
        self,
        database_url: str | None = None,
        database_schema: str = "durakit",
        *,
        store: SystemStore | None = None,
        clock: Clock | None = None,
    ) -> None:
        if store is None:
            from durakit.backends.urls import open_store  # noqa: PLC0415 - drivers on demand

            store = open_store(database_url, database_schema)
            self._owns_store = True
        else:
            self._owns_store = False
        self._store = store
        try:
            self._store.migrate()
        except BaseException:
            # A client that failed to open must not leave the store's pool and threads.
            self.close()
            raise
        self.registry = Registry()
        self.serializer = Serializer()
        self.clock = clock or SystemClock()
        self.hub = WakeHub()
        self.executor_id = "client"
        self.application_version = ""
        if isinstance(store, PushNotifications):
            store.subscribe(self.hub.notify)
            self.hub.pushed = True

    @property
    def store(self) -> SystemStore:
        return self._store

    def handle_for(self, workflow_id: str, output_type: Any) -> EngineHandle[Any]:
        return EngineHandle(self, workflow_id, output_type, None)

    @overload
    def enqueue(
        self,
        queue_name: str,
        workflow: Workflow[P, R],
        input: P,
        /,
        *,
        workflow_id: str | None = None,
        deduplication_id: str | None = None,
        priority: int | None = None,
        queue_partition_key: str | None = None,
        delay: float | timedelta | None = None,
        timeout: float | timedelta | None = None,
        application_version: str | None = None,
    ) -> WorkflowHandle[R]: ...

    @overload
    def enqueue(
        self,
        queue_name: str,
        workflow: str,
        input: Any = None,
        /,
        *,
        result_type: type[R],
        workflow_id: str | None = None,
        deduplication_id: str | None = None,
        priority: int | None = None,
        queue_partition_key: str | None = None,
        delay: float | timedelta | None = None,
        timeout: float | timedelta | None = None,
        application_version: str | None = None,
    ) -> WorkflowHandle[R]: ...

    @overload
    def enqueue(
        self,
        queue_name: str,
        workflow: str,
        input: Any = None,
        /,
        *,
        workflow_id: str | None = None,
        deduplication_id: str | None = None,
        priority: int | None = None,
        queue_partition_key: str | None = None,
        delay: float | timedelta | None = None,
        timeout: float | timedelta | None = None,
        application_version: str | None = None,
    ) -> WorkflowHandle[Any]: ...

    def enqueue(
        self,
        queue_name: str,
        workflow: Workflow[Any, Any] | str,
        input: Any = None,
        /,
        *,
        result_type: Any = None,
        workflow_id: str | None = None,
        deduplication_id: str | None = None,
        priority: int | None = None,
        queue_partition_key: str | None = None,
        delay: float | timedelta | None = None,
        timeout: float | timedelta | None = None,
        application_version: str | None = None,
    ) -> WorkflowHandle[Any]:
        """Put a workflow on a queue, for the application's executors to run.

        ``workflow`` is the workflow object (``@app.workflow()``'s result: its name and
        types are taken from it, so the handle is typed) or its registered name (then
        ``result_type=`` types the handle; the input is stored as plain JSON). The
        queue's limits are the executors': this client cannot see them, so it does not
        check ``priority`` or ``queue_partition_key`` against them.

        Without ``application_version`` the work runs on any application version (the
        executor that dequeues it records its own); with it, only on that one. If the
        workflow ID exists, nothing is written and the handle is to that workflow.

        Raises:
            QueueDeduplicatedError: ``deduplication_id`` is active on that queue.
        """
        check_identifiers(
            queue_name=queue_name,
            workflow_id=workflow_id,
            deduplication_id=deduplication_id,
            queue_partition_key=queue_partition_key,
        )
        check_text(application_version=application_version)
        if isinstance(workflow, Workflow):
            if result_type is not None:
                raise TypeError("result_type is taken from the workflow object; do not give it")
            name, input_type, output_type = workflow.name, workflow.input_type, workflow.output_type
        else:
            check_identifiers(workflow=workflow)
            name, input_type = workflow, UNKNOWN
            output_type = UNKNOWN if result_type is None else result_type
        checked_priority = check_priority(priority)
        delay_after = delay_ms(delay)
        timeout_s = seconds(timeout)
        text = self.serializer.dumps(input, input_type, what=f"input of workflow {name!r}")
        now = now_ms(self.clock)
        wid = str(uuid.uuid4()) if workflow_id is None else workflow_id
        result = self.store.insert_workflow(
            NewWorkflow(
                workflow_id=wid,
                name=name,
                status=StatusType.ENQUEUED,
                input=text,
                executor_id=self.executor_id,
                # "": any executor's version (the dequeuing one records its own).
                application_version=application_version or "",
                created_at=now,
                queue_name=queue_name,
                deduplication_id=deduplication_id,
                priority=checked_priority,
                timeout_ms=None if timeout_s is None else int(timeout_s * 1000),
                queue_partition_key=queue_partition_key,
                visible_at=now + delay_after if delay_after else None,
            )
        )
        if result.record.name != name:
            raise ConflictingWorkflowError(
                f"workflow ID {wid!r} belongs to workflow {result.record.name!r}, not {name!r}",
                workflow_id=wid,
                expected_name=name,
                recorded_name=result.record.name,
            )
        return self.handle_for(wid, output_type)

    def close(self) -> None:
        """Close the store if this client opened it."""
        if self._owns_store:
            self._store.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
