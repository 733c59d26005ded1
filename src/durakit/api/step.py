"""``@dk.step``: a plain function that becomes a checkpointed step inside a workflow.

The decorator returns a :class:`Step`: a typed object, still callable with the
function's own signature, that carries the step's name, declared output type and retry
policy.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Generic, ParamSpec, TypeVar

from durakit.api.execution import DERIVED_STEP_NAME, IN_STEP, step_name_of
from durakit.api.serialization import declared_return_type
from durakit.api.validation import check_duration, check_function, check_identifier
from durakit.api.waiting import CURRENT
from durakit.core.retry import RetryPolicy

P = ParamSpec("P")
R = TypeVar("R")


class Step(Generic[P, R]):
    """A checkpointed step: callable as its function (``charge(order, fee=...)``).

    Inside a workflow each call runs through the workflow's context as one step (its
    result checkpointed, replayed after a crash, retried by :attr:`policy`); outside a
    workflow, and inside another step's body, it is a plain call.
    """

    # Copied from the function by functools.update_wrapper.
    __name__: str
    __qualname__: str

    def __init__(
        self, fn: Callable[P, R], name: str, policy: RetryPolicy, output_type: Any
    ) -> None:
        self._fn = fn
        self._name = name
        self._policy = policy
        self._output_type = output_type
        functools.update_wrapper(self, fn)

    @property
    def name(self) -> str:
        """The step name recorded with each call (checked again on replay)."""
        return self._name

    @property
    def fn(self) -> Callable[P, R]:
        """The decorated function itself."""
        return self._fn

    @property
    def policy(self) -> RetryPolicy:
        """How a failing call is retried."""
        return self._policy

    @property
    def output_type(self) -> Any:
        """The declared return type that types the replayed value (None when not
        annotated: plain JSON values)."""
        return self._output_type

    def __repr__(self) -> str:
        return f"Step({self._name!r})"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        ctx = CURRENT.get()
        if ctx is None or IN_STEP.get():
            return self._fn(*args, **kwargs)
        policy = self._policy
        result: R = ctx.run_step(
            functools.partial(self._fn, *args, **kwargs),
            name=self._name,
            max_retries=policy.max_retries,
            backoff_factor=policy.backoff_factor,
            base_interval=policy.base_interval,
            max_interval=policy.max_interval,
            output_type=self._output_type,
        )
        return result


def step(
    *,
    name: str | None = None,
    max_retries: int = 0,
    backoff_factor: float = 2.0,
    base_interval: float = 0.1,
    max_interval: float = 5.0,
) -> Callable[[Callable[P, R]], Step[P, R]]:
    """Make ``fn`` a checkpointed step when called inside a workflow (a plain call outside
    one, and inside another step's body). Its return annotation types the replayed value.

    Every argument is checked here, at decoration, not at the first call."""
    if name is not None:
        check_identifier("name", name)
    policy = RetryPolicy(  # raises ValueError naming a bad max_retries or backoff_factor
        max_retries=max_retries,
        backoff_factor=backoff_factor,
        base_interval=check_duration("base_interval", base_interval),
        max_interval=check_duration("max_interval", max_interval),
    )

    def decorate(fn: Callable[P, R]) -> Step[P, R]:
        unsupported = check_function(fn, "step")
        if unsupported is not None:
            raise TypeError(f"@dk.step: {unsupported}")
        step_name = (
            check_identifier("name", step_name_of(fn), derived=DERIVED_STEP_NAME)
            if name is None
            else name
        )
        return Step(fn, step_name, policy, declared_return_type(fn))

    return decorate
