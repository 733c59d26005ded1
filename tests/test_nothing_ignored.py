"""Nothing accepted and ignored: functions the engine cannot run are refused up front,
and each exported error class is either raised somewhere or documented as reserved."""

from __future__ import annotations

import ast
import re
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import durakit as dk
from durakit.testing import MockContext
from tests.helpers import WAIT, Counts, new_app

ROOT = Path(__file__).resolve().parents[1]


async def async_wf(ctx: dk.Context) -> int:
    return 1


def gen_wf(ctx: dk.Context) -> Iterator[int]:
    yield 1


async def agen_wf(ctx: dk.Context) -> AsyncIterator[int]:
    yield 1


class AsyncCallable:
    async def __call__(self, ctx: dk.Context) -> int:
        return 1


UNSUPPORTED: list[tuple[Callable[..., Any], str]] = [
    (async_wf, "async"),
    (gen_wf, "generator"),
    (agen_wf, "async generator"),
    (AsyncCallable(), "async"),
]


@pytest.mark.parametrize(("fn", "kind"), UNSUPPORTED)
def test_async_and_generator_workflows_are_refused_at_registration(
    fn: Callable[..., Any], kind: str
) -> None:
    app = dk.Durakit(dk.Config(app_name="refuse", store=dk.MemoryStore()))
    expected = f"{kind} workflows are not supported yet"
    with pytest.raises(dk.ConflictingRegistrationError, match=expected):
        app.register_workflow(fn, name="wf")
    with pytest.raises(dk.ConflictingRegistrationError, match=expected):
        app.workflow(name="wf")(fn)
    assert app.registry.all() == []


@pytest.mark.parametrize(("fn", "kind"), UNSUPPORTED)
def test_async_and_generator_steps_are_refused_at_decoration(
    fn: Callable[..., Any], kind: str
) -> None:
    with pytest.raises(TypeError, match=f"{kind} steps are not supported yet"):
        dk.step()(fn)
    with pytest.raises(TypeError, match=f"{kind} steps are not supported yet"):
        dk.step(name="named")(fn)


async def _fetch() -> int:
    return 1


def _numbers() -> Iterator[int]:
    yield 1


STEP_BODIES: dict[str, Callable[[Counts], Callable[[], Any]]] = {
    "coroutine": lambda c: _fetch,
    "generator": lambda c: _numbers,
}


@pytest.mark.parametrize("kind", sorted(STEP_BODIES))
def test_a_step_that_returns_a_coroutine_or_generator_is_refused_unrecorded(
    store: dk.SystemStore, kind: str
) -> None:
    """A lambda around an async function passes decoration; its result gives it away
    (the coroutine's body has not run), and nothing is recorded for it."""
    app = new_app(store)
    counts = Counts()

    @app.workflow(name="wrapped")
    def wrapped(ctx: dk.Context) -> str:
        try:
            ctx.run_step(STEP_BODIES[kind](counts), name="s")
        except TypeError as exc:
            return str(exc)
        return "accepted"

    with app:
        message = app.run_workflow(wrapped, workflow_id="w").get_result(WAIT)
        assert message.startswith(f"step 's' returned a {kind}"), message
        assert "not supported yet" in message
        assert app.get_workflow_steps("w") == []
    with pytest.raises(TypeError, match="not supported yet"):
        MockContext().run_step(STEP_BODIES[kind](counts), name="s")


def test_fork_onto_an_existing_workflow_id_is_a_conflict_and_writes_nothing(
    store: dk.SystemStore,
) -> None:
    app = new_app(store)

    def part(tag: str, i: int) -> Callable[[], str]:
        return lambda: f"{tag}{i}"

    @app.workflow(name="three")
    def three(ctx: dk.Context, tag: str) -> list[str]:
        return [ctx.run_step(part(tag, i), name=f"s{i}") for i in range(3)]

    @app.workflow(name="one")
    def one(ctx: dk.Context) -> str:
        return ctx.run_step(lambda: "mine", name="only")

    with app:
        assert app.run_workflow(three, "a", workflow_id="orig").get_result(WAIT) == [
            "a0",
            "a1",
            "a2",
        ]
        assert app.run_workflow(one, workflow_id="other").get_result(WAIT) == "mine"
        steps = {w: app.get_workflow_steps(w) for w in ("orig", "other")}
        for target in ("other", "orig"):
            with pytest.raises(dk.ConflictingIDError) as caught:
                app.fork_workflow("orig", 3, forked_workflow_id=target)
            assert caught.value.workflow_id == target
            assert caught.value.code is dk.ErrorCode.CONFLICTING_ID
        assert {w: app.get_workflow_steps(w) for w in ("orig", "other")} == steps
        assert app.retrieve_workflow("other").get_result(WAIT) == "mine"
        # A new ID still forks.
        fork = app.fork_workflow("orig", 3, forked_workflow_id="fresh")
        assert fork.get_result(WAIT) == ["a0", "a1", "a2"]
        with pytest.raises(dk.ConflictingIDError):
            app.fork_workflow("orig", 3, forked_workflow_id="fresh")


@pytest.mark.parametrize(
    "request_field",
    [
        {"authenticated_user": "ada"},
        {"authenticated_roles": ["admin"]},
        {"assumed_role": "admin"},
        {"application_version": "v2"},
    ],
)
def test_a_child_started_with_caller_fields_is_refused_not_stripped(
    store: dk.SystemStore, request_field: dict[str, Any]
) -> None:
    app = new_app(store)
    counts = Counts()

    @app.workflow(name="child")
    def child(ctx: dk.Context) -> str:
        counts.bump("child")
        return "ran"

    @app.workflow(name="parent")
    def parent(ctx: dk.Context) -> str:
        try:
            app.run_workflow(child, workflow_id="kid", **request_field)
        except ValueError as e:
            return str(e)
        return "started"

    with app:
        message = app.run_workflow(parent, workflow_id="p").get_result(WAIT)
        with pytest.raises(dk.NonExistentWorkflowError):
            app.get_workflow_status("kid")
    assert next(iter(request_field)) in message
    assert "child" in message
    assert counts["child"] == 0


def test_retrieve_with_another_output_type_than_declared_is_an_unexpected_type(
    store: dk.SystemStore,
) -> None:
    app = new_app(store)

    @app.workflow(name="numbers")
    def numbers(ctx: dk.Context) -> list[int]:
        return [1, 2]

    @app.workflow(name="loose")
    def loose(ctx):  # type: ignore[no-untyped-def]  # no declared output type
        return {"a": 1}

    with app, dk.Client(store=store) as client:
        app.run_workflow(numbers, workflow_id="n").get_result(WAIT)
        app.run_workflow(loose, workflow_id="l").get_result(WAIT)
        assert app.retrieve_workflow("n", list[int]).get_result(WAIT) == [1, 2]
        anything: object = app.retrieve_workflow("n", Any).get_result(WAIT)
        assert anything == [1, 2]
        for wrong in (str, list[str], dict[str, int]):
            with pytest.raises(dk.WorkflowUnexpectedTypeError) as caught:
                app.retrieve_workflow("n", wrong)
            assert caught.value.workflow_id == "n"
            assert "declares output type list[int]" in str(caught.value)
        # Nothing declared (or not registered here, as in a client): the caller's type rules.
        assert app.retrieve_workflow("l", dict[str, int]).get_result(WAIT) == {"a": 1}
        assert client.retrieve_workflow("n", list[str]).workflow_id == "n"


RESERVED = "reserved: not raised by this version"


def _raised_names() -> set[str]:
    """Names of the classes the source builds: ``raise X(...)``, ``return X(...)`` in a helper
    that builds the error a caller raises, ``error = X(...)`` raised later, or ``GiveUp(X(...))``
    handed back by the core's retry verdict. Building an exported error anywhere in the
    source counts; defining it or naming it in ``isinstance`` does not."""
    names: set[str] = set()
    for path in (ROOT / "src" / "durakit").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                names.add(node.func.id)
    return names


def test_every_exported_error_is_raised_or_documented_as_reserved() -> None:
    raised = _raised_names()
    docs = (ROOT / "docs" / "management.md").read_text()
    for name in dk.__all__:
        cls = getattr(dk, name)
        if not (isinstance(cls, type) and issubclass(cls, dk.DurakitError)):
            continue
        if cls is dk.DurakitError:  # the base: documented above the table
            continue
        assert re.search(rf"^\| `{name}` \|", docs, re.M), f"{name} missing from the docs"
        if name in raised:
            assert RESERVED not in (cls.__doc__ or "").lower(), name
        else:
            assert RESERVED in (cls.__doc__ or "").lower(), f"{name} is never raised nor reserved"
            assert re.search(rf"^\| `{name}` \| {RESERVED}", docs, re.M), name
