"""One execution of one workflow in this process: the ``Context`` the body receives.

It asks the core what to do at each step position (replay or execute), runs what must
run, and checkpoints through fenced store writes. A fenced write that is refused turns
into a control-flow signal (``WorkflowInterrupted``, a BaseException) that unwinds the
body without recording anything. A cancel is the one refusal that waits: the step that
was running when it came still records its outcome, and the body stops at its next
durable operation (``check_interrupt``).
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from durakit.api.clock import now_ms
from durakit.api.errors_codec import safe_repr
from durakit.api.handle import WorkflowHandle, seconds
from durakit.api.observability import observe_step
from durakit.api.serialization import declared_return_type
from durakit.api.validation import (
    check_duration,
    check_identifier,
    check_identifiers,
    refuse_unsupported_result,
)
from durakit.core.errors import (
    DurakitTimeoutError,
    MaxStepRetriesExceededError,
    NonExistentWorkflowError,
    OwnershipLostSignal,
    StoreUnavailableError,
    StoreUnavailableSignal,
    WorkflowCancelledSignal,
    WorkflowInterrupted,
)
from durakit.core.records import Fence, StepRecord, WorkflowRecord, WriteResult
from durakit.core.replay import Replay, decide_step
from durakit.core.retry import RetryPolicy
from durakit.core.status import StatusType

if TYPE_CHECKING:
    from durakit.api.engine import Durakit
    from durakit.api.registry import WorkflowDef

R = TypeVar("R")
T = TypeVar("T")
P = ParamSpec("P")

IN_STEP: contextvars.ContextVar[bool] = contextvars.ContextVar("durakit_in_step", default=False)

SEND, RECV, SLEEP = "durakit.send", "durakit.recv", "durakit.sleep"
SET_EVENT, GET_EVENT = "durakit.set_event", "durakit.get_event"


DERIVED_STEP_NAME = " (derived from the step function's __qualname__)"


def step_name_of(fn: Callable[..., object]) -> str:
    target = getattr(fn, "func", fn)
    return str(getattr(target, "__qualname__", None) or getattr(target, "__name__", "step"))


class WorkflowContext:
    """The live ``Context`` of one execution (one owner token)."""

    def __init__(
        self,
        engine: Durakit,
        defn: WorkflowDef,
        record: WorkflowRecord,
        owner: str,
        recorded: list[StepRecord],
    ) -> None:
        self._engine = engine
        self.defn = defn
        self.fence = Fence(workflow_id=record.workflow_id, owner=owner)
        self._recorded = {s.step_id: s for s in recorded}
        self._next_step = 0
        self._deadline = None if record.deadline_ms is None else record.deadline_ms / 1000
        self.wake = threading.Event()  # set to interrupt a wait (cancel, shutdown)
        self.interrupt: WorkflowInterrupted | None = None

    # -- identity ---------------------------------------------------------------
    @property
    def workflow_id(self) -> str:
        return self.fence.workflow_id

    @property
    def step_id(self) -> int:
        return self._next_step - 1

    @property
    def deadline_ms(self) -> int | None:
        return None if self._deadline is None else int(self._deadline * 1000)

    def _take_step(self) -> int:
        step_id = self._next_step
        self._next_step += 1
        return step_id

    def _call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Call the store (or the engine) on behalf of the body. An outage past the
        store's retry budget becomes an interruption, never an exception the body could
        catch or be recorded as failing with: the workflow stays PENDING and the engine
        recovers it once the store answers again."""
        try:
            return fn(*args, **kwargs)
        except StoreUnavailableError as exc:
            raise StoreUnavailableSignal(self.workflow_id) from exc

    def _decide(self, step_id: int, name: str) -> Replay | None:
        decision = decide_step(self.workflow_id, step_id, name, self._recorded.get(step_id))
        return decision if isinstance(decision, Replay) else None

    # -- interruption -------------------------------------------------------------
    def request_interrupt(self, signal: WorkflowInterrupted) -> None:
        """Ask the body to stop at its next durable operation (from any thread)."""
        if self.interrupt is None:
            self.interrupt = signal
        self.wake.set()
        self._engine.hub.notify(f"wf:{self.workflow_id}")

    def check_interrupt(self) -> None:
        """Raise the pending signal, expiring the workflow first if its deadline passed."""
        deadline = self._deadline
        if self.interrupt is None and deadline is not None and self._engine.clock.now() >= deadline:
            self._call(self._engine.expire_workflow, self.workflow_id)
            self.request_interrupt(WorkflowCancelledSignal(self.workflow_id))
        if self.interrupt is not None:
            raise self.interrupt

    def _refused(self, verdict: WriteResult) -> WorkflowInterrupted:
        if verdict is WriteResult.CANCELLED:
            return WorkflowCancelledSignal(self.workflow_id)
        return OwnershipLostSignal(self.workflow_id)

    def _checkpoint(self, step: StepRecord) -> None:
        verdict = self._call(self._engine.store.record_step, self.fence, step)
        if verdict is not WriteResult.OK:
            raise self._refused(verdict)

    def _checkpoint_outcome(self, step: StepRecord) -> None:
        """Record the outcome of a step that ran. A cancel that came while it ran does
        not refuse it (running steps are not interrupted, and a resume must not run
        this one again): the outcome is kept and the body stops at its next durable
        operation instead -- also when the cancel was made elsewhere, unseen until now."""
        verdict = self._call(self._engine.store.record_step, self.fence, step, while_cancelled=True)
        if verdict is WriteResult.RECORDED_WHILE_CANCELLED:
            self.request_interrupt(WorkflowCancelledSignal(self.workflow_id))
        elif verdict is not WriteResult.OK:
            raise self._refused(verdict)

    def _wait(self, until: float | None, poll: float | None = None) -> None:
        """Sleep until ``until`` (clock time), the deadline, an interrupt, or a poll."""
        if self._deadline is not None:
            until = self._deadline if until is None else min(until, self._deadline)
        self._engine.clock.wait(self.wake, until, poll)
        self.check_interrupt()

    # -- steps --------------------------------------------------------------------
    @observe_step
    def run_step(
        self,
        fn: Callable[[], R],
        *,
        name: str | None = None,
        max_retries: int = 0,
        backoff_factor: float = 2.0,
        base_interval: float = 0.1,
        max_interval: float = 5.0,
        output_type: type[R] | None = None,
    ) -> R:
        step_name = (
            check_identifier("name", step_name_of(fn), derived=DERIVED_STEP_NAME)
            if name is None
            else check_identifier("name", name)
        )
        type_ = output_type if output_type is not None else declared_return_type(fn)
        policy = RetryPolicy(
            max_retries=max_retries,
            backoff_factor=backoff_factor,
            base_interval=check_duration("base_interval", base_interval),
            max_interval=check_duration("max_interval", max_interval),
        )
        step_id = self._take_step()
        replay = self._decide(step_id, step_name)
        if replay is not None:
            return self._replay(replay.record, type_)  # type: ignore[no-any-return]
        self.check_interrupt()
        ser = self._engine.serializer
        started = now_ms(self._engine.clock)
        errors: list[Exception] = []
        while True:
            token = IN_STEP.set(True)
            try:
                value = fn()
            except Exception as exc:  # noqa: BLE001 - a step's exception is its outcome
                errors.append(exc)
            else:
                refuse_unsupported_result(value, step_name)
                try:
                    text, live = ser.roundtrip(value, type_, what=f"output of step {step_name!r}")
                except Exception as exc:  # noqa: BLE001 - recorded like the step raised it
                    errors = [exc]
                    break
                self._checkpoint_outcome(
                    StepRecord(
                        step_id=step_id,
                        name=step_name,
                        output=text,
                        started_at=started,
                        completed_at=now_ms(self._engine.clock),
                    )
                )
                return live  # type: ignore[no-any-return]
            finally:
                IN_STEP.reset(token)
            if not policy.may_retry(len(errors)):
                break
            retry_at = self._engine.clock.now() + policy.delay_before_retry(len(errors))
            while self._engine.clock.now() < retry_at:
                self._wait(retry_at)
        error: Exception = errors[-1]
        if max_retries > 0 and len(errors) > max_retries:
            error = MaxStepRetriesExceededError(
                f"step {step_name!r} of workflow {self.workflow_id!r} failed "
                f"{len(errors)} times; last error: {safe_repr(errors[-1])}",
                errors=errors,
                workflow_id=self.workflow_id,
                step_name=step_name,
                step_id=step_id,
                max_retries=max_retries,
            )
        # The workflow catches the rebuilt exception, as a replay would: the same class,
        # args and JSON attributes, and nothing that only the live object had.
        text, rebuilt = ser.roundtrip_error(error)
        self._checkpoint_outcome(
            StepRecord(
                step_id=step_id,
                name=step_name,
                error=text,
                started_at=started,
                completed_at=now_ms(self._engine.clock),
            )
        )
        raise rebuilt

    def _replay(self, record: StepRecord, type_: Any) -> Any:
        ser = self._engine.serializer
        if record.error is not None:
            raise ser.loads_error(record.error, what=f"recorded error of step {record.name!r}")
        if record.output is None:
            return None
        return ser.loads(record.output, type_, what=f"recorded output of step {record.name!r}")

    # -- child workflows ----------------------------------------------------------
    def run_workflow(
        self,
        fn: Callable[..., R],
        *args: Any,
        workflow_id: str | None = None,
        timeout: float | timedelta | None = None,
        detached: bool = False,
    ) -> WorkflowHandle[R]:
        engine = self._engine
        defn = engine.registry.by_fn(fn)
        child_id = (
            check_identifier(
                "workflow_id",
                f"{self.workflow_id}-{self._next_step}",
                derived=" (derived from the parent's ID)",
            )
            if workflow_id is None
            else check_identifier("workflow_id", workflow_id)
        )
        seconds(timeout)  # refuses a bad one before the step is taken
        step_id = self._take_step()
        replay = self._decide(step_id, defn.name)
        if replay is not None and replay.record.child_workflow_id is not None:
            return engine.handle_for(replay.record.child_workflow_id, defn.output_type)
        self.check_interrupt()
        handle: WorkflowHandle[R] = self._call(
            engine.start_workflow,
            defn,
            args,
            workflow_id=child_id,
            timeout=timeout,
            parent=None if detached else self,
        )
        try:
            self._checkpoint(
                StepRecord(step_id=step_id, name=defn.name, child_workflow_id=child_id)
            )
        except WorkflowCancelledSignal:
            # Cancelled after the child started but before this record: the cascade,
            # which finds children through these records, could not see it.
            child = self._call(engine.store.get_workflow, child_id)
            if child is not None and child.parent_workflow_id == self.workflow_id:
                self._call(engine.cancel_workflow, child_id)
            raise
        return handle

    # -- messages, events, sleep ----------------------------------------------------
    def send(self, destination_id: str, message: object, topic: str | None = None) -> None:
        check_identifiers(destination_id=destination_id, topic=topic)
        step_id = self._take_step()
        if self._decide(step_id, SEND) is not None:
            return
        self.check_interrupt()
        engine = self._engine
        payload = engine.serializer.dumps_payload(message, what=f"message to {destination_id!r}")
        step = StepRecord(step_id=step_id, name=SEND, output=engine.serializer.dumps(None))
        verdict = self._call(
            engine.store.send_message,
            destination_id,
            topic,
            payload,
            now_ms(engine.clock),
            sender=self.fence,
            sender_step=step,
        )
        if (
            verdict is WriteResult.NOT_PENDING
            and self._call(engine.store.get_workflow, destination_id) is None
        ):
            raise NonExistentWorkflowError(
                f"cannot send to workflow {destination_id!r}: it does not exist",
                workflow_id=self.workflow_id,
                destination_id=destination_id,
            )
        if verdict is not WriteResult.OK:
            raise self._refused(verdict)
        engine.hub.notify(f"msg:{destination_id}")

    def _durable_deadline(self, step_id: int, timeout: float | timedelta) -> float:
        """The absolute wake time recorded at ``step_id`` (recording it if new)."""
        replay = self._decide(step_id, SLEEP)
        ser = self._engine.serializer
        if replay is not None and replay.record.output is not None:
            return float(ser.loads(replay.record.output)) / 1000
        wake_ms = now_ms(self._engine.clock) + int((seconds(timeout) or 0.0) * 1000)
        self._checkpoint(StepRecord(step_id=step_id, name=SLEEP, output=ser.dumps(wake_ms)))
        return wake_ms / 1000

    def sleep(self, duration: float | timedelta) -> timedelta:
        seconds(duration, "duration")
        step_id = self._take_step()
        self.check_interrupt()
        wake = self._durable_deadline(step_id, duration)
        if self._engine.clock.now() < wake:
            while self._engine.clock.now() < wake:
                self._wait(wake)
            self._check_cancelled_elsewhere()
        return duration if isinstance(duration, timedelta) else timedelta(seconds=duration)

    def _check_cancelled_elsewhere(self) -> None:
        """A sleep ends without a fenced write, so a cancel made by another process with
        no notification to this one (SQLite, a client) would go unseen until the next
        step had already run: read the status once when a real wait ends."""
        record = self._call(self._engine.store.get_workflow, self.workflow_id)
        if record is not None and record.status is StatusType.CANCELLED:
            self.request_interrupt(WorkflowCancelledSignal(self.workflow_id))
        self.check_interrupt()

    def recv(
        self, topic: str | None = None, timeout: float | timedelta = 60.0, *, type: Any = None
    ) -> Any:
        check_identifiers(topic=topic)
        seconds(timeout)
        sleep_id, recv_id = self._take_step(), self._take_step()
        replay = self._decide(recv_id, RECV)
        if replay is not None:
            return self._replay(replay.record, type)
        self.check_interrupt()
        engine = self._engine
        what = f"message on topic {topic!r}"
        wake: float | None = None
        backoff = engine.hub.backoff()
        with engine.hub.listening(f"msg:{self.workflow_id}", f"wf:{self.workflow_id}") as event:
            while True:
                event.clear()
                verdict, payload = self._call(
                    engine.store.receive_message,
                    self.fence,
                    recv_id,
                    RECV,
                    topic,
                    now_ms(engine.clock),
                )
                if verdict is not WriteResult.OK:
                    raise self._refused(verdict)
                if payload is not None:
                    return engine.serializer.loads(payload, type, what=what)
                if wake is None:
                    wake = self._durable_deadline(sleep_id, timeout)
                if engine.clock.now() >= wake:
                    return self._timed_out(recv_id, RECV, f"no {what} within {timeout}")
                self._wait_either(event, wake, backoff.next())

    def _wait_either(self, event: threading.Event, until: float, poll: float) -> None:
        """Wait for a store notification or an interrupt (both set ``event``: the hub
        listens on this workflow's own key too), until ``until``."""
        if self._deadline is not None:
            until = min(until, self._deadline)
        if not self.wake.is_set():
            self._engine.clock.wait(event, until, poll)
        self.check_interrupt()

    def _timed_out(self, step_id: int, name: str, message: str) -> Any:
        error = DurakitTimeoutError(
            f"workflow {self.workflow_id!r}: {message}",
            workflow_id=self.workflow_id,
            step_id=step_id,
            step_name=name,
        )
        self._checkpoint(
            StepRecord(step_id=step_id, name=name, error=self._engine.serializer.dumps_error(error))
        )
        raise error

    def set_event(self, key: str, value: object) -> None:
        check_identifiers(key=key)
        step_id = self._take_step()
        if self._decide(step_id, SET_EVENT) is not None:
            return
        self.check_interrupt()
        engine = self._engine
        payload = engine.serializer.dumps_payload(value, what=f"event {key!r}")
        step = StepRecord(step_id=step_id, name=SET_EVENT, output=engine.serializer.dumps(None))
        verdict = self._call(
            engine.store.set_event, self.fence, step, key, payload, now_ms(engine.clock)
        )
        if verdict is not WriteResult.OK:
            raise self._refused(verdict)
        engine.hub.notify(f"evt:{self.workflow_id}")

    def get_event(
        self, workflow_id: str, key: str, timeout: float | timedelta = 60.0, *, type: Any = None
    ) -> Any:
        check_identifiers(workflow_id=workflow_id, key=key)
        seconds(timeout)
        sleep_id, get_id = self._take_step(), self._take_step()
        replay = self._decide(get_id, GET_EVENT)
        if replay is not None:
            return self._replay(replay.record, type)
        self.check_interrupt()
        engine = self._engine
        wake: float | None = None
        backoff = engine.hub.backoff()
        with engine.hub.listening(f"evt:{workflow_id}", f"wf:{self.workflow_id}") as event:
            while True:
                event.clear()
                payload = self._call(engine.store.get_event, workflow_id, key)
                if payload is not None:
                    self._checkpoint(StepRecord(step_id=get_id, name=GET_EVENT, output=payload))
                    return engine.serializer.loads(payload, type, what=f"event {key!r}")
                if wake is None:
                    wake = self._durable_deadline(sleep_id, timeout)
                if engine.clock.now() >= wake:
                    return self._timed_out(
                        get_id, GET_EVENT, f"event {key!r} of {workflow_id!r} not set in time"
                    )
                self._wait_either(event, wake, backoff.next())
