"""Shared fixtures: every behavioural test runs on each store kind in the same run.

``store_kind`` is parametrized over memory, sqlite and postgres. ``store_factory``
returns a function that opens a *new* store object on the same underlying database
each time it is called (which is how tests simulate a process restart: close one,
open another). Postgres tests get an isolated schema each; see tests/pg.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from durakit.backends import MemoryStore, SystemStore
from tests.waiting_support import Engines

settings.register_profile(
    "ci", derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None, max_examples=50)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

STORE_KINDS = ["memory", "sqlite", "postgres"]

StoreFactory = Callable[[], SystemStore]


def _sqlite_factory(path: Path) -> StoreFactory:
    from durakit.backends.sqlite import SQLiteStore

    def make() -> SystemStore:
        return SQLiteStore(path)

    return make


@pytest.fixture(params=STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def store_factory(store_kind: str, tmp_path: Path) -> Iterator[StoreFactory]:
    """A factory of stores on one database; every store it made is closed at teardown."""
    opened: list[SystemStore] = []
    if store_kind == "memory":
        shared = MemoryStore()

        def inner() -> SystemStore:
            return shared

    elif store_kind == "sqlite":
        inner = _sqlite_factory(tmp_path / "durakit.db")
    else:
        from tests.pg import postgres_schema_factory

        with postgres_schema_factory() as pg_inner:
            inner = pg_inner

            def make_pg() -> SystemStore:
                s = inner()
                opened.append(s)
                s.migrate()
                return s

            yield make_pg
            for s in opened:
                s.close()
        return

    def make() -> SystemStore:
        s = inner()
        opened.append(s)
        s.migrate()
        return s

    yield make
    for s in opened:
        s.close()


@pytest.fixture
def store(store_factory: StoreFactory) -> SystemStore:
    return store_factory()


@pytest.fixture
def engines(store_factory: StoreFactory) -> Iterator[Engines]:
    """Engines on one database (tests/waiting_support.py); all closed at teardown."""
    made = Engines(store_factory)
    yield made
    made.close()
