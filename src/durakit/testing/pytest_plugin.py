"""durakit's pytest plugin: fixtures for in-memory engines under a fake clock.

Registered through the ``pytest11`` entry point, so the fixtures are available in any
project that has durakit installed; nothing to import or list in ``conftest.py``.

- ``durakit_clock``: a fresh :class:`~durakit.testing.FakeClock` per test.
- ``durakit_app_factory``: makes engines on a fresh in-memory store under that clock,
  and shuts every one of them down at teardown.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any, Protocol

import pytest

from durakit.api.config import Config
from durakit.api.engine import Durakit
from durakit.backends.memory import MemoryStore
from durakit.testing.fake_clock import FakeClock


class AppFactory(Protocol):
    """The type of the ``durakit_app_factory`` fixture, for annotating a test's argument."""

    def __call__(self, app_name: str = "test", **config_overrides: Any) -> Durakit: ...


@pytest.fixture
def durakit_clock() -> FakeClock:
    """A fresh durakit FakeClock (starts at 2025-01-01T00:00:00Z). It jumps straight to
    the earliest wake-up when every running workflow waits on time; ``advance()`` moves
    it by hand. The engines of ``durakit_app_factory`` use this clock."""
    return FakeClock()


@pytest.fixture
def durakit_app_factory(durakit_clock: FakeClock) -> Iterator[AppFactory]:
    """A function ``make(app_name="test", **config_overrides) -> durakit.Durakit``.

    Each call builds an engine on a fresh in-memory store (``MemoryStore``) with the
    ``durakit_clock`` fake clock; any ``Config`` field can be overridden by keyword
    (``store=``, ``clock=``, ``executor_id=``, ...). Register workflows on it, then call
    ``launch()`` or use ``with app:``. Every engine it made is shut down at teardown.
    """
    with ExitStack() as stack:

        def make(app_name: str = "test", **config_overrides: Any) -> Durakit:
            options: dict[str, Any] = {"store": MemoryStore(), "clock": durakit_clock}
            options.update(config_overrides)
            app = Durakit(Config(app_name=app_name, **options))
            stack.callback(app.shutdown)
            return app

        yield make
