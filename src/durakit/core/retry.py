"""Step retry policy and the recovery dead-letter decision (pure arithmetic)."""

from __future__ import annotations

import math
from typing import Any

import attrs

from durakit.core.backoff import exponential

# The checks are written `not lo <= value < inf` so that NaN (which compares false to
# everything) and infinity are refused too: either would make a delay NaN or infinite.


def _non_negative(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not 0 <= value < math.inf:
        raise ValueError(f"{attribute.name} must be finite and >= 0, got {value!r}")


def _at_least_one(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not 1 <= value < math.inf:
        raise ValueError(f"{attribute.name} must be finite and >= 1, got {value!r}")


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """``max_retries=N`` allows at most 1 + N attempts (0: no retry).

    The delay before retry n (n = 1 for the first retry) is
    ``base_interval * backoff_factor ** (n - 1)``, capped at ``max_interval``.
    """

    max_retries: int = attrs.field(default=0, validator=_non_negative)
    backoff_factor: float = attrs.field(default=2.0, validator=_at_least_one)
    base_interval: float = attrs.field(default=0.1, validator=_non_negative)
    max_interval: float = attrs.field(default=5.0, validator=_non_negative)

    def delay_before_retry(self, n: int) -> float:
        """Seconds to wait before retry ``n`` (1-based)."""
        return exponential(self.base_interval, self.backoff_factor, self.max_interval, n)

    def may_retry(self, failed_attempts: int) -> bool:
        """Whether another attempt is allowed after ``failed_attempts`` failures."""
        return failed_attempts <= self.max_retries


def should_dead_letter(attempts: int, max_recovery_attempts: int) -> bool:
    """Whether a workflow whose execution count is now ``attempts`` must dead-letter.

    ``attempts`` counts executions: 1 for the first start, +1 per recovery. A workflow
    may be recovered ``max_recovery_attempts`` times; the recovery after that parks it in
    MAX_RECOVERY_ATTEMPTS_EXCEEDED instead of running it again.
    """
    return attempts - 1 > max_recovery_attempts
