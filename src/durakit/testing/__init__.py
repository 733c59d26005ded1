"""Test helpers for durakit users.

- :class:`FakeClock`: pass as ``Config(clock=...)``; a one-day sleep finishes at once.
- :class:`MockContext`: hand it to a workflow function to unit-test its body.
- pytest fixtures ``durakit_clock`` and ``durakit_app_factory`` (loaded automatically
  through the ``pytest11`` entry point; see :mod:`durakit.testing.pytest_plugin`, which
  also has ``AppFactory``, the factory fixture's type; this package itself does not need
  pytest).

See ``docs/testing.md``.
"""

from durakit.testing.fake_clock import FakeClock
from durakit.testing.mock_context import Call, MockContext, MockHandle

__all__ = ["Call", "FakeClock", "MockContext", "MockHandle"]
