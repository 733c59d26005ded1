"""Pausing and resuming queues across executors, and enqueueing from a ``Client``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import assert_type

import attrs
import pytest

import durakit as dk
from tests.conftest import StoreFactory
from tests.helpers import WAIT, new_app

Q = dk.StatusType


@attrs.frozen
class Order:
    order_id: int
    items: list[str]


class Setup:
    def __init__(self, factory: StoreFactory) -> None:
        self.factory = factory
        self.apps: list[dk.Durakit] = []
        self.clients: list[dk.Client] = []

    def app(self, executor_id: str = "local") -> tuple[dk.Durakit, dk.Workflow[Order, str]]:
        app = new_app(self.factory(), executor_id=executor_id)

        @app.workflow(name="checkout")
        def checkout(ctx: dk.Context, order: Order) -> str:
            return ctx.run_step(lambda: f"{order.order_id}:{','.join(order.items)}", name="pay")

        app.queue("orders", concurrency=5)
        app.launch()
        self.apps.append(app)
        return app, checkout

    def client(self) -> dk.Client:
        client = dk.Client(store=self.factory())
        self.clients.append(client)
        return client

    def close(self) -> None:
        for app in self.apps:
            app.shutdown(timeout=2.0)
        for client in self.clients:
            client.close()


@pytest.fixture
def setup(store_factory: StoreFactory) -> Iterator[Setup]:
    made = Setup(store_factory)
    yield made
    made.close()


def done(app: dk.Durakit | dk.Client) -> int:
    return len(app.list_workflows(queue_name="orders", status=Q.SUCCESS))


def test_a_paused_queue_admits_nothing_on_any_executor_until_resumed(setup: Setup) -> None:
    first, checkout = setup.app("a")
    second, _ = setup.app("b")
    first.pause_queue("orders")
    handles = [first.run_workflow(checkout, Order(i, ["x"]), queue="orders") for i in range(4)]
    # Enqueues succeed (and wake the runners); nothing starts, also after a fallback
    # re-check of every runner (real time: what is checked is that nothing happens).
    time.sleep(1.5)
    assert {first.get_workflow_status(h.workflow_id).status for h in handles} == {Q.ENQUEUED}
    second.resume_queue("orders")  # resumed from the other executor
    assert [h.get_result(timeout=WAIT) for h in handles] == [f"{i}:x" for i in range(4)]


def test_pausing_an_unregistered_queue_on_the_engine_raises(setup: Setup) -> None:
    app, _ = setup.app()
    with pytest.raises(dk.WorkflowExecutionError, match="not registered"):
        app.pause_queue("ordres")
    with pytest.raises(ValueError, match="queue_name"):
        app.resume_queue("")


def test_client_enqueue_is_typed_by_the_workflow_object(setup: Setup) -> None:
    app, checkout = setup.app()
    client = setup.client()
    handle = client.enqueue("orders", checkout, Order(7, ["a", "b"]), priority=0)
    assert_type(handle, dk.WorkflowHandle[str])
    assert handle.get_result(timeout=WAIT) == "7:a,b"
    status = app.get_workflow_status(handle.workflow_id)
    assert (status.queue_name, status.application_version) == ("orders", "v1")


def test_client_enqueue_by_name_with_a_result_type(setup: Setup) -> None:
    app, _ = setup.app()
    client = setup.client()
    typed = client.enqueue(
        "orders", "checkout", {"order_id": 3, "items": ["z"]}, result_type=str, workflow_id="c3"
    )
    assert_type(typed, dk.WorkflowHandle[str])
    assert typed.get_result(timeout=WAIT) == "3:z"
    untyped = client.enqueue("orders", "checkout", {"order_id": 4, "items": []})
    assert untyped.get_result(timeout=WAIT) == "4:"
    # The same ID again is the same workflow; under another name it is a conflict.
    assert client.enqueue("orders", "checkout", None, workflow_id="c3").workflow_id == "c3"
    with pytest.raises(dk.ConflictingWorkflowError):
        client.enqueue("orders", "other", None, workflow_id="c3")
    assert done(app) == 2


def test_client_enqueue_checks_its_options_and_deduplicates(setup: Setup) -> None:
    app, checkout = setup.app()
    client = setup.client()
    app.pause_queue("orders")
    first = client.enqueue("orders", checkout, Order(1, []), deduplication_id="d")
    with pytest.raises(dk.QueueDeduplicatedError):
        client.enqueue("orders", checkout, Order(2, []), deduplication_id="d")
    with pytest.raises(ValueError, match="priority"):
        client.enqueue("orders", checkout, Order(2, []), priority=-1)
    with pytest.raises(TypeError, match="result_type"):
        client.enqueue("orders", checkout, Order(2, []), result_type=str)  # type: ignore[call-overload]
    with pytest.raises(dk.SerializationError):
        client.enqueue("orders", checkout, object())  # type: ignore[misc]
    # A version no executor runs: it waits for one.
    other = client.enqueue("orders", checkout, Order(3, []), application_version="v9")
    client.resume_queue("orders")
    assert first.get_result(timeout=WAIT) == "1:"
    assert client.get_workflow_status(other.workflow_id).status is Q.ENQUEUED
