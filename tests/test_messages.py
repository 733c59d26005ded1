"""send / recv: delivery from inside and outside workflows, FIFO per topic, exactly-once
sends under replay, typed messages, and durable recv timeouts (on every store)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest

import durakit as dk
from durakit.testing import FakeClock
from tests.helpers import wait_until
from tests.waiting_support import (
    RECV,
    SEND,
    SLEEP,
    T0,
    Engines,
    Order,
    ms,
    settled,
    step_names,
    wait_for_step,
)


def drain(ctx: dk.Context, topic: str | None = None) -> list[Any]:
    """Receive every message already waiting on ``topic`` (recv with timeout 0 polls)."""
    got: list[Any] = []
    while True:
        try:
            got.append(ctx.recv(topic, timeout=0))
        except dk.DurakitTimeoutError:
            return got


# -- delivery -------------------------------------------------------------------------------


def test_ctx_send_reaches_the_receiving_workflow(engines: Engines) -> None:
    def receiver(ctx: dk.Context) -> list[Any]:
        return [ctx.recv("t", timeout=30), ctx.recv("t", timeout=30)]

    def sender(ctx: dk.Context, destination: str) -> None:
        ctx.send(destination, {"n": 1}, topic="t")
        ctx.send(destination, "two", topic="t")

    app = engines.start(receiver, sender)
    received = app.run_workflow(receiver, workflow_id="receiver")
    sent = app.run_workflow(sender, "receiver", workflow_id="sender")
    sent.get_result(timeout=10)
    assert received.get_result(timeout=10) == [{"n": 1}, "two"]
    assert step_names(app, "sender") == [SEND, SEND]


@pytest.mark.parametrize("via", ["engine", "client"])
def test_send_from_outside_a_workflow(engines: Engines, via: str) -> None:
    def receiver(ctx: dk.Context) -> list[Any]:
        return [ctx.recv(timeout=30), ctx.recv("other", timeout=30)]

    app = engines.start(receiver)
    handle = app.run_workflow(receiver, workflow_id="receiver")
    with engines.client() as client:
        outside: dk.Durakit | dk.Client = app if via == "engine" else client
        outside.send("receiver", [1, 2, 3])
        outside.send("receiver", "on another topic", topic="other")
        assert handle.get_result(timeout=10) == [[1, 2, 3], "on another topic"]


def test_send_to_a_nonexistent_workflow_raises(engines: Engines) -> None:
    def sender(ctx: dk.Context) -> None:
        ctx.send("nobody", "hello")

    app = engines.start(sender)
    with pytest.raises(dk.NonExistentWorkflowError) as from_engine:
        app.send("nobody", "hello")
    assert from_engine.value.destination_id == "nobody"
    assert from_engine.value.code is dk.ErrorCode.NON_EXISTENT_WORKFLOW
    with engines.client() as client, pytest.raises(dk.NonExistentWorkflowError):
        client.send("nobody", "hello", topic="t")

    handle = app.run_workflow(sender, workflow_id="sender")
    with pytest.raises(dk.NonExistentWorkflowError) as from_workflow:
        handle.get_result(timeout=10)
    assert from_workflow.value.destination_id == "nobody"
    assert handle.get_status().status is dk.StatusType.ERROR
    assert step_names(app, "sender") == []  # nothing was recorded as sent


def test_a_replayed_workflow_does_not_send_again(engines: Engines) -> None:
    """The sender is recovered by a new engine after its send: the send is replayed from
    its checkpoint, so the destination holds the message once."""

    def destination(ctx: dk.Context) -> list[Any]:
        ctx.recv("start", timeout=3600)
        return drain(ctx)

    def sender(ctx: dk.Context, to: str) -> str:
        ctx.send(to, "hello")
        reply: str = ctx.recv("go", timeout=3600)
        return reply

    first = engines.start(destination, sender)
    first.run_workflow(destination, workflow_id="dest")
    first.run_workflow(sender, "dest", workflow_id="sender")
    wait_for_step(first, "sender", SLEEP)  # sent, and now waiting for "go"
    first.shutdown()
    assert first.get_workflow_status("sender").status is dk.StatusType.PENDING

    second = engines.start(destination, sender)
    second.send("sender", "done", topic="go")
    assert second.retrieve_workflow("sender").get_result(timeout=10) == "done"
    second.send("dest", None, topic="start")
    assert second.retrieve_workflow("dest").get_result(timeout=10) == ["hello"]
    assert step_names(second, "sender").count(SEND) == 1


# -- order ----------------------------------------------------------------------------------


def test_recv_is_fifo_per_topic_and_gets_messages_sent_before_it(engines: Engines) -> None:
    gate = threading.Event()

    def reader(ctx: dk.Context) -> list[Any]:
        ctx.run_step(lambda: gate.wait(10), name="gate")  # the sends happen meanwhile
        got = [
            ctx.recv("a", timeout=5),
            ctx.recv(None, timeout=5),
            ctx.recv("b", timeout=5),
            ctx.recv("a", timeout=5),
            ctx.recv(timeout=5),
            ctx.recv("a", timeout=5),
        ]
        return [*got, drain(ctx, "a"), drain(ctx, "b"), drain(ctx)]

    app = engines.start(reader)
    handle = app.run_workflow(reader, workflow_id="reader")
    try:
        for message, topic in [
            ("a1", "a"),
            ("n1", None),
            ("a2", "a"),
            ("b1", "b"),
            ("n2", None),
            ("a3", "a"),
            ("n3", None),
        ]:
            app.send("reader", message, topic=topic)
    finally:
        gate.set()
    assert handle.get_result(timeout=10) == ["a1", "n1", "b1", "a2", "n2", "a3", [], [], ["n3"]]


def test_a_recv_that_finds_its_message_records_no_wake_time(engines: Engines) -> None:
    """Decision 0003: recv takes two step IDs (wake time, outcome); the wake time is
    written only when the call has to wait."""
    gate = threading.Event()

    def reader(ctx: dk.Context) -> str:
        ctx.run_step(lambda: gate.wait(10), name="gate")
        first: str = ctx.recv(timeout=5)
        second: str = ctx.recv(timeout=30)
        return first + second

    app = engines.start(reader)
    handle = app.run_workflow(reader, workflow_id="reader")
    app.send("reader", "x")
    gate.set()
    wait_for_step(app, "reader", SLEEP)  # the second recv waits
    app.send("reader", "y")
    assert handle.get_result(timeout=10) == "xy"
    steps = [(s.step_id, s.name) for s in app.get_workflow_steps("reader")]
    assert steps == [(0, "gate"), (2, RECV), (3, SLEEP), (4, RECV)]


def test_concurrent_senders_each_message_once_in_each_senders_order(engines: Engines) -> None:
    senders, per_sender = 4, 50
    total = senders * per_sender

    def receiver(ctx: dk.Context, count: int) -> list[list[int]]:
        return [ctx.recv("q", timeout=60) for _ in range(count)]

    app = engines.start(receiver)
    handle = app.run_workflow(receiver, total, workflow_id="receiver")
    clients = [engines.client() for _ in range(senders // 2)]
    outside: list[dk.Durakit | dk.Client] = [app] * (senders - len(clients)) + list(clients)
    barrier = threading.Barrier(senders)
    errors: list[BaseException] = []

    def send_all(sender: int) -> None:
        try:
            barrier.wait()
            for seq in range(per_sender):
                outside[sender].send("receiver", [sender, seq], topic="q")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send_all, args=(i,)) for i in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for client in clients:
        client.close()
    assert errors == []
    received = handle.get_result(timeout=60)
    assert len(received) == total
    assert sorted(map(tuple, received)) == [
        (s, q) for s in range(senders) for q in range(per_sender)
    ]
    for sender in range(senders):
        assert [seq for s, seq in received if s == sender] == list(range(per_sender))


# -- types ----------------------------------------------------------------------------------


def test_typed_recv_structures_the_message(engines: Engines) -> None:
    def shop(ctx: dk.Context) -> list[str]:
        order = ctx.recv("orders", timeout=30, type=Order)
        assert isinstance(order, Order)
        plain = ctx.recv("orders", 30)  # without a type: the plain JSON value
        assert plain == {"order_id": 8, "items": []}
        return [*order.items, str(order.order_id)]

    app = engines.start(shop)
    handle = app.run_workflow(shop, workflow_id="shop")
    app.send("shop", Order(order_id=7, items=["apple", "pear"]), topic="orders")
    app.send("shop", Order(order_id=8, items=[]), topic="orders")
    assert handle.get_result(timeout=10) == ["apple", "pear", "7"]


def test_a_recovered_workflow_replays_its_recv(engines: Engines) -> None:
    """The recorded message comes back (typed) after recovery; nothing is consumed again."""

    def shop(ctx: dk.Context) -> Order:
        order = ctx.recv("orders", timeout=3600, type=Order)
        ctx.recv("go", timeout=3600)
        return order

    first = engines.start(shop)
    first.run_workflow(shop, workflow_id="shop")
    first.send("shop", Order(order_id=1, items=["x"]), topic="orders")
    wait_until(lambda: step_names(first, "shop")[-2:] == [RECV, SLEEP])  # in the second recv
    first.shutdown()

    second = engines.start(shop)
    second.send("shop", Order(order_id=2, items=["later"]), topic="orders")
    second.send("shop", "go", topic="go")
    result = second.retrieve_workflow("shop", Order).get_result(timeout=10)
    assert result == Order(order_id=1, items=["x"])
    steps = [s.name for s in second.get_workflow_steps("shop")]
    assert steps.count(RECV) == 2  # recorded once each, not again after recovery


# -- timeouts -------------------------------------------------------------------------------


def test_recv_timeout_raises_a_timeout_error(engines: Engines) -> None:
    clock = FakeClock(T0)
    caught_inside: list[Exception] = []

    def waiter(ctx: dk.Context) -> str:
        try:
            ctx.recv("never", timeout=timedelta(hours=1))
        except TimeoutError as exc:  # the builtin catches it too
            caught_inside.append(exc)
        ctx.recv("never", timeout=3600.0)
        return "unreachable"

    app = engines.start(waiter, clock=clock)
    started = time.monotonic()
    handle = app.run_workflow(waiter, workflow_id="waiter")
    with pytest.raises(dk.DurakitTimeoutError) as caught:
        settled(handle).get_result()
    assert time.monotonic() - started < 5  # two hours of fake time, no real waiting
    assert caught.value.workflow_id == "waiter"
    assert caught.value.code is dk.ErrorCode.TIMEOUT
    [inside] = caught_inside
    assert isinstance(inside, dk.DurakitTimeoutError)
    assert clock.now_datetime() == T0 + timedelta(hours=2)
    assert handle.get_status().status is dk.StatusType.ERROR


def test_a_recovered_recv_waits_only_what_is_left_of_its_timeout(engines: Engines) -> None:
    """Recv with a one-hour timeout at T0; the engine stops; a new engine recovers the
    workflow at T0 + 10 min. It times out at T0 + 1 h, not at T0 + 1 h 10 min."""

    def waiter(ctx: dk.Context) -> str:
        try:
            ctx.recv("never", timeout=timedelta(hours=1))
        except dk.DurakitTimeoutError:
            return "timed out"
        return "received"

    first = engines.start(waiter, clock=FakeClock(T0, auto_advance=False))
    first.run_workflow(waiter, workflow_id="waiter")
    wait_for_step(first, "waiter", SLEEP)
    [wake] = [s.output for s in first.get_workflow_steps("waiter") if s.name == SLEEP]
    assert wake == ms(T0 + timedelta(hours=1))  # the absolute wake time is recorded
    first.shutdown()

    clock = FakeClock(T0 + timedelta(minutes=10))
    second = engines.start(waiter, clock=clock)
    handle = second.retrieve_workflow("waiter", str)
    assert settled(handle).get_result() == "timed out"
    assert handle.get_status().updated_at == T0 + timedelta(hours=1)
    assert clock.now_datetime() == T0 + timedelta(hours=1)


def test_a_recovered_recv_still_gets_a_message_sent_before_its_timeout(engines: Engines) -> None:
    def waiter(ctx: dk.Context) -> str:
        got: str = ctx.recv(timeout=timedelta(hours=1))
        return got

    first = engines.start(waiter, clock=FakeClock(T0, auto_advance=False))
    first.run_workflow(waiter, workflow_id="waiter")
    wait_for_step(first, "waiter", SLEEP)
    first.shutdown()

    clock = FakeClock(T0 + timedelta(minutes=10))
    with clock.hold():  # no timeout may fire before the message is sent
        second = engines.start(waiter, clock=clock)
        second.send("waiter", "late but in time")
    assert settled(second.retrieve_workflow("waiter")).get_result() == "late but in time"
    assert clock.now_datetime() == T0 + timedelta(minutes=10)
