"""Versions you can see and move: launch() names other versions' waiting work, and
set_workflow_version moves it on purpose (engine and client)."""

from __future__ import annotations

import logging

import pytest

import durakit as dk
from tests.conftest import StoreFactory
from tests.helpers import WAIT, Counts, leave_pending, new_app


def register(app: dk.Durakit, counts: Counts) -> None:
    @app.workflow(name="echo")
    def echo(ctx: dk.Context, text: str) -> str:
        counts.bump(text)
        return text.upper()


def test_launch_warns_naming_each_other_version_and_how_to_move_it(
    store_factory: StoreFactory, caplog: pytest.LogCaptureFixture
) -> None:
    store = store_factory()
    leave_pending(store, "a", version="v0")
    leave_pending(store, "b", version="v0")
    leave_pending(store, "c", version="old")
    leave_pending(store, "billing-1", version="v0", app_name="billing")  # another application's
    app = new_app(store, application_version="v1")
    register(app, Counts())
    with caplog.at_level(logging.WARNING, logger="durakit"), app:
        pass
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings
    assert "2 PENDING or ENQUEUED workflows of application 't' are of version 'v0'" in warnings[1]
    assert "set_workflow_version(from_version='v0')" in warnings[1]
    assert "1 PENDING or ENQUEUED workflows of application 't' are of version 'old'" in warnings[0]


def test_moving_work_to_this_engines_version_runs_it_at_once(store_factory: StoreFactory) -> None:
    store = store_factory()
    leave_pending(store, "a", version="v0")
    leave_pending(store, "b", version="v0")
    leave_pending(store, "c", version="v0")
    counts = Counts()
    app = new_app(store, application_version="v1")
    register(app, counts)
    with app:
        assert counts.as_dict() == {}  # not its version: left alone
        assert app.set_workflow_version(["a"]) == ["a"]
        assert app.retrieve_workflow("a").get_result(timeout=WAIT) == "A"
        assert app.set_workflow_version(from_version="v0") == ["b", "c"]
        assert app.retrieve_workflow("c").get_result(timeout=WAIT) == "C"
        assert app.get_workflow_status("b").application_version == "v1"
        # Finished work is never moved.
        assert app.set_workflow_version(["a"], to_version="v9") == []
    assert counts.as_dict() == {"a": 1, "b": 1, "c": 1}


def test_the_client_moves_work_to_a_version_it_names(store_factory: StoreFactory) -> None:
    store = store_factory()
    leave_pending(store, "a", version="v0")
    leave_pending(store, "b", version="v0", app_name="billing")
    with dk.Client(store=store) as client:
        with pytest.raises(ValueError, match="to_version is required"):
            client.set_workflow_version(["a"])
        assert client.set_workflow_version(from_version="v0", to_version="v1") == ["a", "b"]
        assert client.get_workflow_status("a").application_version == "v1"
        assert client.get_workflow_status("a").app_name == "t"
    counts = Counts()
    app = new_app(store, application_version="v1")
    register(app, counts)
    with app:  # its launch recovers the moved work of its application
        assert app.retrieve_workflow("a").get_result(timeout=WAIT) == "A"
    assert counts.as_dict() == {"a": 1}


@pytest.mark.parametrize(
    ("ids", "options", "message"),
    [
        (None, {}, "workflow_ids or from_version"),
        ([""], {}, "workflow_ids"),
        (["a"], {"to_version": ""}, "to_version"),
        (None, {"from_version": "a\x00b"}, "from_version"),
    ],
)
def test_bad_arguments_are_refused_before_anything_moves(
    ids: list[str] | None, options: dict[str, str], message: str
) -> None:
    store = dk.MemoryStore()
    leave_pending(store, "a", version="v0")
    app = new_app(store, application_version="v1")
    register(app, Counts())
    with app:
        with pytest.raises(ValueError, match=message):
            app.set_workflow_version(ids, **options)
        assert app.get_workflow_status("a").application_version == "v0"
