"""The ``durakit`` command: workflow list/get/steps/cancel/resume/fork, migrate and
dashboard, on SQLite and Postgres; exit codes 0/1/2 and no tracebacks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import durakit as dk
from durakit.cli import cli
from tests.admin_support import AdminApp
from tests.helpers import WAIT

DB_KINDS = ["sqlite", "postgres"]


class Db:
    """A database the CLI reaches by URL, and a store on it for the test's application."""

    def __init__(self, url: str, schema: str, store: dk.SystemStore) -> None:
        self.url = url
        self.schema = schema
        self.store = store

    def args(self) -> list[str]:
        return ["--db", self.url, "--schema", self.schema]


@pytest.fixture(params=DB_KINDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    if request.param == "sqlite":
        from durakit.backends.sqlite import SQLiteStore

        path = tmp_path / "cli.db"
        store: dk.SystemStore = SQLiteStore(path)
        store.migrate()
        yield Db(f"sqlite:///{path}", "durakit", store)
        store.close()
        return
    from durakit.backends.postgres import PostgresStore
    from tests.pg import fresh_schema

    with fresh_schema() as (url, schema):
        store = PostgresStore(url, schema)
        store.migrate()
        yield Db(url, schema, store)
        store.close()


@pytest.fixture
def admin(db: Db) -> Iterator[AdminApp]:
    made = AdminApp(db.store, admin_server=True, admin_port=0)
    with made.app:
        yield made


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, prog_name="durakit")


def run_json(*args: str) -> Any:
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output + result.stderr
    return json.loads(result.output)


def test_list_as_json_pages_and_filters(db: Db, admin: AdminApp) -> None:
    ids = admin.greetings(3)
    admin.failure("bad")
    page = run_json("workflow", "list", *db.args(), "--limit", "2")
    assert [w["workflow_id"] for w in page["workflows"]] == ["bad", ids[2]]  # newest first
    assert (page["limit"], page["offset"], page["next_offset"]) == (2, 0, 2)
    rest = run_json("workflow", "list", *db.args(), "--limit", "2", "--offset", "2")
    assert [w["workflow_id"] for w in rest["workflows"]] == [ids[1], ids[0]]
    assert rest["next_offset"] is None
    assert [
        w["workflow_id"] for w in run_json("workflow", "list", *db.args(), "--asc")["workflows"]
    ] == [*ids, "bad"]
    errors = run_json("workflow", "list", *db.args(), "--status", "error")
    assert [w["workflow_id"] for w in errors["workflows"]] == ["bad"]
    named = run_json("workflow", "list", *db.args(), "--name", "greet", "--prefix", "g001")
    assert [w["workflow_id"] for w in named["workflows"]] == ["g001"]


def test_list_as_a_table(db: Db, admin: AdminApp) -> None:
    admin.greetings(3)
    result = run("workflow", "list", *db.args(), "--limit", "2")
    assert result.exit_code == 0, result.stderr
    assert "g002" in result.output
    assert "SUCCESS" in result.output
    assert "g000" not in result.output
    assert "more: --offset 2" in result.output


def test_db_goes_before_or_after_the_subcommand_and_wins_over_the_environment(
    db: Db, admin: AdminApp
) -> None:
    admin.greetings(1)
    before = run("--db", db.url, "--schema", db.schema, "--json", "workflow", "get", "g000")
    after = run("workflow", "get", "g000", *db.args(), "--json")
    env = {"DURAKIT_DATABASE_URL": db.url, "DURAKIT_DATABASE_SCHEMA": db.schema}
    from_env = run("workflow", "get", "g000", "--json", env=env)
    wrong_env = {**env, "DURAKIT_DATABASE_URL": "sqlite:////nonexistent/dir/x.db"}
    winning = run("workflow", "get", "g000", "--json", "--db", db.url, env=wrong_env)
    for result in (before, after, from_env, winning):
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.output)["output"] == "hello w0!"


def test_get_and_steps(db: Db, admin: AdminApp) -> None:
    admin.greetings(1)
    row = run_json("workflow", "get", "g000", *db.args())
    assert (row["status"], row["name"], row["input"]) == ("SUCCESS", "greet", "w0")
    steps = run_json("workflow", "steps", "g000", *db.args())
    assert [(s["name"], s["output"]) for s in steps] == [
        ("hello", "hello w0"),
        ("shout", "hello w0!"),
    ]
    assert all(s["started_at"] and s["completed_at"] for s in steps)
    table = run("workflow", "steps", "g000", *db.args())
    assert table.exit_code == 0
    assert "shout" in table.output
    shown = run("workflow", "get", "g000", *db.args())
    assert "hello w0!" in shown.output


def test_a_missing_workflow_is_exit_1_with_one_line_and_no_traceback(db: Db) -> None:
    for command in ("get", "steps", "cancel"):
        result = run("workflow", command, "nope", *db.args())
        assert result.exit_code == 1, command
        assert "workflow 'nope' does not exist" in result.stderr
        assert "Traceback" not in result.stderr + result.output
        assert len(result.stderr.strip().splitlines()) == 1


def test_cancel_resume_and_fork(db: Db, admin: AdminApp) -> None:
    admin.waiting("w")
    assert run_json("workflow", "cancel", "w", *db.args()) == {
        "workflow_id": "w",
        "status": "CANCELLED",
    }
    url = admin.app.admin_url
    assert url is not None
    resumed = run_json("workflow", "resume", "w", *db.args(), "--admin-url", url)
    assert resumed["workflow_id"] == "w"
    admin.app.send("w", "go", topic="go")
    assert admin.app.retrieve_workflow("w").get_result(timeout=WAIT) == "got go"

    forked = run_json(
        "workflow", "fork", "w", "--step", "1", "--forked-id", "w2", "--admin-url", url
    )
    assert forked["workflow_id"] == "w2"
    admin.app.send("w2", "again", topic="go")
    assert admin.app.retrieve_workflow("w2").get_result(timeout=WAIT) == "got again"
    again = run("workflow", "fork", "w", "--step", "1", "--forked-id", "w2", "--admin-url", url)
    assert again.exit_code == 1
    assert "CONFLICTING_ID" in again.stderr


def test_set_version_moves_waiting_work_only(db: Db, admin: AdminApp) -> None:
    admin.greetings(1)
    admin.waiting("w")
    moved = run_json("workflow", "set-version", "w", "g000", "--to", "v2", *db.args())
    assert moved == {"moved": ["w"], "to_version": "v2"}  # g000 is finished: it stays
    assert run_json("workflow", "get", "w", *db.args())["application_version"] == "v2"
    human = run("workflow", "set-version", "--from", "v2", "--to", "v1", *db.args())
    assert human.exit_code == 0, human.stderr
    assert "moved 1 workflow(s) to version v1" in human.output
    neither = run("workflow", "set-version", "--to", "v3", *db.args())
    assert neither.exit_code == 2
    assert "give workflow_ids or from_version" in neither.stderr


def test_resume_and_fork_without_the_admin_server_say_what_to_do(db: Db) -> None:
    for args in (["resume", "w"], ["fork", "w", "--step", "1"]):
        result = run("workflow", *args, *db.args(), env={"DURAKIT_ADMIN_URL": ""})
        assert result.exit_code == 2
        assert "--admin-url" in result.stderr
    unreachable = run("workflow", "resume", "w", "--admin-url", "http://127.0.0.1:9")
    assert unreachable.exit_code == 1
    assert "cannot reach the admin server" in unreachable.stderr


def test_the_admin_token_is_sent(db: Db) -> None:
    made = AdminApp(db.store, admin_server=True, admin_port=0, admin_token="tok")
    with made.app:
        made.failure("bad")
        url = made.app.admin_url
        assert url is not None
        denied = run("workflow", "resume", "bad", "--admin-url", url)
        assert denied.exit_code == 1
        assert "UNAUTHORIZED" in denied.stderr
        ok = run("workflow", "resume", "bad", "--admin-url", url, "--token", "tok", "--json")
        assert json.loads(ok.output)["status"] == "ERROR"  # resume leaves a failure as it is


@pytest.mark.parametrize(
    "args",
    [
        ["workflow", "list", "--status", "DONE"],
        ["workflow", "list", "--since", "yesterday"],
        ["workflow", "list", "--limit", "5000"],
        ["workflow", "fork", "w"],
        ["workflow", "get", ""],
        ["nothing"],
    ],
)
def test_usage_errors_exit_2(db: Db, args: list[str]) -> None:
    result = run(*args, *db.args())
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.stderr


def test_no_database_is_a_usage_error() -> None:
    result = run("workflow", "list", env={"DURAKIT_DATABASE_URL": ""})
    assert result.exit_code == 2
    assert "no database: pass --db URL" in result.stderr


def test_migrate_creates_the_tables(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    assert run("migrate", "--db", url).exit_code == 0
    assert run_json("workflow", "list", "--db", url)["workflows"] == []
    bad = run("migrate", "--db", "mysql://nowhere")
    assert bad.exit_code == 1
    assert "Traceback" not in bad.stderr


# -- as a real process ---------------------------------------------------------------------
def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("DURAKIT_")}


def test_python_m_durakit_and_the_console_script(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    missing = subprocess.run(
        [sys.executable, "-m", "durakit", "workflow", "get", "nope", "--db", url],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
        check=False,
    )
    assert missing.returncode == 1
    assert missing.stderr.strip() == "Error: workflow 'nope' does not exist"
    script = Path(sys.executable).with_name("durakit")
    helped = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert helped.returncode == 0
    assert "Examples:" in helped.stdout


def test_dashboard_serves_a_database_without_the_application(db: Db, admin: AdminApp) -> None:
    admin.greetings(2)
    with subprocess.Popen(
        [sys.executable, "-u", "-m", "durakit", "dashboard", *db.args(), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    ) as proc:
        try:
            assert proc.stdout is not None
            url = proc.stdout.readline().split(" on ")[1].split()[0]
            with urllib.request.urlopen(url + "/healthz", timeout=WAIT) as response:  # noqa: S310
                assert json.loads(response.read())["status"] == "healthy"
            request = urllib.request.Request(url + "/workflows", data=b"{}", method="POST")  # noqa: S310
            with urllib.request.urlopen(request, timeout=WAIT) as response:  # noqa: S310
                assert len(json.loads(response.read())["workflows"]) == 2
            with urllib.request.urlopen(url + "/", timeout=WAIT) as response:  # noqa: S310
                assert b"durakit" in response.read()
        finally:
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 0, err
    assert "dashboard stopped" in out
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite:////nonexistent/dir/x.db", "Error: cannot open SQLite file /nonexistent/dir/x.db"),
        ("postgresql://postgres@127.0.0.1:1/x", "Error: Postgres unreachable for 5 s"),
    ],
)
def test_a_database_that_cannot_be_used_is_one_line_and_exit_1(url: str, message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "durakit", "workflow", "list", "--db", url],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.startswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
