"""What only the Postgres store promises: migrations, fencing under a real race, NOTIFY,
surviving connection loss, and one round trip per checkpoint.

The behavioural contract shared with the other stores is in test_store_contract.py.
"""

from __future__ import annotations

import itertools
import queue
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import pq, sql
from psycopg.conninfo import make_conninfo

from durakit.backends import MemoryStore, PushNotifications
from durakit.backends.postgres import PostgresStore
from durakit.backends.postgres_schema import SCHEMA_VERSION
from durakit.backends.urls import open_store
from durakit.core.errors import InitializationError, StoreUnavailableError
from durakit.core.records import StepRecord, WorkflowQuery, WriteResult
from durakit.core.status import StatusType, WorkflowEvent
from tests.pg import fresh_schema, postgres_url, proxied, require_postgres
from tests.records_support import apply, fence, finish, new_wf, run_threads, step

PENDING = StatusType.PENDING
CANCELLED = StatusType.CANCELLED
SUCCESS = StatusType.SUCCESS

MakeStore = Callable[..., PostgresStore]


@pytest.fixture
def pg() -> Iterator[tuple[str, str]]:
    """``(url, schema)`` of a fresh schema, dropped after the test."""
    with fresh_schema() as where:
        yield where


@pytest.fixture
def make_store(pg: tuple[str, str]) -> Iterator[MakeStore]:
    """Open (and by default migrate) stores on the test's schema; all closed at teardown.

    ``app`` sets the sessions' application_name, so a test can kill exactly the
    connections of one store (the database may be shared with other test runs).
    """
    url, schema = pg
    opened: list[PostgresStore] = []

    def make(*, app: str | None = None, migrate: bool = True, **options: Any) -> PostgresStore:
        conninfo = url if app is None else make_conninfo(url, application_name=app)
        store = PostgresStore(conninfo, schema, **options)
        opened.append(store)
        if migrate:
            store.migrate()
        return store

    yield make
    for store in opened:
        store.close()


def unique_app() -> str:
    return f"durakit-test-{uuid.uuid4().hex[:10]}"


def kill_sessions(application_name: str) -> int:
    """Terminate every session with that application_name; how many there were."""
    with psycopg.connect(postgres_url(), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND application_name = %s",
            (application_name,),
        ).fetchall()
    return len(rows)


def schema_version(url: str, schema: str) -> int:
    with psycopg.connect(url) as conn:
        query = sql.SQL("SELECT version FROM {}.schema_version").format(sql.Identifier(schema))
        row = conn.execute(query).fetchone()
    assert row is not None
    return int(row[0])


pytestmark = pytest.mark.postgres


# -- migrations ----------------------------------------------------------------------


def test_concurrent_migrations_from_threads(make_store: MakeStore, pg: tuple[str, str]) -> None:
    stores = [make_store(migrate=False) for _ in range(8)]
    run_threads(len(stores), lambda i: stores[i].migrate())
    assert schema_version(*pg) == SCHEMA_VERSION
    assert stores[0].insert_workflow(new_wf()).created
    assert stores[-1].get_workflow("wf") is not None


_MIGRATE_IN_A_PROCESS = """
import sys, time
from durakit.backends.postgres import PostgresStore
store = PostgresStore(sys.argv[1], sys.argv[2])
time.sleep(max(0.0, float(sys.argv[3]) - time.time()))  # all start migrating together
store.migrate()
store.close()
"""


def test_concurrent_migrations_from_processes(pg: tuple[str, str]) -> None:
    url, schema = pg
    start_at = str(time.time() + 2.0)  # after every interpreter has imported psycopg
    procs = [
        subprocess.Popen([sys.executable, "-c", _MIGRATE_IN_A_PROCESS, url, schema, start_at])
        for _ in range(4)
    ]
    assert [p.wait(60) for p in procs] == [0] * 4
    assert schema_version(url, schema) == SCHEMA_VERSION


def test_migrate_twice_changes_nothing(make_store: MakeStore, pg: tuple[str, str]) -> None:
    store = make_store()
    store.insert_workflow(new_wf())
    store.migrate()
    make_store()
    assert schema_version(*pg) == SCHEMA_VERSION
    assert store.get_workflow("wf") is not None


def test_a_schema_from_a_newer_durakit_is_refused(
    make_store: MakeStore, pg: tuple[str, str]
) -> None:
    url, schema = pg
    make_store()
    newer = SCHEMA_VERSION + 1
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("UPDATE {}.schema_version SET version = %s").format(sql.Identifier(schema)),
            (newer,),
        )
    with pytest.raises(InitializationError, match=rf"version {newer}.* up to {SCHEMA_VERSION}"):
        make_store()
    assert schema_version(url, schema) == newer


@pytest.mark.parametrize("schema", ["", "x" * 64, "nul\x00"])
def test_unusable_schema_names_are_refused(schema: str) -> None:
    with pytest.raises(InitializationError, match="schema name"):
        PostgresStore(postgres_url(), schema)


# -- fencing under a real race -------------------------------------------------------


def _checkpoint_until_refused(
    store: PostgresStore,
    wf: str,
    k: int,
    *,
    taken: threading.Event,
    late: list[StepRecord],
    outcomes: list[WriteResult],
) -> None:
    """Record steps k*1e6, k*1e6+1, ... as the old owner until refused.

    Collects in ``late`` the checkpoints that succeeded although they started after
    ``taken`` was set, and in ``outcomes`` the refusal.
    """
    for i in itertools.count():
        after = taken.is_set()
        attempt = step(k * 1_000_000 + i, output=str(i))
        result = store.record_step(fence(wf), attempt)
        if result is not WriteResult.OK:
            outcomes.append(result)
            return
        if after:
            late.append(attempt)


@pytest.mark.parametrize("how", ["takeover", "cancel"])
def test_no_write_of_the_old_owner_lands_after_a_takeover(make_store: MakeStore, how: str) -> None:
    """Writers of the old owner hammer checkpoints while the workflow is taken over.

    Whatever the old owner wrote must be visible right after the takeover returned, and
    nothing more may appear later: every in-flight checkpoint either committed before
    the takeover did, or was refused.
    """
    store = make_store(max_size=8)
    refusal = WriteResult.NOT_OWNER if how == "takeover" else WriteResult.CANCELLED
    rng = random.Random(7)
    for round_no in range(15):
        wf = f"wf-{round_no}"
        store.insert_workflow(new_wf(wf))
        taken = threading.Event()
        late: list[StepRecord] = []
        outcomes: list[WriteResult] = []
        threads = [
            threading.Thread(
                target=_checkpoint_until_refused,
                args=(store, wf, k),
                kwargs={"taken": taken, "late": late, "outcomes": outcomes},
            )
            for k in range(4)
        ]
        for t in threads:
            t.start()
        time.sleep(rng.uniform(0.001, 0.02))  # let the writers get going
        if how == "takeover":
            moved = apply(store, wf, WorkflowEvent.RECOVER, 2_000, owner="owner-2")
        else:
            moved = apply(store, wf, WorkflowEvent.CANCEL, 2_000)
        taken.set()
        assert moved is not None
        at_takeover = store.load_steps(wf)
        for t in threads:
            t.join()
        assert late == []
        assert outcomes == [refusal] * 4
        assert store.load_steps(wf) == at_takeover
        assert len(at_takeover) > 0  # the race really was run against live writers


# -- NOTIFY --------------------------------------------------------------------------


def test_writes_notify_subscribers_of_the_schema(make_store: MakeStore) -> None:
    writer = make_store()
    listener = make_store()
    assert isinstance(listener, PushNotifications)
    keys: queue.Queue[str] = queue.Queue()
    listener.subscribe(keys.put)

    writer.insert_workflow(new_wf("wf"))
    writer.insert_workflow(new_wf("dest"))
    moved = apply(writer, "wf", WorkflowEvent.RECOVER, 2, owner="owner-2")
    assert moved is not None
    assert writer.send_message("dest", "t", "m", 3) is WriteResult.OK
    sent = writer.send_message(
        "dest", None, "m2", 4, sender=fence("wf", "owner-2"), sender_step=step(0)
    )
    assert sent is WriteResult.OK
    assert writer.set_event(fence("wf", "owner-2"), step(1), "k", "v", 5) is WriteResult.OK
    # Refused writes notify nothing: the next key must be the finish's.
    assert finish(writer, fence("wf"), SUCCESS, "x", None, 6) is WriteResult.NOT_OWNER
    assert writer.record_step(fence("wf", "owner-2"), step(2)) is WriteResult.OK
    assert finish(writer, fence("wf", "owner-2"), SUCCESS, "x", None, 7) is WriteResult.OK

    expected = ["wf:wf", "msg:dest", "msg:dest", "evt:wf", "wf:wf"]
    assert [keys.get(timeout=10) for _ in expected] == expected


def test_other_schemas_do_not_wake_this_one(make_store: MakeStore) -> None:
    mine = make_store()
    keys: queue.Queue[str] = queue.Queue()
    mine.subscribe(keys.put)
    with fresh_schema() as (url, other_schema):
        other = PostgresStore(url, other_schema)
        try:
            other.migrate()
            other.insert_workflow(new_wf("elsewhere"))
            finish(other, fence("elsewhere"), SUCCESS, "x", None, 2)
        finally:
            other.close()
    mine.insert_workflow(new_wf("here"))
    finish(mine, fence("here"), SUCCESS, "x", None, 2)
    assert keys.get(timeout=10) == "wf:here"  # commit order: "elsewhere" would come first


def test_every_subscriber_is_called_and_a_failing_one_does_not_stop_others(
    make_store: MakeStore,
) -> None:
    store = make_store()
    first: queue.Queue[str] = queue.Queue()
    second: queue.Queue[str] = queue.Queue()

    def broken(key: str) -> None:
        raise RuntimeError(f"subscriber bug on {key}")

    store.subscribe(first.put)
    store.subscribe(broken)
    store.subscribe(second.put)
    store.insert_workflow(new_wf())
    finish(store, fence(), SUCCESS, "x", None, 2)
    assert first.get(timeout=10) == second.get(timeout=10) == "wf:wf"


def test_listener_reconnects_and_asks_for_a_full_recheck(make_store: MakeStore) -> None:
    app = unique_app()
    subscriber = make_store(app=app)
    writer = make_store()
    keys: queue.Queue[str] = queue.Queue()
    subscriber.subscribe(keys.put)
    assert kill_sessions(app) >= 1  # the listener's connection (and the pool's)
    assert keys.get(timeout=10) == "*"
    writer.insert_workflow(new_wf())
    finish(writer, fence(), SUCCESS, "x", None, 2)
    assert keys.get(timeout=10) == "wf:wf"


# -- connection loss -----------------------------------------------------------------


def test_every_call_survives_its_connections_being_killed(make_store: MakeStore) -> None:
    app = unique_app()
    store = make_store(app=app, min_size=2)
    killed: list[int] = []

    def then(call: Callable[[], Any]) -> Any:
        killed.append(kill_sessions(app))
        return call()

    assert then(lambda: store.insert_workflow(new_wf("wf"))).created
    assert then(lambda: store.insert_workflow(new_wf("dest"))).created
    assert then(lambda: store.record_step(fence(), step(0, output="a"))) is WriteResult.OK
    assert then(lambda: store.load_steps("wf")) == [step(0, output="a")]
    assert then(lambda: store.set_event(fence(), step(1), "k", "v", 2)) is WriteResult.OK
    assert then(lambda: store.get_event("wf", "k")) == "v"
    assert then(lambda: store.send_message("wf", None, "m", 3)) is WriteResult.OK
    sent = then(
        lambda: store.send_message("dest", None, "n", 3, sender=fence(), sender_step=step(2))
    )
    assert sent is WriteResult.OK
    assert then(lambda: store.receive_message(fence(), 3, "r", None, 4)) == (WriteResult.OK, "m")
    assert then(lambda: store.copy_steps("wf", "dest", 2)) == 2
    moved = then(lambda: apply(store, "dest", WorkflowEvent.CANCEL, 5))
    assert moved is not None
    assert moved.status is CANCELLED
    assert then(lambda: finish(store, fence(), SUCCESS, "x", None, 6)) is WriteResult.OK
    listed = then(lambda: store.list_workflows(WorkflowQuery()))
    assert [(r.workflow_id, r.status) for r in listed] == [("dest", CANCELLED), ("wf", SUCCESS)]
    assert all(n >= 1 for n in killed)  # every call really lost its connections first


def test_calls_give_up_after_the_retry_budget(pg: tuple[str, str]) -> None:
    url, schema = pg
    bad = make_conninfo(url, port="1")  # nothing listens there: connection refused
    store = PostgresStore(bad, schema, retry_timeout=0.5)
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError, match="unreachable") as info:
            store.get_workflow("wf")
        assert 0.4 < time.monotonic() - started < 10
        assert isinstance(info.value.__cause__, psycopg.OperationalError)
    finally:
        store.close()


def test_a_call_during_an_outage_succeeds_soon_after_the_server_is_back(
    pg: tuple[str, str],
) -> None:
    url, schema = pg
    proxy, through = proxied(url)
    store = PostgresStore(through, schema)
    outcome: queue.Queue[tuple[float, BaseException | None]] = queue.Queue()

    def call() -> None:
        try:
            store.get_workflow("wf")
            outcome.put((time.monotonic(), None))
        except BaseException as exc:
            outcome.put((time.monotonic(), exc))

    try:
        store.migrate()
        assert store.get_workflow("wf") is None  # the pool holds a live connection
        proxy.stop()  # a 5 s outage: every connection cut, new ones refused
        time.sleep(1.0)
        caller = threading.Thread(target=call, daemon=True)
        caller.start()  # fails on its dead connection, then waits for the pool
        time.sleep(4.0)
        proxy.start()
        back = time.monotonic()
        # psycopg_pool alone backs off 1, 2, 4 s (about 0, 1, 3, 7 s after the failure):
        # its next attempt would come about 3 s after the server is back.
        done, error = outcome.get(timeout=30)
        assert error is None
        assert done - back < 2.0
    finally:
        proxy.stop()
        store.close()


@pytest.fixture
def lossy(make_store: MakeStore, monkeypatch: pytest.MonkeyPatch) -> PostgresStore:
    """A store whose every call loses the reply of its first attempt after it committed.

    That is the ambiguous case of a real connection loss: the write happened, the
    client cannot know, and the retry must recognise its own write.
    """
    store = make_store()
    real_run = store._db.run

    def run(op: Callable[[Any, bool], Any]) -> Any:
        lost = False

        def first_reply_lost(conn: Any, retried: bool) -> Any:
            nonlocal lost
            result = op(conn, retried)
            if not lost:
                lost = True
                raise psycopg.OperationalError("simulated: connection lost after the commit")
            return result

        return real_run(first_reply_lost)

    monkeypatch.setattr(store._db, "run", run)
    return store


def test_retries_after_an_ambiguous_commit_recognise_their_own_writes(
    lossy: PostgresStore,
) -> None:
    store = lossy
    inserted = store.insert_workflow(new_wf())
    assert inserted.created
    unowned = store.insert_workflow(new_wf("unowned", owner=None))
    assert unowned.created
    # Another start (its own owner token) of the same ID is still told it did not create.
    assert not store.insert_workflow(new_wf(owner="owner-other")).created
    assert store.record_step(fence(), step(0, output="a")) is WriteResult.OK
    assert store.set_event(fence(), step(1), "k", "v", 2) is WriteResult.OK
    assert store.send_message("wf", "t", "m1", 3) is WriteResult.OK
    sent = store.send_message("unowned", "t", "m2", 3, sender=fence(), sender_step=step(2))
    assert sent is WriteResult.OK
    assert store.receive_message(fence(), 3, "r", "t", 4) == (WriteResult.OK, "m1")
    assert store.receive_message(fence(), 4, "r", "t", 5) == (WriteResult.OK, None)  # once
    assert store.copy_steps("wf", "unowned", 2) == 2
    assert [s.step_id for s in store.load_steps("wf")] == [0, 1, 2, 3]
    assert store.get_event("wf", "k") == "v"
    cancelled = apply(store, "unowned", WorkflowEvent.CANCEL, 6)
    assert cancelled is not None
    assert finish(store, fence(), SUCCESS, "out", None, 7) is WriteResult.OK
    record = store.get_workflow("wf")
    assert record is not None
    assert (record.status, record.output) == (SUCCESS, "out")
    # A genuine duplicate (different content) is still reported as one.
    store.insert_workflow(new_wf("w2"))
    assert store.record_step(fence("w2"), step(0, output="a")) is WriteResult.OK
    assert store.record_step(fence("w2"), step(0, output="b")) is WriteResult.DUPLICATE


# -- cost: round trips ---------------------------------------------------------------


class Trips:
    """How many round trips a block of calls made (set when the block ends)."""

    count = -1


@contextmanager
def round_trips(store: PostgresStore) -> Iterator[Trips]:
    """Count the round trips of the store's only connection (libpq's protocol trace).

    Every round trip ends with the server's ReadyForQuery message, so counting those
    counts round trips, including any that the pool itself would make on checkout.
    """
    trips = Trips()
    with tempfile.TemporaryFile("w+") as trace:
        with store._db.pool.connection() as conn:
            conn.pgconn.trace(trace.fileno())
            conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
        try:
            yield trips
        finally:
            with store._db.pool.connection() as conn:
                conn.pgconn.untrace()  # flushes the trace
            trace.seek(0)
            # The untrace checkout above is inside the trace too; it made no round trip.
            trips.count = sum("\tReadyForQuery" in line for line in trace)


def test_each_hot_call_is_one_round_trip(make_store: MakeStore) -> None:
    store = make_store(min_size=1, max_size=1)
    # Warm up: the first use of each statement on a connection also prepares it.
    store.insert_workflow(new_wf("warm"))
    store.insert_workflow(new_wf("dest"))
    store.record_step(fence("warm"), step(0))
    store.set_event(fence("warm"), step(1), "k", "v", 1)
    store.send_message("dest", None, "m", 1, sender=fence("warm"), sender_step=step(2))
    store.receive_message(fence("dest"), 0, "r", None, 1)
    store.load_steps("warm")
    finish(store, fence("warm"), SUCCESS, "x", None, 2)

    calls: list[tuple[str, Callable[[], object]]] = [
        ("start", lambda: store.insert_workflow(new_wf())),
        ("load steps", lambda: store.load_steps("wf")),
        *[
            (f"checkpoint {i}", lambda i=i: store.record_step(fence(), step(i, output="1")))
            for i in range(10)
        ],
        ("set_event", lambda: store.set_event(fence(), step(10), "k", "v", 3)),
        (
            "send",
            lambda: store.send_message("dest", None, "m", 3, sender=fence(), sender_step=step(11)),
        ),
        ("recv", lambda: store.receive_message(fence("dest"), 1, "r", None, 4)),
        ("finish", lambda: finish(store, fence(), SUCCESS, "x", None, 5)),
    ]
    for what, call in calls:
        with round_trips(store) as trips:
            call()
        assert trips.count == 1, what


# -- selection by URL ----------------------------------------------------------------


def test_open_store_by_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert isinstance(open_store("memory://", "s"), MemoryStore)
    for url, path in [
        (None, tmp_path / "durakit.db"),
        ("sqlite:///rel.db", tmp_path / "rel.db"),
        (f"sqlite:///{tmp_path / 'abs.db'}", tmp_path / "abs.db"),
    ]:
        store = open_store(url, "s")
        store.migrate()
        store.close()
        assert path.exists(), url
    require_postgres()
    for scheme in ("postgresql", "postgres"):
        url = postgres_url().replace("postgresql://", f"{scheme}://", 1)
        store = open_store(url, "unused")
        assert isinstance(store, PostgresStore)
        store.close()


@pytest.mark.parametrize(
    "url",
    ["mysql://user:s3cret@host/db", "sqlite://", "memory://somewhere", "nonsense"],
)
def test_open_store_refuses_unknown_urls_without_leaking_passwords(url: str) -> None:
    with pytest.raises(InitializationError, match="unsupported database URL") as info:
        open_store(url, "s")
    assert "s3cret" not in str(info.value)
