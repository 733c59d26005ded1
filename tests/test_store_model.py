"""Model-based test: a real store must behave exactly like ``MemoryStore``, the oracle.

A hypothesis ``RuleBasedStateMachine`` applies the same random operations (insert,
checkpoint, finish, status events, messages, events, fork, restarts) to the model and to
a system under test, asserts that every call returns the same result, and after every
rule compares everything observable: rows, listings, steps and events. Times are fed by
the rules, so both sides see the same ``now_ms``.

Systems under test come from :func:`systems_under_test`; each is a context manager that
makes a fresh, isolated database and yields a factory of store objects on it (the same
shape as ``tests.pg.postgres_schema_factory``).
"""

from __future__ import annotations

import importlib
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import attrs
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from durakit.backends import MemoryStore, SystemStore
from durakit.core.records import (
    Fence,
    NewWorkflow,
    StepRecord,
    VersionMove,
    WorkflowQuery,
    WriteResult,
)
from durakit.core.status import StatusType, WorkflowEvent
from durakit.core.transitions import Attempts, WorkflowUpdate, plan, plan_finish

T = TypeVar("T")
StoreFactory = Callable[[], SystemStore]
Database = Callable[[], AbstractContextManager[StoreFactory]]


@contextmanager
def sqlite_database() -> Iterator[StoreFactory]:
    """A fresh SQLite file for one example."""
    from durakit.backends.sqlite import SQLiteStore

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.db"
        yield lambda: SQLiteStore(path)


def systems_under_test() -> dict[str, Database]:
    """The stores checked against the model, by name (the name becomes the test ID).

    Postgres joins when ``tests/pg.py`` exists; its factory decides what an unreachable
    server means (skip locally, fail under CI), as for the contract suite.
    """
    systems: dict[str, Database] = {"sqlite": sqlite_database}
    try:
        # By name, so that this file type-checks before tests/pg.py exists.
        pg: Any = importlib.import_module("tests.pg")
    except ModuleNotFoundError:
        return systems
    systems["postgres"] = pg.postgres_schema_factory
    return systems


WORKFLOW_IDS = ["w0", "w1", "w2", "w3"]
EVENT_KEYS = ["k1", "k2"]
SOURCE_EVENTS = [
    WorkflowEvent.DEQUEUE,
    WorkflowEvent.RECOVER,
    WorkflowEvent.CANCEL,
    WorkflowEvent.TIMEOUT,
    WorkflowEvent.RESUME,
    WorkflowEvent.DEAD_LETTER,
]

wids = st.sampled_from(WORKFLOW_IDS)
any_wids = st.sampled_from([*WORKFLOW_IDS, *WORKFLOW_IDS, *WORKFLOW_IDS, "missing"])
# Three times in four a fenced call comes from the row's current owner, so that writes
# mostly succeed and the state grows; otherwise from a stale one.
as_owner = st.sampled_from([True, True, True, False])
# None stands for "the workflow's next free step ID" (what a live execution uses); the
# fixed IDs collide with recorded steps, as a replay or a zombie would.
step_ids = st.sampled_from([None, None, None, 0, 1, 2, 5])
TOPICS = [None, "t", ""]
topics = st.sampled_from(TOPICS)
payloads = st.text(alphabet="ab☃'\"", max_size=4)
statuses = st.sampled_from(list(StatusType))
CLAIMING_EVENTS = frozenset({WorkflowEvent.DEQUEUE, WorkflowEvent.RECOVER, WorkflowEvent.RESUME})
raw_updates = st.builds(
    WorkflowUpdate,
    event=st.sampled_from(list(WorkflowEvent)),
    from_statuses=st.frozensets(statuses),
    status=statuses,
    now_ms=st.just(0),  # the rule stamps the model's clock
    fence_owner=st.sampled_from([None, None, "o1", "stale"]),
    new_owner=st.sampled_from([None, "o1", "o2"]),
    executor_id=st.sampled_from([None, "e1"]),
    attempts=st.sampled_from(list(Attempts)),
    restart_clock=st.booleans(),
    release_deduplication=st.booleans(),
    sets_outcome=st.booleans(),
    output=st.none() | payloads,
    error=st.none() | payloads,
)
queries = st.builds(
    WorkflowQuery,
    workflow_ids=st.none() | st.lists(any_wids, max_size=3).map(tuple),
    statuses=st.none() | st.lists(statuses, max_size=3).map(tuple),
    name=st.sampled_from([None, "a", "b"]),
    application_id=st.sampled_from([None, "billing", "shipping"]),
    executor_ids=st.none() | st.lists(st.sampled_from(["e1", "e2"]), max_size=2).map(tuple),
    workflow_id_prefix=st.sampled_from([None, "", "w", "w1", "x"]),
    queue_name=st.sampled_from([None, "q"]),
    queues_only=st.booleans(),
    start_time=st.sampled_from([None, 100, 200]),
    end_time=st.sampled_from([None, 200, 300]),
    limit=st.none() | st.integers(min_value=0, max_value=4),
    offset=st.none() | st.integers(min_value=0, max_value=4),
    sort_desc=st.booleans(),
    load_input=st.booleans(),
    load_output=st.booleans(),
)


def observe(store: SystemStore) -> dict[str, object]:
    """Everything a store shows without changing it, keyed so a diff points at the part."""
    seen: dict[str, object] = {"list": store.list_workflows(WorkflowQuery())}
    for wid in [*WORKFLOW_IDS, "missing"]:
        seen[f"row {wid}"] = store.get_workflow(wid)
        seen[f"steps {wid}"] = store.load_steps(wid)
        for key in EVENT_KEYS:
            seen[f"event {wid} {key}"] = store.get_event(wid, key)
    return seen


class StoreModelMachine(RuleBasedStateMachine):
    """Drives ``MemoryStore`` (the model) and one real store with the same calls.

    Abstract: :func:`machine_for` makes the subclass for one system under test.
    """

    def open_database(self) -> AbstractContextManager[StoreFactory]:
        """A fresh database for one example, yielding a factory of stores on it."""
        raise NotImplementedError

    def __init__(self) -> None:
        super().__init__()
        self._stack = ExitStack()
        self._open = self._stack.enter_context(self.open_database())
        self._abandoned: list[SystemStore] = []
        self.model = MemoryStore()
        self.sut = self._new_sut()
        self.now = 10_000

    def _new_sut(self) -> SystemStore:
        store = self._open()
        store.migrate()
        return store

    def both(self, call: Callable[[SystemStore], T]) -> T:
        """Apply ``call`` to the model and the store; they must return the same."""
        expected = call(self.model)
        actual = call(self.sut)
        assert actual == expected
        return expected

    def tick(self) -> int:
        self.now += 7
        return self.now

    def step_id(self, wid: str, chosen: int | None) -> int:
        if chosen is not None:
            return chosen
        return max((s.step_id + 1 for s in self.model.load_steps(wid)), default=0)

    def fence(self, wid: str, as_owner: bool) -> Fence:
        row = self.model.get_workflow(wid)
        owner = row.owner if as_owner and row is not None and row.owner else "stale"
        return Fence(workflow_id=wid, owner=owner)

    @initialize(created=st.tuples(*[st.sampled_from([100, 200, 300])] * 3))
    def start(self, *, created: tuple[int, ...]) -> None:
        """Most rules act on live workflows; start three PENDING ones so they usually do."""
        news = [
            NewWorkflow(
                workflow_id=wid,
                name="a",
                status=StatusType.PENDING,
                input=wid,
                executor_id="e1",
                application_version="v1",
                owner="o1",
                created_at=created_at,
                queue_name="q",
                deduplication_id=f"d-{wid}",
                timeout_ms=50,
            )
            for wid, created_at in zip(WORKFLOW_IDS, created, strict=False)
        ]
        self.both(lambda s: [s.insert_workflow(new) for new in news])

    # -- rules -----------------------------------------------------------------
    @rule(
        wid=wids,
        name=st.sampled_from(["a", "b"]),
        status=st.sampled_from([StatusType.PENDING, StatusType.ENQUEUED]),
        owner=st.sampled_from([None, "o1", "o1", "o2"]),
        executor=st.sampled_from(["e1", "e2"]),
        created_at=st.sampled_from([100, 200, 300]),
        timeout=st.sampled_from([None, 50]),
        queued=st.booleans(),
        dedup=st.booleans(),
        data=payloads,
    )
    def insert(
        self,
        *,
        wid: str,
        name: str,
        status: StatusType,
        owner: str | None,
        executor: str,
        created_at: int,
        timeout: int | None,
        queued: bool,
        dedup: bool,
        data: str,
    ) -> None:
        new = NewWorkflow(
            workflow_id=wid,
            name=name,
            status=status,
            input=data,
            executor_id=executor,
            application_version="v1",
            application_id="billing" if executor == "e1" else "shipping",
            owner=owner,
            created_at=created_at,
            queue_name="q" if queued else None,
            # One deduplication ID per workflow ID: deduplication conflicts between IDs
            # are outside the protocol (MemoryStore does not enforce them).
            deduplication_id=f"d-{wid}" if dedup else None,
            timeout_ms=timeout,
            authenticated_roles=("r",) if queued else None,
        )
        self.both(lambda s: s.insert_workflow(new))

    @rule(
        wid=any_wids,
        as_owner=as_owner,
        step_id=step_ids,
        outcome=payloads,
        failed=st.booleans(),
        child=st.sampled_from([None, "w2"]),
        while_cancelled=st.booleans(),
    )
    def record_step(
        self,
        *,
        wid: str,
        as_owner: bool,
        step_id: int | None,
        outcome: str,
        failed: bool,
        child: str | None,
        while_cancelled: bool,
    ) -> None:
        now = self.tick()
        chosen = self.step_id(wid, step_id)
        step = StepRecord(
            step_id=chosen,
            name=f"s{chosen}",
            output=None if failed else outcome,
            error=outcome if failed else None,
            child_workflow_id=child,
            started_at=now - 1,
            completed_at=now,
        )
        fence = self.fence(wid, as_owner)
        self.both(lambda s: s.record_step(fence, step, while_cancelled=while_cancelled))

    @rule(
        wid=any_wids,
        as_owner=as_owner,
        status=st.sampled_from([StatusType.SUCCESS, StatusType.ERROR]),
        data=payloads,
    )
    def finish(self, *, wid: str, as_owner: bool, status: StatusType, data: str) -> None:
        output, error = (data, None) if status is StatusType.SUCCESS else (None, data)
        event = WorkflowEvent.COMPLETE if status is StatusType.SUCCESS else WorkflowEvent.FAIL
        fence = self.fence(wid, as_owner)
        update = plan_finish(
            event, owner=fence.owner, output=output, error=error, now_ms=self.tick()
        )
        self.both(lambda s: s.finish_workflow(fence, update))

    @rule(
        event=st.sampled_from(SOURCE_EVENTS),
        wid=any_wids,
        new_owner=st.sampled_from(["o1", "o2", "o3"]),
        executor=st.sampled_from(["e1", "e2"]),
    )
    def apply_event(self, *, event: WorkflowEvent, wid: str, new_owner: str, executor: str) -> None:
        """A status event as the engine applies it: the update the core plans for it."""
        now = self.tick()
        if event in CLAIMING_EVENTS:
            update = plan(event, now, owner=new_owner, executor_id=executor)
        else:
            update = plan(event, now)
        self.both(lambda s: s.transition_workflow(wid, update))

    @rule(wid=any_wids, update=raw_updates, fence_current_owner=st.booleans())
    def raw_update(self, *, wid: str, update: WorkflowUpdate, fence_current_owner: bool) -> None:
        """Any update, legal in the status table or not: a store applies it as data,
        exactly as :func:`durakit.core.transitions.applied` says, never interpreting it."""
        row = self.model.get_workflow(wid)
        if fence_current_owner and row is not None and update.fence_owner is not None:
            update = attrs.evolve(update, fence_owner=row.owner)
        update = attrs.evolve(update, now_ms=self.tick())
        self.both(lambda s: s.transition_workflow(wid, update))

    @rule(
        age=st.integers(0, 60),
        keep=st.none() | st.integers(0, 3),
        limit=st.integers(1, 5),
    )
    def garbage_collect(self, *, age: int, keep: int | None, limit: int) -> None:
        """Retention: the same workflows (with their steps, messages, events) go."""
        cutoff = self.now - age
        self.both(lambda s: s.delete_finished(cutoff, keep, limit))

    @rule(
        ids=st.none() | st.lists(any_wids, max_size=3).map(tuple),
        from_version=st.sampled_from([None, "v1", "v2"]),
        to_version=st.sampled_from(["v1", "v2"]),
        app=st.sampled_from([None, "billing", "shipping"]),
    )
    def set_version(
        self,
        *,
        ids: tuple[str, ...] | None,
        from_version: str | None,
        to_version: str,
        app: str | None,
    ) -> None:
        if ids is None and from_version is None:
            from_version = "v1"
        move = VersionMove(
            to_version=to_version,
            now_ms=self.tick(),
            application_id=app,
            workflow_ids=ids,
            from_version=from_version,
        )
        self.both(lambda s: s.set_version(move))

    @rule(
        dest=any_wids,
        topic=topics,
        count=st.integers(min_value=1, max_value=3),
        sender=st.none() | st.tuples(wids, as_owner, step_ids),
    )
    def send(
        self,
        *,
        dest: str,
        topic: str | None,
        count: int,
        sender: tuple[str, bool, int | None] | None,
    ) -> None:
        """Send ``count`` messages to one topic (so that FIFO order is observable)."""
        for _ in range(count):
            self.send_once(dest, topic, sender)

    def send_once(
        self, dest: str, topic: str | None, sender: tuple[str, bool, int | None] | None
    ) -> None:
        now = self.tick()
        payload = f"m{now}"
        fence = step = None
        if sender is not None:
            fence = self.fence(sender[0], sender[1])
            step_id = self.step_id(sender[0], sender[2])
            step = StepRecord(step_id=step_id, name="send", started_at=now, completed_at=now)
        self.both(
            lambda s: s.send_message(dest, topic, payload, now, sender=fence, sender_step=step)
        )

    @rule(wid=any_wids, as_owner=as_owner, step_id=step_ids, topic=topics)
    def receive(self, *, wid: str, as_owner: bool, step_id: int | None, topic: str | None) -> None:
        self.receive_once(self.fence(wid, as_owner), self.step_id(wid, step_id), topic)

    @rule(wid=wids)
    def drain(self, *, wid: str) -> None:
        """Receive until every topic is empty: both must hand out the same sequence."""
        fence = self.fence(wid, as_owner=True)
        for topic in TOPICS:
            while self.receive_once(fence, self.step_id(wid, None), topic)[1] is not None:
                pass

    def receive_once(
        self, fence: Fence, step_id: int, topic: str | None
    ) -> tuple[WriteResult, str | None]:
        now = self.tick()
        return self.both(lambda s: s.receive_message(fence, step_id, "recv", topic, now))

    @rule(
        wid=any_wids,
        as_owner=as_owner,
        step_id=step_ids,
        key=st.sampled_from(EVENT_KEYS),
        value=payloads,
    )
    def set_event(
        self, *, wid: str, as_owner: bool, step_id: int | None, key: str, value: str
    ) -> None:
        now = self.tick()
        fence = self.fence(wid, as_owner)
        step = StepRecord(
            step_id=self.step_id(wid, step_id), name="set_event", started_at=now, completed_at=now
        )
        self.both(lambda s: s.set_event(fence, step, key, value, now))

    @rule(source=wids, dest=any_wids, below=st.integers(min_value=0, max_value=6))
    def copy_steps(self, *, source: str, dest: str, below: int) -> None:
        self.both(lambda s: s.copy_steps(source, dest, below))

    @rule(query=queries)
    def list_workflows(self, *, query: WorkflowQuery) -> None:
        self.both(lambda s: s.list_workflows(query))

    @rule()
    def restart(self) -> None:
        """A clean shutdown, then a new store object on the same database."""
        self.sut.close()
        self.sut = self._new_sut()

    @rule()
    def crash(self) -> None:
        """The old store object is dropped without close (a killed process); a new one starts.

        At most one dropped store stays open, so that Postgres pools cannot pile up
        connections on a shared server.
        """
        for store in self._abandoned:
            store.close()
        self._abandoned = [self.sut]
        self.sut = self._new_sut()

    # -- invariants ------------------------------------------------------------
    @invariant()
    def same_observable_state(self) -> None:
        self.both(observe)

    def teardown(self) -> None:
        for store in [*self._abandoned, self.sut]:
            store.close()
        self._stack.close()


def machine_for(system: str) -> type[StoreModelMachine]:
    """The state machine for one system (its own class, so its own hypothesis database key)."""
    database = systems_under_test()[system]

    class Machine(StoreModelMachine):
        def open_database(self) -> AbstractContextManager[StoreFactory]:
            return database()

    Machine.__name__ = Machine.__qualname__ = f"{system.capitalize()}ModelMachine"
    return Machine


# Budgets that keep each system well under 30 s; Postgres pays a fresh schema per example.
EXAMPLES = {"sqlite": 150, "postgres": 25}


@pytest.mark.parametrize(
    "system",
    [
        pytest.param(name, marks=[pytest.mark.postgres] if name == "postgres" else [])
        for name in systems_under_test()
    ],
)
def test_store_behaves_like_the_model(system: str) -> None:
    budget = settings(max_examples=EXAMPLES.get(system, 40), stateful_step_count=40, deadline=None)
    run_state_machine_as_test(machine_for(system), settings=budget)
