"""One backoff for every retry loop (durakit.core.backoff)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from durakit.core.backoff import Backoff, exponential


def test_exponential_doubles_up_to_the_cap() -> None:
    assert [exponential(0.1, 2.0, 1.0, n) for n in range(1, 7)] == pytest.approx(
        [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    )
    assert exponential(0.1, 2.0, 1.0, 10**9) == 1.0  # no overflow, no long loop
    with pytest.raises(ValueError, match=">= 1"):
        exponential(0.1, 2.0, 1.0, 0)


def test_backoff_walks_the_same_delays_and_starts_again_on_reset() -> None:
    backoff = Backoff(0.1, 1.0)
    assert [backoff.next() for _ in range(6)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    backoff.reset()
    assert backoff.next() == pytest.approx(0.1)


def test_jitter_reduces_each_delay_by_the_drawn_fraction() -> None:
    draws = iter([0.0, 1.0, 0.5])
    backoff = Backoff(1.0, 10.0, jitter=0.5, rng=lambda: next(draws))
    assert [backoff.next() for _ in range(3)] == pytest.approx([1.0, 1.0, 3.0])


def test_jitter_must_be_a_fraction() -> None:
    with pytest.raises(ValueError, match="jitter"):
        Backoff(1.0, 2.0, jitter=1.5)


@given(
    first=st.floats(0.001, 10),
    factor=st.floats(1.0, 4.0),
    cap=st.floats(0.001, 100),
    jitter=st.floats(0, 1),
    draw=st.floats(0, 0.999),
    n=st.integers(1, 60),
)
def test_every_delay_is_the_exponential_one_jittered_down(
    *, first: float, factor: float, cap: float, jitter: float, draw: float, n: int
) -> None:
    backoff = Backoff(first, cap, factor=factor, jitter=jitter, rng=lambda: draw)
    delays = [backoff.next() for _ in range(n)]
    plain = exponential(first, factor, cap, n)
    assert delays[-1] == pytest.approx(plain * (1 - jitter * draw), rel=1e-9)
    assert 0 <= delays[-1] <= cap
