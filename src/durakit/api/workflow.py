"""``Workflow[I, R]``: what ``@app.workflow()`` and ``register_workflow`` return.

A registered workflow function wrapped in a typed object that carries its name, declared
input and output types and its recovery policy, and is still callable as the plain
function (``checkout(ctx, order)``). ``In`` is the input type (``None`` for a workflow
that takes only the context) and ``R`` the output type, so ``app.run_workflow(checkout,
order)`` is a ``WorkflowHandle[Receipt]`` for mypy.

Calling the object directly with a context that is not the engine's (a test's
``MockContext``) makes that context the current one for the call, so the ``@dk.step``
functions the body calls run through the mock's ``run_step`` with their retry policy
and are recorded in its ``calls``, exactly as the engine would run them.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from durakit.api.waiting import CURRENT

if TYPE_CHECKING:
    from durakit.api.context import Context
    from durakit.api.registry import WorkflowDef

In = TypeVar("In")
R = TypeVar("R")


class Workflow(Generic[In, R]):
    """A registered workflow: callable as its function, typed by its input and output."""

    # Copied from the function by functools.update_wrapper.
    __name__: str
    __qualname__: str

    def __init__(self, defn: WorkflowDef) -> None:
        self._defn = defn
        functools.update_wrapper(self, defn.fn)

    @property
    def name(self) -> str:
        """The registered name (stored with every run of it)."""
        return self._defn.name

    @property
    def fn(self) -> Any:
        """The decorated function itself."""
        return self._defn.fn

    @property
    def input_type(self) -> Any:
        """The declared type of the input (None when the workflow takes none or it is
        not annotated: plain JSON values)."""
        return self._defn.input_type

    @property
    def output_type(self) -> Any:
        """The declared return type (None when not annotated: plain JSON values)."""
        return self._defn.output_type

    @property
    def max_recovery_attempts(self) -> int:
        """How many recoveries a run of it may take before it is dead-lettered."""
        return self._defn.max_recovery_attempts

    def __repr__(self) -> str:
        return f"Workflow({self._defn.name!r})"

    @overload
    def __call__(self: Workflow[None, R], ctx: Context, /) -> R: ...

    @overload
    def __call__(self, ctx: Context, input: In, /) -> R: ...

    def __call__(self, ctx: Context, /, *args: Any) -> R:
        """Run the body inline with ``ctx``, as a plain function call (not durable)."""
        if CURRENT.get() is ctx:
            result: R = self._defn.fn(ctx, *args)
            return result
        token = CURRENT.set(ctx)
        try:
            result = self._defn.fn(ctx, *args)
        finally:
            CURRENT.reset(token)
        return result
