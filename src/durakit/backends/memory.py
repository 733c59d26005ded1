"""``MemoryStore``: the reference implementation of the store protocol.

The simplest correct code: plain dicts behind one lock, every method one critical
section (which is what makes each method atomic). Shipped for users' tests, and used as
the oracle that the SQLite and Postgres stores are compared against.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence

import attrs

from durakit.backends.claims import decide
from durakit.core import retention, rows, transitions
from durakit.core.admission import Candidate, Load, QueuePolicy
from durakit.core.errors import QueueDeduplicatedError
from durakit.core.records import (
    Claim,
    Fence,
    InsertResult,
    NewWorkflow,
    StepRecord,
    VersionMove,
    WorkflowQuery,
    WorkflowRecord,
    WriteResult,
)
from durakit.core.status import StatusType, WorkflowEvent
from durakit.core.transitions import WorkflowUpdate, applied, plan


def matches(rec: WorkflowRecord, q: WorkflowQuery) -> bool:
    """Whether ``rec`` passes every filter of ``q`` (the reference semantics)."""
    checks = (
        q.workflow_ids is None or rec.workflow_id in q.workflow_ids,
        q.statuses is None or rec.status in q.statuses,
        q.name is None or rec.name == q.name,
        q.user is None or rec.authenticated_user == q.user,
        q.app_version is None or rec.application_version == q.app_version,
        q.application_id is None or rec.application_id == q.application_id,
        q.executor_ids is None or rec.executor_id in q.executor_ids,
        q.workflow_id_prefix is None or rec.workflow_id.startswith(q.workflow_id_prefix),
        q.queue_name is None or rec.queue_name == q.queue_name,
        not q.queues_only or rec.queue_name is not None,
        q.start_time is None or rec.created_at >= q.start_time,
        q.end_time is None or rec.created_at <= q.end_time,
    )
    return all(checks)


def page(records: list[WorkflowRecord], q: WorkflowQuery) -> list[WorkflowRecord]:
    """Sort, offset, limit and strip payloads as ``q`` asks."""
    records.sort(key=lambda r: (r.created_at, r.workflow_id), reverse=q.sort_desc)
    start = q.offset or 0
    end = None if q.limit is None else start + q.limit
    out = records[start:end]
    if not q.load_input:
        out = [attrs.evolve(r, input=None) for r in out]
    if not q.load_output:
        out = [attrs.evolve(r, output=None, error=None) for r in out]
    return out


class MemoryStore:
    """A thread-safe in-process store. Data lives as long as the object."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._workflows: dict[str, WorkflowRecord] = {}
        self._steps: dict[str, dict[int, StepRecord]] = {}
        self._messages: dict[tuple[str, str | None], deque[str]] = {}
        self._events: dict[tuple[str, str], str] = {}
        self._paused: set[str] = set()
        self._closed = False

    # -- lifecycle -------------------------------------------------------------
    def migrate(self) -> None:
        """Nothing to migrate in memory."""

    def close(self) -> None:
        """Nothing to release: the data stays, and an engine launched again uses it."""
        self._closed = True

    # -- workflows -------------------------------------------------------------
    def insert_workflow(self, new: NewWorkflow) -> InsertResult:
        with self._lock:
            existing = self._workflows.get(new.workflow_id)
            if existing is not None:
                return InsertResult(created=False, record=existing)
            if new.deduplication_id is not None:
                for other in self._workflows.values():
                    if (other.queue_name, other.deduplication_id) == (
                        new.queue_name,
                        new.deduplication_id,
                    ):
                        raise QueueDeduplicatedError(
                            f"workflow {new.workflow_id!r} not created: deduplication ID "
                            f"{new.deduplication_id!r} is in use on queue {new.queue_name!r}",
                            workflow_id=new.workflow_id,
                            queue_name=new.queue_name,
                            deduplication_id=new.deduplication_id,
                        )
            rec = rows.created(new)
            self._workflows[new.workflow_id] = rec
            return InsertResult(created=True, record=rec)

    def get_workflow(self, workflow_id: str) -> WorkflowRecord | None:
        with self._lock:
            return self._workflows.get(workflow_id)

    def list_workflows(self, query: WorkflowQuery) -> list[WorkflowRecord]:
        with self._lock:
            found = [r for r in self._workflows.values() if matches(r, query)]
        return page(found, query)

    def _fence_check(self, fence: Fence, *, while_cancelled: bool = False) -> WriteResult:
        rec = self._workflows.get(fence.workflow_id)
        if rec is None:
            return rows.fence_verdict(None, None, fence.owner)
        return rows.fence_verdict(
            rec.status, rec.owner, fence.owner, while_cancelled=while_cancelled
        )

    def finish_workflow(self, fence: Fence, update: WorkflowUpdate) -> WriteResult:
        transitions.check_finish(fence, update)
        with self._lock:
            verdict = self._fence_check(fence)
            if verdict is not WriteResult.OK:
                return verdict
            rec = self._workflows[fence.workflow_id]
            self._workflows[fence.workflow_id] = transitions.applied(rec, update)
            return WriteResult.OK

    def transition_workflow(
        self, workflow_id: str, update: WorkflowUpdate
    ) -> WorkflowRecord | None:
        with self._lock:
            rec = self._workflows.get(workflow_id)
            if rec is None or not transitions.matches(rec, update):
                return None
            new = transitions.applied(rec, update)
            self._workflows[workflow_id] = new
            return new

    def set_version(self, selection: VersionMove) -> list[str]:
        with self._lock:
            moved = sorted(w for w, rec in self._workflows.items() if selection.picks(rec))
            for wid in moved:
                self._workflows[wid] = attrs.evolve(
                    self._workflows[wid],
                    application_version=selection.to_version,
                    updated_at=selection.now_ms,
                )
            return moved

    def delete_finished(self, cutoff_ms: int, keep: int | None, limit: int) -> int:
        with self._lock:
            doomed = retention.collectable(self._workflows.values(), cutoff_ms, keep, limit)
            for wid in doomed:
                del self._workflows[wid]
                self._steps.pop(wid, None)
            gone = set(doomed)
            for key in [k for k in self._messages if k[0] in gone]:
                del self._messages[key]
            for key in [k for k in self._events if k[0] in gone]:
                del self._events[key]
            return len(doomed)

    # -- steps -----------------------------------------------------------------
    def load_steps(self, workflow_id: str) -> list[StepRecord]:
        with self._lock:
            steps = self._steps.get(workflow_id, {})
            return [steps[k] for k in sorted(steps)]

    def _insert_step(self, workflow_id: str, step: StepRecord) -> WriteResult:
        steps = self._steps.setdefault(workflow_id, {})
        if step.step_id in steps:
            return WriteResult.DUPLICATE
        steps[step.step_id] = step
        return WriteResult.OK

    def record_step(
        self, fence: Fence, step: StepRecord, *, while_cancelled: bool = False
    ) -> WriteResult:
        with self._lock:
            verdict = self._fence_check(fence, while_cancelled=while_cancelled)
            if not verdict.written:
                return verdict
            inserted = self._insert_step(fence.workflow_id, step)
            return verdict if inserted is WriteResult.OK else inserted

    def copy_steps(self, source_id: str, target_id: str, below_step: int) -> int:
        with self._lock:
            source = self._steps.get(source_id, {})
            target = self._steps.setdefault(target_id, {})
            copied = 0
            for step_id, step in source.items():
                if step_id < below_step and step_id not in target:
                    target[step_id] = step
                    copied += 1
            return copied

    # -- messages and events ---------------------------------------------------
    def send_message(
        self,
        destination_id: str,
        topic: str | None,
        payload: str,
        now_ms: int,
        *,
        sender: Fence | None = None,
        sender_step: StepRecord | None = None,
    ) -> WriteResult:
        with self._lock:
            if destination_id not in self._workflows:
                return WriteResult.NOT_PENDING
            if sender is not None and sender_step is not None:
                verdict = self._fence_check(sender)
                if verdict is WriteResult.OK:
                    verdict = self._insert_step(sender.workflow_id, sender_step)
                if verdict is not WriteResult.OK:
                    return verdict
            self._messages.setdefault((destination_id, topic), deque()).append(payload)
            return WriteResult.OK

    def receive_message(
        self, fence: Fence, step_id: int, step_name: str, topic: str | None, now_ms: int
    ) -> tuple[WriteResult, str | None]:
        with self._lock:
            verdict = self._fence_check(fence)
            if verdict is not WriteResult.OK:
                return verdict, None
            queue = self._messages.get((fence.workflow_id, topic))
            if not queue:
                return WriteResult.OK, None
            if step_id in self._steps.get(fence.workflow_id, {}):
                return WriteResult.DUPLICATE, None
            payload = queue.popleft()
            step = StepRecord(
                step_id=step_id,
                name=step_name,
                output=payload,
                started_at=now_ms,
                completed_at=now_ms,
            )
            self._insert_step(fence.workflow_id, step)
            return WriteResult.OK, payload

    def set_event(
        self, fence: Fence, step: StepRecord, key: str, value: str, now_ms: int
    ) -> WriteResult:
        with self._lock:
            verdict = self._fence_check(fence)
            if verdict is WriteResult.OK:
                verdict = self._insert_step(fence.workflow_id, step)
            if verdict is WriteResult.OK:
                self._events[(fence.workflow_id, key)] = value
            return verdict

    def get_event(self, workflow_id: str, key: str) -> str | None:
        with self._lock:
            return self._events.get((workflow_id, key))

    # -- queues ------------------------------------------------------------------
    def claim_queued(
        self,
        policy: QueuePolicy,
        *,
        executor_id: str,
        application_version: str,
        owner: str,
        now_ms: int,
    ) -> Claim:
        with self._lock:
            if policy.name in self._paused:
                return Claim()
            loads = self._loads(policy, executor_id, now_ms)
            visible: list[Candidate] = []
            later: list[int] = []
            for rec in self._workflows.values():
                if (
                    rec.queue_name != policy.name
                    or rec.status is not StatusType.ENQUEUED
                    or rec.application_version not in (application_version, "")
                ):
                    continue
                if rec.visible_at is not None and rec.visible_at > now_ms:
                    later.append(rec.visible_at)
                    continue
                visible.append(
                    Candidate(
                        workflow_id=rec.workflow_id,
                        created_at=rec.created_at,
                        priority=rec.priority,
                        partition=rec.queue_partition_key,
                        visible_at=rec.visible_at,
                    )
                )
            admitted, wake = decide(policy, loads, visible, now_ms, min(later) if later else None)
            update = plan(WorkflowEvent.DEQUEUE, now_ms, owner=owner, executor_id=executor_id)
            claimed = []
            for candidate in admitted:
                rec = applied(self._workflows[candidate.workflow_id], update)
                # Enqueued for any version (by a client): the dequeuing executor's now.
                rec = attrs.evolve(rec, application_version=application_version)
                self._workflows[candidate.workflow_id] = rec
                claimed.append(rec)
            return Claim(claimed=tuple(claimed), retry_at=wake)

    def _loads(self, policy: QueuePolicy, executor_id: str, now_ms: int) -> dict[str | None, Load]:
        """Running counts and recent starts of the queue, per partition (None if not
        partitioned)."""
        since = None if policy.rate_limit is None else now_ms - policy.rate_limit.period_ms
        counts: dict[str | None, list[int]] = {}
        oldest: dict[str | None, int] = {}
        for rec in self._workflows.values():
            if rec.queue_name != policy.name:
                continue
            key = rec.queue_partition_key if policy.partitioned else None
            here, total, recent = counts.setdefault(key, [0, 0, 0])
            if rec.status is StatusType.PENDING:
                total += 1
                here += rec.executor_id == executor_id
            if since is not None and rec.started_at is not None and rec.started_at > since:
                recent += 1
                oldest[key] = min(oldest.get(key, rec.started_at), rec.started_at)
            counts[key] = [here, total, recent]
        return {
            key: Load(
                running_here=here,
                running_total=total,
                recent_starts=recent,
                oldest_start=oldest.get(key),
            )
            for key, (here, total, recent) in counts.items()
        }

    def queues_with_work(self, names: Sequence[str], application_version: str) -> set[str]:
        wanted = set(names)
        with self._lock:
            return {
                rec.queue_name
                for rec in self._workflows.values()
                if rec.queue_name in wanted
                and rec.status is StatusType.ENQUEUED
                and rec.application_version in (application_version, "")
            }

    def set_queue_paused(self, name: str, paused: bool) -> None:
        with self._lock:
            if paused:
                self._paused.add(name)
            else:
                self._paused.discard(name)
