"""Durations a user passes (timeouts, sleeps, retry intervals) are finite, >= 0 and at most
100 years; anything else is a ValueError naming the argument before anything is recorded."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

import durakit as dk
from durakit.api.validation import MAX_DURATION
from durakit.testing import MockContext
from tests.helpers import WAIT, Counts, new_app

BAD_DURATIONS: list[Any] = [
    -1,
    -0.001,
    math.nan,
    math.inf,
    -math.inf,
    1e20,
    1e30,
    10**400,  # float() of it would overflow
    MAX_DURATION.total_seconds() + 1,
    timedelta(days=-1),
    MAX_DURATION + timedelta(microseconds=1),
    timedelta.max,
]


def leaf(ctx: dk.Context) -> str:
    return ctx.workflow_id


def _body(counts: Counts) -> Callable[[], int]:
    return lambda: counts.bump("body")


INSIDE: dict[str, tuple[str, Callable[[dk.Context, Any, Counts], object]]] = {
    "sleep": ("duration", lambda ctx, bad, c: ctx.sleep(bad)),
    "recv.timeout": ("timeout", lambda ctx, bad, c: ctx.recv("t", timeout=bad)),
    "get_event.timeout": ("timeout", lambda ctx, bad, c: ctx.get_event("x", "k", timeout=bad)),
    "run_workflow.timeout": ("timeout", lambda ctx, bad, c: ctx.run_workflow(leaf, timeout=bad)),
    "run_step.base_interval": (
        "base_interval",
        lambda ctx, bad, c: ctx.run_step(_body(c), name="s", max_retries=1, base_interval=bad),
    ),
    "run_step.max_interval": (
        "max_interval",
        lambda ctx, bad, c: ctx.run_step(_body(c), name="s", max_retries=1, max_interval=bad),
    ),
}


def _probe_all(ctx: dk.Context, entry: str, counts: Counts) -> list[str]:
    argument, call = INSIDE[entry]
    out = []
    for bad in BAD_DURATIONS:
        try:
            call(ctx, bad, counts)
        except ValueError as exc:
            ok = str(exc).startswith(f"{argument} must be a finite duration between 0 and")
            out.append("ok" if ok else f"wrong message for {bad!r}: {exc}")
        except Exception as exc:
            out.append(f"{type(exc).__name__} for {bad!r}: {exc}")
        else:
            out.append(f"accepted {bad!r}")
        if ctx.step_id != -1:
            out.append(f"a step ID was taken: {ctx.step_id}")
    return out


@pytest.mark.parametrize("entry", sorted(INSIDE))
def test_bad_durations_inside_a_workflow_are_refused_before_anything_is_recorded(
    store: dk.SystemStore, entry: str
) -> None:
    app = new_app(store)
    counts = Counts()
    app.register_workflow(leaf)

    @app.workflow(name="probe")
    def probe(ctx: dk.Context) -> list[str]:
        return _probe_all(ctx, entry, counts)

    with app:
        assert app.run_workflow(probe, workflow_id="p").get_result(WAIT) == ["ok"] * len(
            BAD_DURATIONS
        )
        assert app.get_workflow_steps("p") == []
        assert [s.workflow_id for s in app.list_workflows()] == ["p"]
    assert counts["body"] == 0


@pytest.mark.parametrize("entry", sorted(INSIDE))
def test_the_mock_context_refuses_the_same_durations(entry: str) -> None:
    counts = Counts()
    assert _probe_all(MockContext(), entry, counts) == ["ok"] * len(BAD_DURATIONS)
    assert counts["body"] == 0


def test_bad_durations_outside_workflows_are_refused_before_anything_is_written(
    store: dk.SystemStore,
) -> None:
    app = new_app(store)

    @app.workflow(name="quick")
    def quick(ctx: dk.Context) -> int:
        ctx.set_event("k", 1)
        return 1

    with app, dk.Client(store=store) as client:
        handle = app.run_workflow(quick, workflow_id="q")
        assert handle.get_result(WAIT) == 1
        calls: dict[str, Callable[[Any], object]] = {
            "run_workflow": lambda bad: app.run_workflow(quick, workflow_id="new", timeout=bad),
            "get_result": lambda bad: handle.get_result(timeout=bad),
            "app.get_event": lambda bad: app.get_event("q", "k", timeout=bad),
            "client.get_event": lambda bad: client.get_event("q", "k", timeout=bad),
            "client.get_result": lambda bad: client.retrieve_workflow("q").get_result(bad),
            "shutdown": lambda bad: app.shutdown(timeout=bad),
        }
        for entry, call in calls.items():
            for bad in BAD_DURATIONS:
                with pytest.raises(ValueError, match=r"^timeout must be a finite duration"):
                    call(bad)
                assert [s.workflow_id for s in app.list_workflows()] == ["q"], (entry, bad)
        # The refused shutdown left the engine running.
        assert app.run_workflow(quick, workflow_id="after").get_result(WAIT) == 1


def test_durations_up_to_the_limit_are_accepted_and_round_trip(store: dk.SystemStore) -> None:
    app = new_app(store)

    @app.workflow(name="waits")
    def waits(ctx: dk.Context) -> list[float]:
        zero = ctx.sleep(0)
        ctx.run_step(
            lambda: 1, name="s", base_interval=0, max_interval=MAX_DURATION.total_seconds()
        )
        return [zero.total_seconds()]

    with app:
        h = app.run_workflow(waits, workflow_id="w", timeout=MAX_DURATION)
        assert h.get_result(timeout=MAX_DURATION) == [0.0]
        assert h.get_status().timeout == MAX_DURATION
        big = app.run_workflow(waits, workflow_id="w2", timeout=MAX_DURATION.total_seconds())
        assert big.get_status().timeout == MAX_DURATION


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"base_interval": -1}, "base_interval"),
        ({"max_interval": math.inf}, "max_interval"),
        ({"max_interval": 1e30}, "max_interval"),
        ({"backoff_factor": math.nan}, "backoff_factor"),
        ({"backoff_factor": 0.5}, "backoff_factor"),
        ({"max_retries": -1}, "max_retries"),
    ],
)
def test_step_retry_parameters_are_checked_at_decoration(
    kwargs: dict[str, Any], argument: str
) -> None:
    with pytest.raises(ValueError, match=f"^{argument} must be"):
        dk.step(**kwargs)
