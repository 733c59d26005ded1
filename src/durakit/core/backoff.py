"""Exponential backoff, written once: step retries, store reconnects, the LISTEN thread,
the fallback re-checks of waiters, and retried recoveries all wait this way.

``exponential(first, factor, cap, n)`` is the n-th delay (1-based): ``first *
factor**(n-1)``, capped at ``cap``. :class:`Backoff` walks those delays and can jitter
each one down by up to a fraction, so that many waiters that started together do not
retry together. The random draw is the caller's (``rng``), which keeps this module pure
and lets tests pass a fixed one.
"""

from __future__ import annotations

from collections.abc import Callable


def exponential(first: float, factor: float, cap: float, n: int) -> float:
    """The n-th delay (n >= 1) of ``first, first*factor, ...`` capped at ``cap``."""
    if n < 1:
        raise ValueError(f"retry number must be >= 1, got {n}")
    delay = first
    # Stop multiplying once capped: factor**n overflows a float for large n.
    for _ in range(n - 1):
        delay *= factor
        if delay >= cap:
            break
    return min(delay, cap)


def _no_jitter() -> float:
    return 0.0


class Backoff:
    """Successive delays ``first, first*factor, ...`` up to ``cap``, each reduced by
    ``jitter * rng()`` of itself (``rng`` returns a float in [0, 1))."""

    __slots__ = ("_cap", "_current", "_factor", "_first", "_jitter", "_rng")

    def __init__(
        self,
        first: float,
        cap: float,
        *,
        factor: float = 2.0,
        jitter: float = 0.0,
        rng: Callable[[], float] = _no_jitter,
    ) -> None:
        if not 0 <= jitter <= 1:
            raise ValueError(f"jitter must be between 0 and 1, got {jitter}")
        self._first = first
        self._cap = cap
        self._factor = factor
        self._jitter = jitter
        self._rng = rng
        self._current = min(first, cap)

    def next(self) -> float:
        """The next delay, in seconds: the n-th is ``exponential(first, factor, cap, n)``
        before jitter."""
        delay = self._current
        self._current = min(self._cap, delay * self._factor)
        return delay * (1 - self._jitter * self._rng())

    def reset(self) -> None:
        """Start again from ``first`` (after a success)."""
        self._current = min(self._first, self._cap)
