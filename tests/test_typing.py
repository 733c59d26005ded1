"""Static typing of the public API, checked by ``mypy --strict`` (this file is in the
mypy ``files``), and run by pytest against a memory store so every line is also real.

``assert_type`` lines pin what mypy infers. Lines that must NOT type-check carry a
``# type: ignore[code]``; with ``warn_unused_ignores`` on, an ignore that stops being
needed (because the API got looser) fails mypy, so the expected errors stay honest.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any, assert_type

import attrs
import pytest

import durakit as dk
from durakit.testing import MockContext


@attrs.frozen
class Order:
    id: str
    amount: Decimal


@attrs.frozen
class Receipt:
    order_id: str
    charged: Decimal


@dk.step(name="charge", max_retries=1, base_interval=0.001)
def charge(order: Order, fee: Decimal = Decimal("0")) -> Decimal:
    return order.amount + fee


def register(app: dk.Durakit) -> None:
    app.register_workflow(checkout, name="checkout")
    app.register_workflow(answer, name="answer")
    app.register_workflow(waits_for_order, name="waits_for_order")
    app.register_workflow(parent, name="parent")


def checkout(ctx: dk.Context, order: Order) -> Receipt:
    charged = charge(order, fee=Decimal("0.5"))
    assert_type(charged, Decimal)
    doubled = ctx.run_step(lambda: charged * 2, name="double", output_type=Decimal)
    assert_type(doubled, Decimal)
    note = ctx.run_step(lambda: f"{order.id} paid", name="note")
    assert_type(note, str)
    assert_type(ctx.workflow_id, str)
    assert_type(ctx.step_id, int)
    assert_type(ctx.sleep(timedelta(0)), timedelta)
    return Receipt(order.id, charged)


def answer(ctx: dk.Context) -> int:
    return 42


def _every_call_form_is_typed(ctx: dk.Context, mock: MockContext) -> None:
    """Checked by mypy only (never called): recv and get_event, type given or not,
    timeout positional or by keyword, on the engine's context and on the mock."""
    assert_type(ctx.recv("t", 5, type=Order), Order)
    assert_type(ctx.recv("t", timeout=5, type=Order), Order)
    assert_type(ctx.recv(), Any)
    assert_type(ctx.get_event("w", "k", 5, type=Order), Order)
    assert_type(ctx.get_event("w", "k", type=Order), Order)
    assert_type(ctx.get_event("w", "k"), Any)
    assert_type(mock.recv(type=Order), Order)
    assert_type(mock.recv("t", 1), Any)
    assert_type(mock.get_event("w", "k", 1, type=Order), Order)
    assert_type(mock.get_event("w", "k", timeout=1), Any)


def waits_for_order(ctx: dk.Context) -> Order:
    order = ctx.recv(type=Order)
    assert_type(order, Order)
    untyped = ctx.recv("other", timedelta(seconds=5))
    assert_type(untyped, Any)
    assert untyped == {"plain": "json"}
    return order


def parent(ctx: dk.Context, order: Order) -> str:
    child = ctx.run_workflow(checkout, order)
    assert_type(child, dk.WorkflowHandle[Receipt])
    receipt = child.get_result()
    assert_type(receipt, Receipt)
    no_input = ctx.run_workflow(answer)
    assert_type(no_input, dk.WorkflowHandle[int])
    return f"{receipt.order_id}:{no_input.get_result()}"


@pytest.fixture
def app() -> Iterator[dk.Durakit]:
    engine = dk.Durakit(dk.Config(app_name="typing", store=dk.MemoryStore()))
    register(engine)
    with engine:
        yield engine


ORDER = Order("o-1", Decimal("10"))


def test_handle_is_typed_by_the_workflow_output(app: dk.Durakit) -> None:
    handle = app.run_workflow(checkout, ORDER)
    assert_type(handle, dk.WorkflowHandle[Receipt])
    receipt = handle.get_result(timeout=5)
    assert_type(receipt, Receipt)
    assert receipt == Receipt("o-1", Decimal("10.5"))
    assert_type(handle.workflow_id, str)
    assert_type(handle.get_status(), dk.WorkflowStatus)


def test_a_workflow_without_input(app: dk.Durakit) -> None:
    assert_type(app.run_workflow(answer), dk.WorkflowHandle[int])
    assert app.run_workflow(answer, workflow_id="a").get_result(timeout=5) == 42


def test_typed_receive_and_child_workflows(app: dk.Durakit) -> None:
    waiting = app.run_workflow(waits_for_order, workflow_id="waiter")
    app.send("waiter", ORDER)
    app.send("waiter", {"plain": "json"}, topic="other")
    assert_type(waiting.get_result(timeout=5), Order)
    assert waiting.get_result(timeout=5) == ORDER
    assert app.run_workflow(parent, ORDER).get_result(timeout=5) == "o-1:42"


def test_step_keeps_the_functions_signature() -> None:
    assert_type(charge(ORDER), Decimal)
    assert charge(ORDER, fee=Decimal("1")) == Decimal("11")
    with pytest.raises(AttributeError):
        charge("not an order")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        charge(ORDER, Decimal("1"), Decimal("2"))  # type: ignore[call-arg]


def test_the_step_decorator_returns_a_typed_step_object() -> None:
    as_step: dk.Step[[Order, Decimal], Decimal] = charge  # the signature and R flow through
    wrong: dk.Step[[Order], str] = charge  # type: ignore[assignment]
    assert as_step is charge
    assert wrong is charge  # type: ignore[comparison-overlap]
    assert isinstance(charge, dk.Step)
    assert (charge.name, charge.output_type, charge.__name__) == ("charge", Decimal, "charge")
    assert charge.policy == dk.RetryPolicy(max_retries=1, base_interval=0.001)
    assert charge.fn(ORDER) == Decimal("10")
    assert repr(charge) == "Step('charge')"


def test_retrieve_workflow_with_an_output_type(app: dk.Durakit) -> None:
    app.run_workflow(checkout, ORDER, workflow_id="typed").get_result(timeout=5)
    typed = app.retrieve_workflow("typed", Receipt)
    assert_type(typed, dk.WorkflowHandle[Receipt])
    assert_type(typed.get_result(), Receipt)
    untyped = app.retrieve_workflow("typed")
    assert_type(untyped, dk.WorkflowHandle[Any])
    assert typed.get_result(timeout=5) == Receipt("o-1", Decimal("10.5"))


def test_decorators_return_typed_workflow_objects() -> None:
    engine = dk.Durakit(dk.Config(app_name="typing-objects", store=dk.MemoryStore()))

    @engine.workflow(name="typed_checkout")
    def typed_checkout(ctx: dk.Context, order: Order) -> Receipt:
        return Receipt(order.id, charge(order))

    @engine.workflow()
    def typed_answer(ctx: dk.Context) -> int:
        return 7

    registered = engine.register_workflow(parent, name="registered_parent")
    assert_type(typed_checkout, dk.Workflow[Order, Receipt])
    assert_type(typed_answer, dk.Workflow[None, int])
    assert_type(registered, dk.Workflow[Order, str])
    assert typed_checkout.name == "typed_checkout"
    assert typed_checkout.input_type is Order
    assert typed_checkout.output_type is Receipt
    assert typed_checkout.__name__ == "typed_checkout"
    with engine:
        assert_type(engine.run_workflow(typed_checkout, ORDER), dk.WorkflowHandle[Receipt])
        assert_type(engine.run_workflow(typed_answer), dk.WorkflowHandle[int])
        assert engine.run_workflow(typed_answer).get_result(timeout=5) == 7
        done = engine.run_workflow(typed_checkout, ORDER).get_result(timeout=5)
        assert done == Receipt("o-1", Decimal("10"))
        with pytest.raises(TypeError):
            engine.run_workflow(typed_checkout)  # type: ignore[arg-type]
        with pytest.raises(dk.SerializationError):
            engine.run_workflow(typed_checkout, "x")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        typed_checkout(MockContext())  # type: ignore[call-arg]
    assert_type(typed_answer(MockContext()), int)


def test_wrong_inputs_are_type_errors(app: dk.Durakit) -> None:
    with pytest.raises(dk.SerializationError):
        app.run_workflow(checkout, "not an order")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        app.run_workflow(answer, 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        app.run_workflow(checkout)  # type: ignore[arg-type]
    wrong: dk.WorkflowHandle[str] = app.run_workflow(answer)  # type: ignore[arg-type]
    assert wrong.get_result(timeout=5) == 42  # type: ignore[comparison-overlap]
