"""set_event / get_event: latest value wins, waiting inside and outside workflows, a
recorded get_event replays its value, typed events, durable timeouts (every store)."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest

import durakit as dk
from durakit.testing import FakeClock
from tests.waiting_support import (
    GET_EVENT,
    SET_EVENT,
    SLEEP,
    T0,
    Engines,
    Order,
    settled,
    step_names,
    wait_for_step,
)


def test_the_latest_value_wins(engines: Engines) -> None:
    def publisher(ctx: dk.Context) -> None:
        ctx.set_event("status", "started")
        ctx.set_event("count", 1)
        ctx.set_event("status", "paid")
        ctx.set_event("status", {"final": True})

    app = engines.start(publisher)
    app.run_workflow(publisher, workflow_id="pub").get_result(timeout=10)
    assert app.get_event("pub", "status", timeout=1) == {"final": True}
    assert app.get_event("pub", "count", timeout=1) == 1
    with engines.client() as client:
        assert client.get_event("pub", "status", timeout=1) == {"final": True}
    assert step_names(app, "pub") == [SET_EVENT] * 4


@pytest.mark.parametrize("via", ["engine", "client"])
def test_get_event_outside_a_workflow_waits_until_it_is_set(engines: Engines, via: str) -> None:
    gate = threading.Event()

    def publisher(ctx: dk.Context) -> None:
        ctx.run_step(lambda: gate.wait(10), name="gate")
        ctx.set_event("ready", "yes")

    app = engines.start(publisher)
    app.run_workflow(publisher, workflow_id="pub")
    got: list[Any] = []
    with engines.client() as client:
        outside: dk.Durakit | dk.Client = app if via == "engine" else client
        reader = threading.Thread(target=lambda: got.append(outside.get_event("pub", "ready", 10)))
        reader.start()
        try:
            assert not got  # nothing to read before the event is set
        finally:
            gate.set()
        reader.join(10)
    assert got == ["yes"]


@pytest.mark.parametrize("via", ["engine", "client"])
def test_get_event_outside_a_workflow_times_out(engines: Engines, via: str) -> None:
    def quiet(ctx: dk.Context) -> None:
        ctx.set_event("other", 1)

    app = engines.start(quiet)
    app.run_workflow(quiet, workflow_id="quiet").get_result(timeout=10)
    with engines.client() as client:
        outside: dk.Durakit | dk.Client = app if via == "engine" else client
        with pytest.raises(dk.DurakitTimeoutError) as caught:
            outside.get_event("quiet", "never", timeout=timedelta(milliseconds=50))
        assert isinstance(caught.value, TimeoutError)
        assert caught.value.workflow_id == "quiet"
        with pytest.raises(TimeoutError):
            outside.get_event("no-such-workflow", "never", timeout=0)


def test_get_event_inside_a_workflow_waits_for_it(engines: Engines) -> None:
    def publisher(ctx: dk.Context) -> None:
        ctx.recv("go", timeout=30)
        ctx.set_event("answer", 42)

    def reader(ctx: dk.Context) -> int:
        value: int = ctx.get_event("pub", "answer", timeout=30)
        return value

    app = engines.start(publisher, reader)
    app.run_workflow(publisher, workflow_id="pub")
    handle = app.run_workflow(reader, workflow_id="reader")
    wait_for_step(app, "reader", SLEEP)  # it waits: the event is not set yet
    app.send("pub", "go", topic="go")
    assert handle.get_result(timeout=10) == 42
    recorded = app.get_workflow_steps("reader")
    assert [(s.step_id, s.name, s.output) for s in recorded] == [
        (0, SLEEP, recorded[0].output),
        (1, GET_EVENT, 42),
    ]


def test_a_recorded_get_event_replays_its_value(engines: Engines) -> None:
    """The reader saw ``k == 1`` and is recovered after the publisher changed ``k`` to 2:
    the replay returns the recorded 1."""

    def publisher(ctx: dk.Context) -> None:
        ctx.set_event("k", 1)
        ctx.recv("go", timeout=3600)
        ctx.set_event("k", 2)

    def reader(ctx: dk.Context) -> int:
        seen: int = ctx.get_event("pub", "k", timeout=3600)
        ctx.recv("go", timeout=3600)
        return seen

    first = engines.start(publisher, reader)
    first.run_workflow(publisher, workflow_id="pub")
    wait_for_step(first, "pub", SLEEP)
    first.run_workflow(reader, workflow_id="reader")
    wait_for_step(first, "reader", SLEEP)  # got the event, waits for "go"
    first.shutdown()

    second = engines.start(publisher, reader)
    second.send("pub", "go", topic="go")
    second.retrieve_workflow("pub").get_result(timeout=10)
    assert second.get_event("pub", "k", timeout=1) == 2
    second.send("reader", "go", topic="go")
    assert second.retrieve_workflow("reader").get_result(timeout=10) == 1
    assert step_names(second, "reader").count(GET_EVENT) == 1


def test_typed_get_event(engines: Engines) -> None:
    def publisher(ctx: dk.Context) -> None:
        ctx.set_event("order", Order(order_id=3, items=["tea"]))

    def reader(ctx: dk.Context) -> list[str]:
        order = ctx.get_event("pub", "order", timeout=30, type=Order)
        assert isinstance(order, Order)
        return order.items

    app = engines.start(publisher, reader)
    app.run_workflow(publisher, workflow_id="pub").get_result(timeout=10)
    assert app.run_workflow(reader, workflow_id="reader").get_result(timeout=10) == ["tea"]
    expected = Order(order_id=3, items=["tea"])
    assert app.get_event("pub", "order", timeout=1, type=Order) == expected
    with engines.client() as client:
        assert client.get_event("pub", "order", 1, type=Order) == expected
        assert client.get_event("pub", "order", 1) == {"order_id": 3, "items": ["tea"]}


def waits_for_a_missing_event(ctx: dk.Context) -> str:
    """Waits three hours for an event that never comes."""
    try:
        ctx.get_event("nobody", "never", timeout=timedelta(hours=3))
    except TimeoutError:
        return "timed out"
    return "got it"


def test_get_event_inside_a_workflow_times_out(engines: Engines) -> None:
    clock = FakeClock(T0)
    app = engines.start(waits_for_a_missing_event, clock=clock)
    handle = app.run_workflow(waits_for_a_missing_event, workflow_id="reader")
    assert settled(handle).get_result() == "timed out"
    assert clock.now_datetime() == T0 + timedelta(hours=3)
    [_, outcome] = app.get_workflow_steps("reader")
    assert isinstance(outcome.error, dk.DurakitTimeoutError)  # the timeout is recorded


def test_a_recovered_get_event_waits_only_what_is_left(engines: Engines) -> None:
    first = engines.start(waits_for_a_missing_event, clock=FakeClock(T0, auto_advance=False))
    first.run_workflow(waits_for_a_missing_event, workflow_id="reader")
    wait_for_step(first, "reader", SLEEP)
    first.shutdown()

    clock = FakeClock(T0 + timedelta(hours=1))
    second = engines.start(waits_for_a_missing_event, clock=clock)
    assert settled(second.retrieve_workflow("reader")).get_result() == "timed out"
    assert clock.now_datetime() == T0 + timedelta(hours=3)
