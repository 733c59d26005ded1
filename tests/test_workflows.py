"""Behavioural suite for workflows and steps: typed values, checkpoints, retries, errors,
workflow identity and concurrency. Every test runs on each store kind."""

from __future__ import annotations

import dataclasses
import enum
import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, cast

import attrs
import pytest

import durakit as dk
from tests.conftest import StoreFactory
from tests.helpers import WAIT, Counts, new_app

# -- domain types used as workflow inputs and outputs ------------------------------------


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Priority(enum.IntEnum):
    LOW = 1
    HIGH = 2


@attrs.frozen
class Item:
    sku: str
    qty: int
    price: Decimal


@dataclasses.dataclass(frozen=True)
class Address:
    street: str
    zip_code: str | None = None


@attrs.frozen
class Order:
    id: uuid.UUID
    placed_at: datetime
    items: list[Item]
    color: Color
    priority: Priority
    address: Address | None
    tags: frozenset[str]
    notes: dict[str, int]
    ref: int | str


@attrs.frozen
class Receipt:
    order_id: uuid.UUID
    total: Decimal
    items: tuple[Item, ...]
    ship_on: date | None
    seen: list[str]


class PaymentDeclinedError(Exception):
    """A user error class defined at module level: rebuildable after a restart."""


class OddSignatureError(Exception):
    """Constructor that does not accept its own ``args`` back: rebuilt without calling it."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code}: {reason}")


ORDER = Order(
    id=uuid.UUID("12345678-1234-5678-1234-567812345678"),
    placed_at=datetime(2024, 5, 17, 13, 45, 12, 123456, tzinfo=timezone(timedelta(hours=2))),
    items=[Item("apple", 3, Decimal("0.35")), Item("pear", 2, Decimal("1.10"))],
    color=Color.BLUE,
    priority=Priority.HIGH,
    address=Address("1 Main St", None),
    tags=frozenset({"gift", "express"}),
    notes={"floor": 3},
    ref="A-7",
)


@dk.step(name="total")
def total_of(items: list[Item]) -> Decimal:
    return sum((i.price * i.qty for i in items), Decimal("0"))


def register_checkout(app: dk.Durakit, counts: Counts) -> Any:
    """Register the typed checkout workflow on ``app`` (the same code in every engine)."""

    @app.workflow(name="checkout")
    def checkout(ctx: dk.Context, order: Order) -> Receipt:
        counts.bump("body")
        seen = [
            type(order.id).__name__,
            type(order.placed_at).__name__,
            type(order.items[0]).__name__,
            type(order.items[0].price).__name__,
            type(order.color).__name__,
            type(order.priority).__name__,
            type(order.address).__name__,
            type(order.tags).__name__,
            type(order.ref).__name__,
        ]
        total = total_of(order.items)
        ship_on = ctx.run_step(lambda: order.placed_at.date() + timedelta(days=1), output_type=date)
        return Receipt(order.id, total, tuple(order.items), ship_on, seen)

    return checkout


EXPECTED_RECEIPT = Receipt(
    order_id=ORDER.id,
    total=Decimal("3.25"),
    items=tuple(ORDER.items),
    ship_on=date(2024, 5, 18),
    seen=[
        "UUID",
        "datetime",
        "Item",
        "Decimal",
        "Color",
        "Priority",
        "Address",
        "frozenset",
        "str",
    ],
)


# -- typed inputs and outputs -----------------------------------------------------------


def test_typed_input_and_output_round_trip(store_factory: StoreFactory) -> None:
    counts = Counts()
    app = new_app(store_factory())
    checkout = register_checkout(app, counts)
    with app:
        handle = app.run_workflow(checkout, ORDER, workflow_id="order-1")
        receipt = handle.get_result(timeout=WAIT)
        assert receipt == EXPECTED_RECEIPT
        assert isinstance(receipt.total, Decimal)
        assert isinstance(receipt.items[0], Item)
        status = app.list_workflows(workflow_ids=["order-1"])[0]
        assert status.input == ORDER
        assert status.output == EXPECTED_RECEIPT
        assert [(s.step_id, s.name) for s in app.get_workflow_steps("order-1")] == [
            (0, "total"),
            (1, checkout.__qualname__ + ".<locals>.<lambda>"),
        ]

    # A new engine on the same database (a restart) decodes the recorded values.
    again = new_app(store_factory())
    register_checkout(again, counts)
    with again:
        restored = again.retrieve_workflow("order-1", Receipt).get_result(timeout=WAIT)
        assert restored == EXPECTED_RECEIPT
        assert isinstance(restored.order_id, uuid.UUID)
        assert restored.ship_on == date(2024, 5, 18)
    assert counts["body"] == 1


def test_optional_union_and_collection_outputs(store: dk.SystemStore) -> None:
    app = new_app(store)

    @app.workflow()
    def shapes(ctx: dk.Context, values: list[int | None]) -> dict[str, list[Color] | None]:
        @dk.step()
        def colors(n: int) -> list[Color]:
            return [Color.RED if i % 2 else Color.BLUE for i in range(n)]

        return {str(v): (colors(v) if v is not None else None) for v in values}

    with app:
        result = app.run_workflow(shapes, [2, None, 3]).get_result(timeout=WAIT)
    assert result == {
        "2": [Color.BLUE, Color.RED],
        "None": None,
        "3": [Color.BLUE, Color.RED, Color.BLUE],
    }


def test_workflow_without_input(store: dk.SystemStore) -> None:
    app = new_app(store)

    @app.workflow()
    def answer(ctx: dk.Context) -> int:
        return ctx.run_step(lambda: 41) + 1

    with app:
        handle = app.run_workflow(answer, workflow_id="no-input")
        assert handle.get_result(timeout=WAIT) == 42
        status = handle.get_status()
        assert status.status is dk.StatusType.SUCCESS
        assert status.input is None
        assert status.output == 42


def test_a_workflow_and_a_step_returning_none(store_factory: StoreFactory) -> None:
    counts = Counts()
    app = new_app(store_factory())

    @dk.step(name="log")
    def log(text: str) -> None:
        counts.bump(text)

    @app.workflow(name="quiet")
    def quiet(ctx: dk.Context, text: str) -> None:
        log(text)
        ctx.run_step(lambda: counts.bump("after"), name="after")

    with app:
        assert app.run_workflow(quiet, "hi", workflow_id="none").get_result(WAIT) is None
        forked = app.fork_workflow("none", 1, forked_workflow_id="none-fork")
        assert forked.get_result(timeout=WAIT) is None  # step 0 replayed as None
        assert [(s.name, s.output) for s in app.get_workflow_steps("none")] == [
            ("log", None),
            ("after", 1),
        ]
    again = new_app(store_factory())
    again.register_workflow(quiet, name="quiet")
    with again:
        assert again.retrieve_workflow("none").get_result(WAIT) is None
        assert again.retrieve_workflow("none").get_status().status is dk.StatusType.SUCCESS
    assert counts.as_dict() == {"hi": 1, "after": 2}


# -- steps -------------------------------------------------------------------------------


def test_step_outside_a_workflow_is_a_plain_call(store: dk.SystemStore) -> None:
    counts = Counts()

    @dk.step(name="double")
    def double(x: int) -> int:
        counts.bump("double")
        return 2 * x

    app = new_app(store)
    with app:
        assert double(21) == 42
        assert double(21) == 42
        assert app.list_workflows() == []
    assert counts["double"] == 2


def test_step_inside_a_workflow_is_checkpointed(store: dk.SystemStore) -> None:
    counts = Counts()

    @dk.step(name="charge")
    def charge(amount: Decimal) -> Decimal:
        counts.bump("charge")
        return amount * 2

    app = new_app(store)

    @app.workflow()
    def pay(ctx: dk.Context, amount: Decimal) -> Decimal:
        return charge(amount) + charge(Decimal("1"))

    with app:
        assert app.run_workflow(pay, Decimal("2.5"), workflow_id="p").get_result(WAIT) == Decimal(
            "7.0"
        )
        steps = app.get_workflow_steps("p")
    assert counts["charge"] == 2
    assert [(s.step_id, s.name, s.output, s.error) for s in steps] == [
        (0, "charge", "5.0", None),
        (1, "charge", "2", None),
    ]


def test_a_step_called_inside_a_step_is_a_plain_call(store: dk.SystemStore) -> None:
    counts = Counts()

    @dk.step(name="inner")
    def inner(x: int) -> int:
        counts.bump("inner")
        return x + 1

    @dk.step(name="outer")
    def outer(x: int) -> int:
        counts.bump("outer")
        return inner(x) * 10

    app = new_app(store)

    @app.workflow()
    def nested(ctx: dk.Context, x: int) -> int:
        return outer(x) + inner(0)

    with app:
        assert app.run_workflow(nested, 1, workflow_id="n").get_result(WAIT) == 21
        steps = app.get_workflow_steps("n")
    assert [(s.step_id, s.name, s.output) for s in steps] == [(0, "outer", 20), (1, "inner", 1)]
    assert counts.as_dict() == {"outer": 1, "inner": 2}


def test_step_ids_count_from_zero_and_context_reports_them(store: dk.SystemStore) -> None:
    seen: list[tuple[str, str, int]] = []
    app = new_app(store)

    def record(ctx: dk.Context, where: str, value: int = 0) -> int:
        seen.append((where, ctx.workflow_id, ctx.step_id))
        return value

    @app.workflow()
    def ordered(ctx: dk.Context) -> int:
        record(ctx, "start")

        @dk.step(name="b")
        def b() -> int:
            return record(ctx, "in b", 2)

        first = ctx.run_step(lambda: record(ctx, "in a", 1), name="a")
        record(ctx, "after a")
        second = b()
        third = ctx.run_step(lambda: record(ctx, "in c", 3), name="c")
        record(ctx, "end")
        return first + second + third

    with app:
        handle = app.run_workflow(ordered, workflow_id="ids")
        assert handle.get_result(timeout=WAIT) == 6
        steps = app.get_workflow_steps("ids")
    assert [(s.step_id, s.name) for s in steps] == [(0, "a"), (1, "b"), (2, "c")]
    assert seen == [
        ("start", "ids", -1),
        ("in a", "ids", 0),
        ("after a", "ids", 0),
        ("in b", "ids", 1),
        ("in c", "ids", 2),
        ("end", "ids", 2),
    ]


def named_step() -> int:
    return 7


def test_a_step_without_a_name_is_named_after_its_function(store: dk.SystemStore) -> None:
    app = new_app(store)

    @app.workflow()
    def wf(ctx: dk.Context) -> int:
        return ctx.run_step(named_step)

    with app:
        assert app.run_workflow(wf, workflow_id="named").get_result(WAIT) == 7
        assert [s.name for s in app.get_workflow_steps("named")] == ["named_step"]


# -- retries -----------------------------------------------------------------------------


def test_a_failing_step_is_retried_until_it_succeeds(store: dk.SystemStore) -> None:
    counts = Counts()
    app = new_app(store)

    def flaky() -> str:
        attempt = counts.bump("flaky")
        if attempt < 3:
            raise ConnectionError(f"attempt {attempt}")
        return f"ok after {attempt}"

    @app.workflow()
    def wf(ctx: dk.Context) -> str:
        return ctx.run_step(flaky, name="flaky", max_retries=3, base_interval=0.001)

    with app:
        assert app.run_workflow(wf, workflow_id="r").get_result(WAIT) == "ok after 3"
        steps = app.get_workflow_steps("r")
    assert counts["flaky"] == 3
    assert [(s.name, s.output, s.error) for s in steps] == [("flaky", "ok after 3", None)]


def test_exhausted_retries_carry_every_attempts_error(
    store_factory: StoreFactory,
) -> None:
    counts = Counts()
    app = new_app(store_factory())

    def always_fails() -> int:
        raise ValueError(f"attempt {counts.bump('attempts')}")

    @app.workflow()
    def wf(ctx: dk.Context) -> int:
        return ctx.run_step(always_fails, name="doomed", max_retries=2, base_interval=0.001)

    with app:
        with pytest.raises(dk.MaxStepRetriesExceededError) as caught:
            app.run_workflow(wf, workflow_id="m").get_result(WAIT)
        step_error = app.get_workflow_steps("m")[0].error
    assert counts["attempts"] == 3
    err = caught.value
    assert err.code is dk.ErrorCode.MAX_STEP_RETRIES_EXCEEDED
    assert (err.workflow_id, err.step_name, err.step_id, err.max_retries) == ("m", "doomed", 0, 2)
    assert [(type(e), str(e)) for e in err.errors] == [
        (ValueError, "attempt 1"),
        (ValueError, "attempt 2"),
        (ValueError, "attempt 3"),
    ]
    assert isinstance(step_error, dk.MaxStepRetriesExceededError)
    assert [str(e) for e in step_error.errors] == ["attempt 1", "attempt 2", "attempt 3"]

    # After a restart the recorded error is rebuilt with its nested errors.
    again = new_app(store_factory())
    with again, pytest.raises(dk.MaxStepRetriesExceededError) as rebuilt:
        again.retrieve_workflow("m").get_result(WAIT)
    assert rebuilt.value.max_retries == 2
    assert [(type(e), str(e)) for e in rebuilt.value.errors] == [
        (ValueError, "attempt 1"),
        (ValueError, "attempt 2"),
        (ValueError, "attempt 3"),
    ]


def test_a_step_exception_is_recorded_and_raised_as_its_own_type(store: dk.SystemStore) -> None:
    counts = Counts()
    app = new_app(store)

    def broken() -> int:
        counts.bump("broken")
        raise KeyError("missing-sku")

    @app.workflow()
    def wf(ctx: dk.Context) -> str:
        try:
            ctx.run_step(broken, name="broken")
        except KeyError as exc:
            return f"caught {exc.args[0]}"
        return "not raised"

    with app:
        assert app.run_workflow(wf, workflow_id="s").get_result(WAIT) == "caught missing-sku"
        (step,) = app.get_workflow_steps("s")
    assert counts["broken"] == 1  # max_retries=0: no retry
    assert step.output is None
    assert isinstance(step.error, KeyError)
    assert step.error.args == ("missing-sku",)


# -- workflow errors ---------------------------------------------------------------------


def test_a_workflow_exception_is_recorded_and_reraised(store_factory: StoreFactory) -> None:
    counts = Counts()
    app = new_app(store_factory())

    @app.workflow(name="declines")
    def declines(ctx: dk.Context, card: str) -> int:
        counts.bump("body")
        raise PaymentDeclinedError(f"card {card} declined")

    with app:
        handle = app.run_workflow(declines, "4242", workflow_id="e")
        with pytest.raises(PaymentDeclinedError, match="card 4242 declined"):
            handle.get_result(timeout=WAIT)
        status = handle.get_status()
        assert status.status is dk.StatusType.ERROR
        assert isinstance(status.error, PaymentDeclinedError)
        assert status.output is None
        # The same ID again returns the recorded error without running the body.
        with pytest.raises(PaymentDeclinedError):
            app.run_workflow(declines, "4242", workflow_id="e").get_result(WAIT)

    again = new_app(store_factory())
    with again, pytest.raises(PaymentDeclinedError) as caught:
        again.retrieve_workflow("e").get_result(timeout=WAIT)
    assert caught.value.args == ("card 4242 declined",)
    notes = "".join(getattr(caught.value, "__notes__", []))
    assert "Recorded traceback" in notes
    assert "declines" in notes  # the original frame is named in the recorded traceback
    assert counts["body"] == 1


def test_an_exception_that_cannot_be_rebuilt_becomes_workflow_execution_error(
    store_factory: StoreFactory,
) -> None:
    class LocalError(Exception):
        pass

    app = new_app(store_factory())

    @app.workflow()
    def local(ctx: dk.Context) -> int:
        raise LocalError("only this test knows me")

    @app.workflow()
    def odd(ctx: dk.Context) -> int:
        raise OddSignatureError(7, "strange")

    with app:
        # Live, the caller sees what any other process sees: a class no reader can
        # import is a WorkflowExecutionError here too.
        with pytest.raises(dk.WorkflowExecutionError) as live:
            app.run_workflow(local, workflow_id="local").get_result(WAIT)
        with pytest.raises(OddSignatureError):
            app.run_workflow(odd, workflow_id="odd").get_result(WAIT)

    again = new_app(store_factory())
    with again:
        with pytest.raises(dk.WorkflowExecutionError) as first:
            again.retrieve_workflow("local").get_result(WAIT)
        with pytest.raises(OddSignatureError) as second:
            again.retrieve_workflow("odd").get_result(WAIT)
    for caught in (live.value, first.value):
        assert caught.error_type == f"{__name__}.{LocalError.__qualname__}"
        assert "only this test knows me" in str(caught)
        assert caught.code is dk.ErrorCode.WORKFLOW_EXECUTION
    assert str(second.value) == "7: strange"


# -- serialization failures --------------------------------------------------------------


def test_a_non_serializable_input_is_rejected_before_anything_is_written(
    store: dk.SystemStore,
) -> None:
    counts = Counts()
    app = new_app(store)

    @app.workflow()
    def typed(ctx: dk.Context, order: Order) -> int:
        counts.bump("typed")
        return 1

    @app.workflow()
    def untyped(ctx: dk.Context, value: Any) -> int:
        counts.bump("untyped")
        return 1

    with app:
        with pytest.raises(dk.SerializationError, match="input of workflow"):
            app.run_workflow(typed, cast(Any, object()), workflow_id="bad-1")
        with pytest.raises(dk.SerializationError, match="not declared"):
            app.run_workflow(untyped, {1, 2}, workflow_id="bad-2")
        with pytest.raises(dk.SerializationError):
            app.run_workflow(untyped, {"when": datetime.now(UTC)}, workflow_id="bad-3")
        assert app.list_workflows() == []
        with pytest.raises(dk.NonExistentWorkflowError):
            app.retrieve_workflow("bad-1")
    assert counts.as_dict() == {}


def test_an_output_that_cannot_be_stored_ends_the_workflow_in_error(
    store_factory: StoreFactory,
) -> None:
    app = new_app(store_factory())

    @app.workflow()
    def bad_output(ctx: dk.Context) -> int:
        return cast(int, object())

    @app.workflow()
    def bad_attrs_output(ctx: dk.Context) -> Receipt:
        return cast(Receipt, {"not": "a receipt"})

    with app:
        for wf, wid in ((bad_output, "out-1"), (bad_attrs_output, "out-2")):
            with pytest.raises(dk.SerializationError, match="output of workflow"):
                app.run_workflow(wf, workflow_id=wid).get_result(WAIT)
            status = app.retrieve_workflow(wid).get_status()
            assert status.status is dk.StatusType.ERROR
            assert isinstance(status.error, dk.SerializationError)
            assert status.output is None

    again = new_app(store_factory())
    with again, pytest.raises(dk.SerializationError, match="output of workflow"):
        again.retrieve_workflow("out-1").get_result(WAIT)


def test_an_untyped_step_returning_a_non_json_value_is_rejected(store: dk.SystemStore) -> None:
    app = new_app(store)
    moment = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)

    @app.workflow()
    def wf(ctx: dk.Context) -> str:
        try:
            ctx.run_step(lambda: moment, name="untyped")
        except dk.SerializationError as exc:
            message = str(exc)
        else:
            message = "accepted"
        typed = ctx.run_step(lambda: moment, name="typed", output_type=datetime)
        assert typed == moment
        return message

    with app:
        message = app.run_workflow(wf, workflow_id="lam").get_result(WAIT)
        steps = app.get_workflow_steps("lam")
    assert "output of step 'untyped'" in message
    assert "datetime" in message
    assert "not declared" in message
    assert [(s.name, type(s.error)) for s in steps] == [
        ("untyped", dk.SerializationError),
        ("typed", type(None)),
    ]
    assert steps[1].output == moment.isoformat()


# -- identity ----------------------------------------------------------------------------


def test_the_same_workflow_id_runs_the_body_once(store_factory: StoreFactory) -> None:
    counts = Counts()
    app = new_app(store_factory())

    @app.workflow(name="inc")
    def inc(ctx: dk.Context, x: int) -> int:
        counts.bump("body")
        return ctx.run_step(lambda: counts.bump("step") and x + 1, name="add")

    with app:
        first = app.run_workflow(inc, 1, workflow_id="once")
        assert first.get_result(timeout=WAIT) == 2
        second = app.run_workflow(inc, 100, workflow_id="once")  # recorded outcome wins
        assert second.workflow_id == "once"
        assert second.get_result(timeout=WAIT) == 2
    again = new_app(store_factory())
    again.register_workflow(inc, name="inc")
    with again:
        assert again.run_workflow(inc, 5, workflow_id="once").get_result(WAIT) == 2
    assert counts.as_dict() == {"body": 1, "step": 1}


def test_concurrent_starts_of_one_id_run_the_body_once(store: dk.SystemStore) -> None:
    counts = Counts()
    release = threading.Event()
    app = new_app(store)

    @app.workflow()
    def wf(ctx: dk.Context, x: int) -> int:
        counts.bump("body")
        release.wait(WAIT)
        return x * 10

    starters = 8
    barrier = threading.Barrier(starters)
    handles: dict[int, dk.WorkflowHandle[int]] = {}
    errors: list[BaseException] = []

    def start(i: int) -> None:
        try:
            barrier.wait(WAIT)
            handles[i] = app.run_workflow(wf, i, workflow_id="contended")
        except BaseException as exc:
            errors.append(exc)

    with app:
        threads = [threading.Thread(target=start, args=(i,)) for i in range(starters)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT)
        assert errors == []
        release.set()
        results = {h.get_result(timeout=WAIT) for h in handles.values()}
    assert len(handles) == starters
    assert len(results) == 1
    assert results <= {i * 10 for i in range(starters)}
    assert counts["body"] == 1


def test_the_same_id_with_another_workflow_name_conflicts(store: dk.SystemStore) -> None:
    counts = Counts()
    app = new_app(store)

    @app.workflow(name="first")
    def first(ctx: dk.Context) -> int:
        return 1

    @app.workflow(name="second")
    def second(ctx: dk.Context) -> int:
        counts.bump("second")
        return 2

    with app:
        assert app.run_workflow(first, workflow_id="shared").get_result(WAIT) == 1
        with pytest.raises(dk.ConflictingWorkflowError) as caught:
            app.run_workflow(second, workflow_id="shared")
        assert app.retrieve_workflow("shared").get_result(WAIT) == 1
    err = caught.value
    assert err.code is dk.ErrorCode.CONFLICTING_WORKFLOW
    assert (err.workflow_id, err.recorded_name, err.expected_name) == ("shared", "first", "second")
    assert counts["second"] == 0


def test_child_workflows_get_deterministic_ids_and_are_recorded_as_steps(
    store: dk.SystemStore,
) -> None:
    counts = Counts()
    app = new_app(store)

    @app.workflow(name="child")
    def child(ctx: dk.Context, x: int) -> int:
        counts.bump(ctx.workflow_id)
        return ctx.run_step(lambda: x * x, name="square")

    @app.workflow(name="parent")
    def parent(ctx: dk.Context, x: int) -> list[int]:
        base = ctx.run_step(lambda: x + 1, name="prepare")
        implicit = ctx.run_workflow(child, base)
        explicit = ctx.run_workflow(child, base + 1, workflow_id="my-child")
        # The engine's run_workflow inside a workflow starts a child too.
        via_engine = app.run_workflow(child, 1)
        assert via_engine.workflow_id == "par-3"
        return [implicit.get_result(), explicit.get_result(), via_engine.get_result()]

    with app:
        assert app.run_workflow(parent, 2, workflow_id="par").get_result(WAIT) == [9, 16, 1]
        steps = app.get_workflow_steps("par")
        children = {s.workflow_id: s for s in app.list_workflows(name="child")}
    assert [(s.step_id, s.name, s.child_workflow_id) for s in steps] == [
        (0, "prepare", None),
        (1, "child", "par-1"),
        (2, "child", "my-child"),
        (3, "child", "par-3"),
    ]
    assert set(children) == {"par-1", "my-child", "par-3"}
    assert children["par-1"].output == 9
    assert children["my-child"].input == 4
    assert counts.as_dict() == {"par-1": 1, "my-child": 1, "par-3": 1}


def test_two_engines_in_one_process_are_independent(store: dk.SystemStore) -> None:
    counts = Counts()
    other_store = dk.MemoryStore()
    one = new_app(store, executor_id="one")
    two = new_app(other_store, executor_id="two")

    def wf(ctx: dk.Context, x: int) -> str:
        counts.bump(ctx.workflow_id)
        return f"{x}"

    one.register_workflow(wf, name="wf")
    two.register_workflow(wf, name="wf")  # same function and name: no conflict across engines

    @one.workflow(name="only-in-one")
    def only_one(ctx: dk.Context) -> int:
        return 1

    with one, two:
        assert one.run_workflow(wf, 1, workflow_id="same-id").get_result(WAIT) == "1"
        assert two.run_workflow(wf, 2, workflow_id="same-id").get_result(WAIT) == "2"
        assert [w.executor_id for w in one.list_workflows()] == ["one"]
        assert [w.executor_id for w in two.list_workflows()] == ["two"]
        with pytest.raises(dk.WorkflowExecutionError):
            two.run_workflow(only_one)
    assert counts["same-id"] == 2


def test_registration_after_launch_or_twice_conflicts(store: dk.SystemStore) -> None:
    app = new_app(store)

    def wf(ctx: dk.Context) -> int:
        return 1

    def other(ctx: dk.Context) -> int:
        return 2

    app.register_workflow(wf, name="wf")
    with pytest.raises(dk.ConflictingRegistrationError):
        app.register_workflow(other, name="wf")  # name taken
    with pytest.raises(dk.ConflictingRegistrationError):
        app.register_workflow(wf, name="wf-again")  # function taken
    with app:
        with pytest.raises(dk.ConflictingRegistrationError) as caught:
            app.register_workflow(other, name="late")
        assert caught.value.code is dk.ErrorCode.CONFLICTING_REGISTRATION
        with pytest.raises(dk.ConflictingRegistrationError):
            app.workflow(name="late-decorated")(other)
        assert app.run_workflow(wf).get_result(WAIT) == 1


def test_starting_an_unregistered_function_raises(store: dk.SystemStore) -> None:
    app = new_app(store)

    def stray(ctx: dk.Context) -> int:
        return 1

    with app:
        with pytest.raises(dk.WorkflowExecutionError, match="not a registered workflow"):
            app.run_workflow(stray)
        assert app.list_workflows() == []


def test_an_unknown_queue_raises_instead_of_stranding_work(store: dk.SystemStore) -> None:
    counts = Counts()
    app = new_app(store)

    @app.workflow()
    def wf(ctx: dk.Context) -> int:
        counts.bump("body")
        return 1

    with app:
        with pytest.raises(dk.WorkflowExecutionError) as caught:
            app.run_workflow(wf, queue="no-such-queue", workflow_id="q")
        assert caught.value.queue_name == "no-such-queue"
        assert app.list_workflows() == []
    assert counts["body"] == 0


# -- concurrency -------------------------------------------------------------------------


def test_a_thousand_started_workflows_all_run_at_once(store: dk.SystemStore) -> None:
    n = 1000
    barrier = threading.Barrier(n, timeout=60)
    app = new_app(store)

    @app.workflow()
    def meet(ctx: dk.Context, i: int) -> int:
        barrier.wait()  # only returns once all n bodies are running at the same time
        return i

    with app:
        handles = [app.run_workflow(meet, i) for i in range(n)]
        results = [h.get_result(timeout=90) for h in handles]
    assert results == list(range(n))


def test_max_concurrent_workflows_bounds_running_bodies(store: dk.SystemStore) -> None:
    lock = threading.Condition()
    inside = 0
    peak = 0
    gate = threading.Event()
    app = new_app(store, max_concurrent_workflows=2)

    @app.workflow()
    def bounded(ctx: dk.Context, i: int) -> int:
        nonlocal inside, peak
        with lock:
            inside += 1
            peak = max(peak, inside)
            lock.notify_all()
        gate.wait(WAIT)
        with lock:
            inside -= 1
        return i

    with app:
        handles = [app.run_workflow(bounded, i) for i in range(6)]
        with lock:
            assert lock.wait_for(lambda: inside == 2, WAIT)
        time.sleep(0.1)  # give a third body the chance to (wrongly) start
        with lock:
            assert inside == 2
        gate.set()
        assert [h.get_result(timeout=WAIT) for h in handles] == list(range(6))
    assert peak == 2


def test_identifiers_with_nul_characters_are_refused_on_every_store(store: dk.SystemStore) -> None:
    app = dk.Durakit(dk.Config(app_name="nul", store=store))

    @app.workflow()
    def talk(ctx: dk.Context) -> None:
        ctx.send(ctx.workflow_id, "hi", topic="bad\x00topic")

    with app:
        with pytest.raises(ValueError, match="workflow_id must not contain NUL"):
            app.run_workflow(talk, workflow_id="a\x00b")
        assert app.list_workflows() == []
        with pytest.raises(ValueError, match="topic must not contain NUL"):
            app.run_workflow(talk).get_result()
        with pytest.raises(ValueError, match="key must not contain NUL"):
            app.get_event("x", "k\x00", timeout=0)
