"""``@dk.step``: a plain function that becomes a checkpointed step inside a workflow."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from durakit.api.execution import CURRENT, IN_STEP, step_name_of
from durakit.api.serialization import declared_return_type

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
    one, and inside another step's body). Its return annotation types the replayed value."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        step_name = name or step_name_of(fn)
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
