"""``@dk.step``: a plain function that becomes a checkpointed step inside a workflow."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from durakit.api.execution import DERIVED_STEP_NAME, IN_STEP, step_name_of
from durakit.api.serialization import declared_return_type
from durakit.api.validation import check_duration, check_function, check_identifier
from durakit.api.waiting import CURRENT
from durakit.core.retry import RetryPolicy

P = ParamSpec("P")
R = TypeVar("R")


def step(
    *,
    name: str | None = None,
    max_retries: int = 0,
    backoff_factor: float = 2.0,
    base_interval: float = 0.1,
    max_interval: float = 5.0,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Make ``fn`` a checkpointed step when called inside a workflow (a plain call outside
    one, and inside another step's body). Its return annotation types the replayed value.

    Every argument is checked here, at decoration, not at the first call."""
    if name is not None:
        check_identifier("name", name)
    RetryPolicy(  # raises ValueError naming a bad max_retries or backoff_factor
        max_retries=max_retries,
        backoff_factor=backoff_factor,
        base_interval=check_duration("base_interval", base_interval),
        max_interval=check_duration("max_interval", max_interval),
    )

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        unsupported = check_function(fn, "step")
        if unsupported is not None:
            raise TypeError(f"@dk.step: {unsupported}")
        step_name = (
            check_identifier("name", step_name_of(fn), derived=DERIVED_STEP_NAME)
            if name is None
            else name
        )
        output_type = declared_return_type(fn)

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            ctx = CURRENT.get()
            if ctx is None or IN_STEP.get():
                return fn(*args, **kwargs)
            result: R = ctx.run_step(
                functools.partial(fn, *args, **kwargs),
                name=step_name,
                max_retries=max_retries,
                backoff_factor=backoff_factor,
                base_interval=base_interval,
                max_interval=max_interval,
                output_type=output_type,
            )
            return result

        return wrapper

    return decorate
