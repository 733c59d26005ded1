"""Recovery, expiry and cancellation seen from elsewhere: taking pending work over.

A mixin of the engine (``Durakit``); the attributes it uses are set up there.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter

from durakit.api.clock import now_ms
from durakit.api.running import Runner
from durakit.api.validation import possible_ids, storable
from durakit.core.backoff import Backoff
from durakit.core.errors import (
    InitializationError,
    StoreUnavailableError,
    WorkflowCancelledSignal,
)
from durakit.core.records import WorkflowQuery, WorkflowRecord
from durakit.core.retry import should_dead_letter
from durakit.core.status import StatusType, WorkflowEvent
from durakit.core.transitions import plan


class Recovery(Runner):
    """Recover PENDING workflows, expire deadlines, react to remote cancels."""

    def _require_launched(self) -> None:
        raise NotImplementedError

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

    # -- recovery, cancellation, expiry ------------------------------------------------------
    def _recover_later(self, workflow_id: str, first_delay: float = 0.5) -> None:
        """Retry recovering one workflow whose execution stopped without an outcome (on a
        store outage, or on a shutdown the engine was relaunched after), in the
        background, until the store answers (or the engine stops)."""

        def retry() -> None:
            backoff = Backoff(0.5, 10.0)
            delay = first_delay
            while not self._stopping:
                time.sleep(delay)
                delay = backoff.next()
                try:
                    self.recover_pending_workflows(workflow_ids=[workflow_id])
                    self._store_health().up()
                except StoreUnavailableError:
                    continue
                except InitializationError:
                    return  # shut down meanwhile: the next launch recovers it
                return

        threading.Thread(target=retry, name=f"durakit-retry-{workflow_id}", daemon=True).start()

    def _application_id(self) -> str | None:
        return self.config.app_name

    def _adopt(self, workflow_ids: list[str]) -> None:
        """Run at once the moved workflows of this executor that are now of this
        engine's version (another executor's are its own to recover: it may be alive)."""
        if workflow_ids and self._launched:
            self.recover_pending_workflows(workflow_ids=workflow_ids)

    def warn_about_other_versions(self) -> None:
        """Log a warning per other application version that has active work of this
        application: this engine will not run it (called by ``launch()``)."""
        query = WorkflowQuery(
            statuses=(StatusType.PENDING, StatusType.ENQUEUED),
            application_id=self.config.app_name,
            load_input=False,
            load_output=False,
        )
        counts = Counter(
            r.application_version
            for r in self.store.list_workflows(query)
            # "" is work a client enqueued without a version: any executor may run it.
            if r.application_version not in (self.application_version, "")
        )
        for version, count in sorted(counts.items()):
            self.log.warning(
                "%d PENDING or ENQUEUED workflows of application %r are of version %r, not "
                "this engine's %r: they will not run here. To run them on this version: "
                "app.set_workflow_version(from_version=%r); or start an engine with "
                "application_version=%r.",
                count,
                self.config.app_name,
                version,
                self.application_version,
                version,
                version,
            )

    def recover_pending_workflows(
        self, executor_ids: list[str] | None = None, *, workflow_ids: list[str] | None = None
    ) -> list[str]:
        """Resume PENDING workflows of these executors (default: this one) and this
        application version. Each recovery counts an attempt; past the workflow's
        ``max_recovery_attempts`` it dead-letters. Returns the IDs recovered."""
        self._require_launched()
        query = WorkflowQuery(
            statuses=(StatusType.PENDING,),
            # Values no stored row can have match nothing (and some drivers cannot send them).
            executor_ids=tuple(e for e in executor_ids or [self.executor_id] if storable(e)),
            workflow_ids=possible_ids(workflow_ids) if workflow_ids is not None else None,
            app_version=self.application_version,
            # Another application on the same database (its own app_name) is not ours to
            # run, even under the same executor ID, version and workflow names.
            application_id=self.config.app_name,
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
                self.observer.not_registered(record)
                continue
            owner = uuid.uuid4().hex
            claimed = self.store.transition_workflow(
                wid,
                plan(
                    WorkflowEvent.RECOVER,
                    now_ms(self.clock),
                    owner=owner,
                    executor_id=self.executor_id,
                ),
            )
            if claimed is None:
                continue
            if should_dead_letter(claimed.attempts, defn.max_recovery_attempts):
                self.store.transition_workflow(
                    wid, plan(WorkflowEvent.DEAD_LETTER, now_ms(self.clock))
                )
                self.observer.dead_lettered(claimed)
                self.hub.notify(f"wf:{wid}")
                continue
            self.observer.recovered(claimed)
            if claimed.queue_name is not None:
                # Queued work goes back on its queue rather than running at once here,
                # so that the queue's limits (this executor's included) still hold; its
                # attempt is counted above, and the dequeue replays its checkpoints.
                requeued = self.store.transition_workflow(
                    wid, plan(WorkflowEvent.REQUEUE, now_ms(self.clock))
                )
                if requeued is not None:
                    self.hub.notify(f"q:{claimed.queue_name}")
                    recovered.append(wid)
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
