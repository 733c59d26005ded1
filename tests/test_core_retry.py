"""Properties of the step retry policy and the recovery dead-letter decision."""

from __future__ import annotations

import math
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from durakit.core.retry import RetryPolicy, should_dead_letter

BASE = st.floats(min_value=0.0, max_value=1e3, allow_nan=False)
# Factors close to 1 keep the delay under the cap for thousands of retries; large ones
# would overflow a float within a few hundred if computed naively.
FACTOR = st.one_of(
    st.floats(min_value=1.0, max_value=1.001),
    st.floats(min_value=1.0, max_value=1e6),
)
CAP = st.floats(min_value=0.0, max_value=1e4, allow_nan=False)
RETRY = st.integers(min_value=1, max_value=10_000)


def policy(base: float, factor: float, cap: float) -> RetryPolicy:
    return RetryPolicy(base_interval=base, backoff_factor=factor, max_interval=cap)


def kwargs(field: str, value: float) -> dict[str, Any]:
    """One keyword argument chosen at run time (the parametrized field)."""
    return {field: value}


def uncapped(base: float, factor: float, n: int) -> float:
    """``base * factor ** (n - 1)`` as the documentation writes it, inf past float range."""
    if base == 0.0:
        return 0.0
    try:
        return base * factor ** (n - 1)
    except OverflowError:
        # The power alone is out of range; with a tiny base the product may not be.
        log = math.log(base) + (n - 1) * math.log(factor)
        return math.inf if log >= math.log(sys.float_info.max) else math.exp(log)


@given(base=BASE, factor=FACTOR, cap=CAP, n=RETRY)
def test_delay_is_the_documented_formula_capped(
    base: float, factor: float, cap: float, n: int
) -> None:
    delay = policy(base, factor, cap).delay_before_retry(n)
    expected = uncapped(base, factor, n)
    assert math.isfinite(delay)
    assert 0.0 <= delay <= cap
    # The implementation multiplies step by step; the formula takes one power. They agree
    # to rounding, so compare with a tolerance, and accept either side of the cap when
    # the exact value sits within that tolerance of it.
    tol = 1e-9
    if expected < cap * (1 - tol):
        assert math.isclose(delay, expected, rel_tol=tol, abs_tol=1e-300)
    elif expected > cap * (1 + tol):
        assert delay == cap
    else:
        assert math.isclose(delay, cap, rel_tol=tol)


@given(base=BASE, factor=FACTOR, cap=CAP, n=st.integers(min_value=1, max_value=9_999))
def test_delay_is_monotone_in_n(base: float, factor: float, cap: float, n: int) -> None:
    p = policy(base, factor, cap)
    assert p.delay_before_retry(n) <= p.delay_before_retry(n + 1)


@given(base=BASE, factor=FACTOR, cap=CAP)
def test_delay_sequence_is_monotone_and_reaches_the_cap_once_for_all(
    base: float, factor: float, cap: float
) -> None:
    p = policy(base, factor, cap)
    delays = [p.delay_before_retry(n) for n in range(1, 60)]
    assert delays == sorted(delays)
    if cap in delays:
        first = delays.index(cap)
        assert all(d == cap for d in delays[first:])


def test_the_first_retry_waits_the_base_interval() -> None:
    assert RetryPolicy(base_interval=0.25, max_interval=5.0).delay_before_retry(1) == 0.25
    assert RetryPolicy().delay_before_retry(1) == 0.1


def test_documented_defaults() -> None:
    p = RetryPolicy()
    assert (p.max_retries, p.backoff_factor, p.base_interval, p.max_interval) == (
        0,
        2.0,
        0.1,
        5.0,
    )
    assert [p.delay_before_retry(n) for n in range(1, 8)] == [
        0.1,
        0.2,
        0.4,
        0.8,
        1.6,
        3.2,
        5.0,
    ]


def test_a_base_above_the_cap_is_capped_from_the_first_retry() -> None:
    p = RetryPolicy(base_interval=10.0, max_interval=3.0)
    assert p.delay_before_retry(1) == 3.0
    assert p.delay_before_retry(2) == 3.0


def test_huge_retry_numbers_do_not_overflow() -> None:
    p = RetryPolicy(base_interval=1.0, backoff_factor=1e300, max_interval=7.0)
    assert p.delay_before_retry(10_000) == 7.0
    assert RetryPolicy(base_interval=0.0).delay_before_retry(10_000) == 0.0


@pytest.mark.parametrize("n", [0, -1, -10_000])
def test_retry_numbers_start_at_one(n: int) -> None:
    with pytest.raises(ValueError, match="retry number"):
        RetryPolicy().delay_before_retry(n)


@given(max_retries=st.integers(min_value=0, max_value=200))
def test_may_retry_allows_exactly_one_plus_max_retries_attempts(max_retries: int) -> None:
    p = RetryPolicy(max_retries=max_retries)
    attempts = 0
    failures = 0
    while True:
        attempts += 1  # the attempt fails
        failures += 1
        if not p.may_retry(failures):
            break
    assert attempts == 1 + max_retries


@given(max_retries=st.integers(min_value=0, max_value=200), failed=st.integers(0, 400))
def test_may_retry_boundary(max_retries: int, failed: int) -> None:
    assert RetryPolicy(max_retries=max_retries).may_retry(failed) is (failed <= max_retries)


def test_max_retries_zero_means_no_retry() -> None:
    p = RetryPolicy(max_retries=0)
    assert p.may_retry(0)
    assert not p.may_retry(1)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_retries", -1),
        ("base_interval", -0.001),
        ("max_interval", -1.0),
        ("backoff_factor", 0.999),
        ("backoff_factor", 0.0),
        ("backoff_factor", -2.0),
        # NaN passes a `value < 0` check; NaN or infinity would make delays NaN or endless.
        ("base_interval", math.nan),
        ("max_interval", math.nan),
        ("backoff_factor", math.nan),
        ("max_retries", math.nan),
        ("base_interval", math.inf),
        ("max_interval", math.inf),
        ("backoff_factor", math.inf),
        ("max_retries", math.inf),
    ],
)
def test_invalid_policy_values_raise_value_error(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        RetryPolicy(**kwargs(field, value))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_retries", 0),
        ("max_retries", 10**400),  # a huge int is finite: no float conversion, no overflow
        ("base_interval", 0.0),
        ("max_interval", 0.0),
        ("backoff_factor", 1.0),
    ],
)
def test_boundary_policy_values_are_valid(field: str, value: float) -> None:
    RetryPolicy(**kwargs(field, value))


def test_policy_is_frozen_and_keyword_only() -> None:
    p = RetryPolicy()
    with pytest.raises(AttributeError):
        p.max_retries = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        RetryPolicy(3)  # type: ignore[call-arg]


# -- dead letter ------------------------------------------------------------------------


@given(max_recovery=st.integers(min_value=0, max_value=1_000), attempts=st.integers(1, 2_000))
def test_dead_letter_boundary(max_recovery: int, attempts: int) -> None:
    assert should_dead_letter(attempts, max_recovery) is (attempts - 1 > max_recovery)


@given(max_recovery=st.integers(min_value=0, max_value=1_000))
def test_a_workflow_is_recovered_exactly_max_recovery_attempts_times(max_recovery: int) -> None:
    attempts = 1  # the first start
    recoveries = 0
    while True:
        attempts += 1  # the engine counts the attempt when it claims the workflow
        if should_dead_letter(attempts, max_recovery):
            break
        recoveries += 1
    assert recoveries == max_recovery
    assert not should_dead_letter(max_recovery + 1, max_recovery)
    assert should_dead_letter(max_recovery + 2, max_recovery)


def test_the_first_start_never_dead_letters() -> None:
    assert not should_dead_letter(1, 0)
    assert should_dead_letter(2, 0)
