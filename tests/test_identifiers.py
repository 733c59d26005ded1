"""One identifier rule on every store: non-empty, valid Unicode, no NUL, at most 1000
UTF-8 bytes; anything else is a ValueError naming the argument, before anything is
written. Reads by filter (list_workflows) are lenient: an impossible value matches nothing.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest

import durakit as dk
from durakit.testing import MockContext
from tests.conftest import StoreFactory
from tests.helpers import WAIT, Counts, new_app

BAD_IDS: list[tuple[str, str]] = [
    ("", "must not be empty"),
    ("a\x00b", "must not contain NUL"),
    ("\ud800", "lone surrogate"),
    ("x\udfffy", "lone surrogate"),
    ("€" * 333 + "ab", "at most 1000 UTF-8 bytes, got 1001"),  # 335 characters
    ("z" * 7997, "at most 1000 UTF-8 bytes, got 7997"),  # once overflowed Postgres NOTIFY
]


def longest(tag: str, seed: int = 0) -> str:
    """An identifier of exactly 1000 UTF-8 bytes: random (incompressible) 3-byte CJK
    characters, so a store that compresses or counts characters cannot pass by luck."""
    rng = random.Random(seed)
    body = "".join(chr(rng.randrange(0x4E00, 0x9FFF)) for _ in range(333))
    text = body + tag
    assert len(text.encode()) == 1000, len(text.encode())
    return text


@attrs.define
class World:
    """A launched engine with one finished workflow ("done"), a client on its store,
    and a snapshot of everything written so far."""

    app: dk.Durakit
    client: dk.Client
    echo: Callable[[dk.Context, str], str]
    counts: Counts

    def snapshot(self) -> list[Any]:
        return [
            (
                s.workflow_id,
                s.status,
                s.name,
                [(t.step_id, t.name, t.output) for t in self.app.get_workflow_steps(s.workflow_id)],
            )
            for s in self.app.list_workflows()
        ]


@pytest.fixture
def world(store: dk.SystemStore) -> Iterator[World]:
    app = new_app(store)
    counts = Counts()

    @app.workflow(name="echo")
    def echo(ctx: dk.Context, text: str) -> str:
        ctx.set_event("k", text)
        return ctx.run_step(lambda: text + "!", name="bang")

    with app, dk.Client(store=store) as client:
        assert app.run_workflow(echo, "hi", workflow_id="done").get_result(WAIT) == "hi!"
        yield World(app, client, echo, counts)


OUTSIDE: dict[str, tuple[str, Callable[[World, str], object]]] = {
    "run_workflow.workflow_id": (
        "workflow_id",
        lambda w, bad: w.app.run_workflow(w.echo, "x", workflow_id=bad),
    ),
    "run_workflow.queue": ("queue", lambda w, bad: w.app.run_workflow(w.echo, "x", queue=bad)),
    "fork_workflow.forked_workflow_id": (
        "forked_workflow_id",
        lambda w, bad: w.app.fork_workflow("done", 1, forked_workflow_id=bad),
    ),
    "fork_workflow.original_workflow_id": (
        "original_workflow_id",
        lambda w, bad: w.app.fork_workflow(bad, 0),
    ),
    "resume_workflow": ("workflow_id", lambda w, bad: w.app.resume_workflow(bad)),
}


def _management(target: str) -> dict[str, tuple[str, Callable[[World, str], object]]]:
    """The calls that the engine and the client share, on one of them."""

    def on(w: World) -> dk.Durakit | dk.Client:
        return w.app if target == "app" else w.client

    entries: dict[str, tuple[str, Callable[[World, str], object]]] = {
        "retrieve_workflow": ("workflow_id", lambda w, bad: on(w).retrieve_workflow(bad)),
        "get_workflow_status": ("workflow_id", lambda w, bad: on(w).get_workflow_status(bad)),
        "get_workflow_steps": ("workflow_id", lambda w, bad: on(w).get_workflow_steps(bad)),
        "cancel_workflow": ("workflow_id", lambda w, bad: on(w).cancel_workflow(bad)),
        "send.destination_id": ("destination_id", lambda w, bad: on(w).send(bad, "m")),
        "send.topic": ("topic", lambda w, bad: on(w).send("done", "m", topic=bad)),
        "get_event.workflow_id": (
            "workflow_id",
            lambda w, bad: on(w).get_event(bad, "k", timeout=0),
        ),
        "get_event.key": ("key", lambda w, bad: on(w).get_event("done", bad, timeout=0)),
    }
    return {f"{target}.{name}": entry for name, entry in entries.items()}


OUTSIDE |= _management("app") | _management("client")


@pytest.mark.parametrize("entry", sorted(OUTSIDE))
def test_bad_identifiers_are_refused_before_anything_is_written(world: World, entry: str) -> None:
    argument, call = OUTSIDE[entry]
    before = world.snapshot()
    for bad, why in BAD_IDS:
        with pytest.raises(ValueError, match=f"^{argument} ") as caught:
            call(world, bad)
        message = str(caught.value)
        assert message.startswith(argument + " "), (bad, message)
        assert why in message, (bad, message)
        assert world.snapshot() == before, bad


@pytest.mark.parametrize(
    "field", ["authenticated_user", "assumed_role", "authenticated_roles", "application_version"]
)
def test_free_text_the_stores_keep_refuses_nul_and_lone_surrogates(
    world: World, field: str
) -> None:
    """Not identifiers (no length limit), but Postgres cannot hold NUL nor psycopg send a
    lone surrogate: refused on every store, so none can hold what another cannot."""
    before = world.snapshot()
    for odd in ("a\x00b", "\ud800"):
        value: Any = [odd] if field == "authenticated_roles" else odd
        with pytest.raises(ValueError, match=f"^{field} must be valid Unicode without NUL"):
            world.app.run_workflow(world.echo, "x", **{field: value})
    assert world.snapshot() == before
    long_text: Any = ["é" * 2000] if field == "authenticated_roles" else "é" * 2000
    handle = world.app.run_workflow(world.echo, "x", **{field: long_text})
    assert handle.get_result(WAIT) == "x!"


def _step_named(name: str, counts: Counts) -> Callable[[], int]:
    def body() -> int:
        return counts.bump("body")

    body.__qualname__ = body.__name__ = name
    return body


INSIDE: dict[str, tuple[str, Callable[[dk.Context, str, Counts], object]]] = {
    "run_step.name": ("name", lambda ctx, bad, c: ctx.run_step(_step_named("ok", c), name=bad)),
    "run_step.derived_name": ("name", lambda ctx, bad, c: ctx.run_step(_step_named(bad, c))),
    "run_workflow.workflow_id": (
        "workflow_id",
        lambda ctx, bad, c: ctx.run_workflow(leaf, workflow_id=bad),
    ),
    "send.destination_id": ("destination_id", lambda ctx, bad, c: ctx.send(bad, "m")),
    "send.topic": ("topic", lambda ctx, bad, c: ctx.send(ctx.workflow_id, "m", topic=bad)),
    "recv.topic": ("topic", lambda ctx, bad, c: ctx.recv(bad, timeout=0)),
    "set_event.key": ("key", lambda ctx, bad, c: ctx.set_event(bad, 1)),
    "get_event.workflow_id": ("workflow_id", lambda ctx, bad, c: ctx.get_event(bad, "k", 0)),
    "get_event.key": ("key", lambda ctx, bad, c: ctx.get_event(ctx.workflow_id, bad, 0)),
}


def leaf(ctx: dk.Context) -> str:
    return ctx.workflow_id


def _probe_all(ctx: dk.Context, entry: str, counts: Counts) -> list[str]:
    """Try every bad value; return each error message (or a note that none came)."""
    argument, call = INSIDE[entry]
    messages = []
    for bad, why in BAD_IDS:
        try:
            call(ctx, bad, counts)
        except ValueError as exc:
            message = str(exc)
            ok = message.startswith(argument) and why in message
            messages.append("ok" if ok else f"wrong message for {bad[:20]!r}: {message}")
        else:
            messages.append(f"accepted {bad[:20]!r}")
        if ctx.step_id != -1:
            messages.append(f"a step ID was taken: {ctx.step_id}")
    return messages


@pytest.mark.parametrize("entry", sorted(INSIDE))
def test_bad_identifiers_inside_a_workflow_are_refused_before_anything_runs(
    store: dk.SystemStore, entry: str
) -> None:
    app = new_app(store)
    counts = Counts()
    app.register_workflow(leaf)

    @app.workflow(name="probe")
    def probe(ctx: dk.Context) -> list[str]:
        return _probe_all(ctx, entry, counts)

    with app:
        messages = app.run_workflow(probe, workflow_id="probe").get_result(WAIT)
        assert messages == ["ok"] * len(BAD_IDS)
        assert app.get_workflow_steps("probe") == []
        assert [s.workflow_id for s in app.list_workflows()] == ["probe"]
    assert counts["body"] == 0  # a step body never ran with a bad name


@pytest.mark.parametrize("entry", sorted(INSIDE))
def test_the_mock_context_applies_the_same_rule(entry: str) -> None:
    counts = Counts()
    assert _probe_all(MockContext(), entry, counts) == ["ok"] * len(BAD_IDS)
    assert counts["body"] == 0


@pytest.mark.parametrize(("bad", "why"), BAD_IDS)
def test_bad_workflow_and_step_names_are_refused_at_registration(bad: str, why: str) -> None:
    app = dk.Durakit(dk.Config(app_name="names", store=dk.MemoryStore()))

    def wf(ctx: dk.Context) -> None:
        return None

    with pytest.raises(ValueError, match=f"^name .*{why}"):
        app.register_workflow(wf, name=bad)
    wf.__qualname__ = wf.__name__ = bad
    problem = why.split(",", maxsplit=1)[0]  # the derived name is longer than ``bad``
    if bad:  # f"{module}.{qualname}" is never empty
        with pytest.raises(ValueError, match=f"^name \\(derived from .*{problem}"):
            app.register_workflow(wf)
    with pytest.raises(ValueError, match=f"^name .*{why}"):
        dk.step(name=bad)
    with pytest.raises(ValueError, match=f"^name \\(derived from .*{why}"):
        dk.step()(wf)
    assert app.registry.all() == []


def test_a_derived_child_id_longer_than_1000_bytes_is_refused(store: dk.SystemStore) -> None:
    """A child without an explicit ID gets f"{parent}-{step_id}": from a parent ID of
    1000 bytes that is too long to read back, so it is refused like a given one."""
    app = new_app(store)
    app.register_workflow(leaf)
    parent_id = longest("p")

    @app.workflow(name="parent")
    def parent(ctx: dk.Context) -> str:
        try:
            ctx.run_workflow(leaf)
        except ValueError as exc:
            return str(exc)
        return "accepted"

    with app:
        message = app.run_workflow(parent, workflow_id=parent_id).get_result(WAIT)
        assert message.startswith("workflow_id (derived from the parent's ID) must be at most")
        assert app.get_workflow_steps(parent_id) == []
        assert [s.workflow_id for s in app.list_workflows()] == [parent_id]


def test_identifiers_of_exactly_1000_bytes_work_end_to_end(store_factory: StoreFactory) -> None:
    """Every identifier at the limit: the workflow completes, is listed and read back, a
    waiting one is cancellable, and a pending one is recovered by the next launch()."""
    wf_id, child_id, waiter_id, pending_id = (longest(t, i) for i, t in enumerate("wcxp"))
    wf_name, step_name, topic, key = (longest(t, 10 + i) for i, t in enumerate("nstk"))
    app = new_app(store_factory())

    def register(engine: dk.Durakit) -> tuple[Any, Any]:
        @engine.workflow(name=wf_name)
        def full(ctx: dk.Context) -> list[Any]:
            one = ctx.run_step(lambda: 1, name=step_name)
            ctx.set_event(key, "v")
            ctx.send(ctx.workflow_id, "m", topic=topic)
            got = ctx.recv(topic, timeout=WAIT)
            child = ctx.run_workflow(leaf, workflow_id=child_id).get_result()
            return [one, got, child == child_id, ctx.get_event(ctx.workflow_id, key, 0)]

        @engine.workflow(name=longest("r", 20))
        def waiter(ctx: dk.Context) -> Any:
            return ctx.recv(topic, timeout=3600)

        engine.register_workflow(leaf)
        return full, waiter

    full, waiter = register(app)
    with app:
        assert app.run_workflow(full, workflow_id=wf_id).get_result(WAIT) == [1, "m", True, "v"]
        assert app.get_event(wf_id, key, timeout=0) == "v"
        steps = app.get_workflow_steps(wf_id)
        assert steps[0].name == step_name
        assert [s.child_workflow_id for s in steps if s.child_workflow_id] == [child_id]
        assert [s.workflow_id for s in app.list_workflows(workflow_ids=[wf_id])] == [wf_id]
        assert [s.name for s in app.list_workflows(workflow_id_prefix=wf_id[:100])] == [wf_name]
        assert app.list_workflows(name=wf_name)[0].workflow_id == wf_id

        waiting = app.run_workflow(waiter, workflow_id=waiter_id)
        app.cancel_workflow(waiter_id)
        with pytest.raises(dk.AwaitedWorkflowCancelledError):
            waiting.get_result(timeout=WAIT)
        app.run_workflow(waiter, workflow_id=pending_id)
    assert app.get_workflow_status(pending_id).status is dk.StatusType.PENDING

    again = new_app(store_factory())
    register(again)
    with again:  # recovers the pending workflow; launch() does not fail
        again.send(pending_id, "late", topic=topic)
        assert again.retrieve_workflow(pending_id).get_result(timeout=WAIT) == "late"
        with dk.Client(store=store_factory()) as client:
            assert client.retrieve_workflow(wf_id).get_result(WAIT) == [1, "m", True, "v"]


def test_list_workflows_matches_nothing_for_values_no_identifier_can_have(world: World) -> None:
    app = world.app
    for bad, _ in BAD_IDS:
        assert [s.workflow_id for s in app.list_workflows(workflow_ids=[bad, "done"])] == ["done"]
        assert app.list_workflows(workflow_ids=[bad]) == []
        assert app.list_workflows(name=bad) == []
        assert app.list_workflows(queue_name=bad) == []
        assert app.list_workflows(executor_ids=[bad]) == []
        assert world.client.list_workflows(workflow_ids=[bad]) == []
        assert app.recover_pending_workflows([bad], workflow_ids=[bad]) == []
        if bad:  # the empty prefix is a prefix of every ID
            assert app.list_workflows(workflow_id_prefix=bad) == []
    for odd in ("a\x00", "\ud800"):
        assert app.list_workflows(user=odd) == []
        assert app.list_workflows(app_version=odd) == []
    assert [s.workflow_id for s in app.list_workflows(workflow_id_prefix="")] == ["done"]
