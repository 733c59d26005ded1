"""The ``durakit`` command: inspect and operate workflows from a shell.

Noun-verb subcommands (``durakit workflow list``), every one against ``--db URL`` (given
before or after the subcommand; it wins over ``DURAKIT_DATABASE_URL``). Human tables by
default, ``--json`` for scripts with the admin API's field names. Exit codes: 0 done,
1 a durakit error (one line on stderr, no traceback), 2 a usage error.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click
import psycopg
from rich.console import Console
from rich.table import Table

from durakit.admin.codec import (
    BadRequest,
    parse_filters,
    step_json,
    workflow_json,
    workflow_page,
)
from durakit.admin.server import AdminServer
from durakit.api.client import Client
from durakit.backends.protocol import SystemStore
from durakit.backends.urls import open_store
from durakit.core.errors import DurakitError
from durakit.core.status import StatusType

F = TypeVar("F", bound=Callable[..., Any])

EXAMPLES = """
\b
Examples:
  durakit --db postgresql://localhost/shop workflow list --status ERROR
  durakit workflow get 3f2c... --db sqlite:///shop.db --json
  durakit dashboard --db postgresql://localhost/shop --port 3001
"""


def _common(fn: F) -> F:
    """``--db``, ``--schema`` and ``--json`` on a command, so that they may follow the
    subcommand too (the subcommand's win)."""
    fn = click.option(
        "--db", "db", metavar="URL", help="Database URL (else env DURAKIT_DATABASE_URL)."
    )(fn)
    fn = click.option(
        "--schema",
        metavar="NAME",
        help="Postgres schema of durakit's tables (else env DURAKIT_DATABASE_SCHEMA, "
        "else durakit).",
        expose_value=False,
        callback=_remember_schema,
    )(fn)
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")(fn)


def _remember_schema(ctx: click.Context, _: click.Parameter, value: str | None) -> None:
    if value is not None:
        settings = ctx.find_object(Settings)
        if settings is None:  # the root command's own option: Settings comes next
            ctx.meta["durakit.schema"] = value
        else:
            settings.schema = value


class Settings:
    """What the root command was given; a subcommand's own ``--db``/``--json`` win."""

    def __init__(self, db: str | None, as_json: bool, schema: str) -> None:
        self.db = db
        self.as_json = as_json
        self.schema = schema

    def url(self, db: str | None) -> str:
        url = db or self.db or os.environ.get("DURAKIT_DATABASE_URL")
        if not url:
            raise click.UsageError(
                "no database: pass --db URL (e.g. postgresql://host/db or sqlite:///app.db) "
                "or set DURAKIT_DATABASE_URL"
            )
        return url


def _settings() -> Settings:
    settings = click.get_current_context().find_object(Settings)
    assert settings is not None  # the root command always sets it
    return settings


@contextmanager
def _errors() -> Iterator[None]:
    """A durakit error ends the command with its message (exit 1), and so does a
    database that cannot be opened; a bad argument value found by the API's own checks
    is a usage error (exit 2). No tracebacks."""
    try:
        yield
    except DurakitError as exc:
        raise click.ClickException(str(exc)) from None
    except (sqlite3.Error, psycopg.Error, OSError) as exc:
        raise click.ClickException(f"cannot use the database: {exc}") from None
    except (BadRequest, ValueError, TypeError) as exc:
        raise click.UsageError(str(exc)) from None


CONNECT_RETRY_S = 5.0
"""How long a command waits for an unreachable Postgres before it gives up (an
application waits longer: it must ride out a restart; a person at a shell should not)."""


def _open_store(url: str, schema: str) -> SystemStore:
    if url.lower().startswith(("postgresql://", "postgres://")):
        from durakit.backends.postgres import PostgresStore  # noqa: PLC0415 - psycopg on demand

        return PostgresStore(url, schema, max_size=8, retry_timeout=CONNECT_RETRY_S)
    return open_store(url, schema)


@contextmanager
def _client(db: str | None) -> Iterator[Client]:
    settings = _settings()
    with _errors():
        store = _open_store(settings.url(db), settings.schema)
        try:
            client = Client(store=store)
        except BaseException:
            store.close()
            raise
    try:
        with _errors():
            yield client
    finally:
        store.close()


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def _short(value: Any, width: int = 50) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


def _console() -> Console:
    return Console(highlight=False, soft_wrap=False)


@click.group(epilog=EXAMPLES, context_settings={"help_option_names": ["-h", "--help"]})
@_common
@click.pass_context
def cli(ctx: click.Context, db: str | None, as_json: bool) -> None:
    """Inspect and operate durakit workflows."""
    schema = ctx.meta.get("durakit.schema") or os.environ.get("DURAKIT_DATABASE_SCHEMA")
    ctx.obj = Settings(db, as_json, schema or "durakit")


@cli.group()
def workflow() -> None:
    """List, inspect, cancel, resume and fork workflows."""


@workflow.command("list")
@_common
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice([s.value for s in StatusType], case_sensitive=False),
    help="Only this status (repeat for several).",
)
@click.option("--name", help="Only workflows of this function name.")
@click.option("--user", help="Only workflows started for this authenticated user.")
@click.option("--app-version", help="Only this application version.")
@click.option("--executor", "executors", multiple=True, help="Only this executor (repeatable).")
@click.option("--prefix", help="Only workflow IDs starting with this.")
@click.option("--queue", help="Only workflows of this queue.")
@click.option("--since", metavar="TIME", help="Created at or after (ISO 8601 with offset).")
@click.option("--until", metavar="TIME", help="Created at or before (ISO 8601 with offset).")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0, show_default=True)
@click.option("--asc", is_flag=True, help="Oldest first (default: newest first).")
def list_cmd(
    *,
    db: str | None,
    as_json: bool,
    statuses: tuple[str, ...],
    name: str | None,
    user: str | None,
    app_version: str | None,
    executors: tuple[str, ...],
    prefix: str | None,
    queue: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    offset: int,
    asc: bool,
) -> None:
    """List workflows, newest first, one page at a time."""
    body: dict[str, Any] = {
        "status": [s.upper() for s in statuses] or None,
        "name": name,
        "user": user,
        "app_version": app_version,
        "executor_ids": list(executors) or None,
        "workflow_id_prefix": prefix,
        "queue_name": queue,
        "start_time": since,
        "end_time": until,
        "limit": limit,
        "offset": offset,
        "sort_desc": not asc,
        "load_input": False,
        "load_output": False,
    }
    with _errors():
        filters, limit, offset = parse_filters(body)
    with _client(db) as client:
        page = workflow_page(client, filters, limit, offset)
    if _settings().as_json or as_json:
        _print_json(page)
        return
    table = Table("workflow_id", "name", "status", "created_at", "executor", "attempts")
    for w in page["workflows"]:
        table.add_row(
            w["workflow_id"],
            w["name"],
            w["status"],
            w["created_at"],
            w["executor_id"] or "",
            str(w["attempts"]),
        )
    for column in table.columns:
        column.overflow = "fold"
    console = _console()
    console.print(table)
    if page["next_offset"] is not None:
        console.print(f"more: --offset {page['next_offset']}")


@workflow.command("get")
@_common
@click.argument("workflow_id")
def get_cmd(db: str | None, as_json: bool, workflow_id: str) -> None:
    """Show one workflow: status, input, output or error."""
    with _client(db) as client:
        row = workflow_json(client.get_workflow_status(workflow_id), client.serializer)
    if _settings().as_json or as_json:
        _print_json(row)
        return
    table = Table("field", "value", show_header=False)
    for key, value in row.items():
        table.add_row(key, _short(value, 200))
    _console().print(table)


@workflow.command("steps")
@_common
@click.argument("workflow_id")
def steps_cmd(db: str | None, as_json: bool, workflow_id: str) -> None:
    """Show a workflow's recorded steps with their outcomes and times."""
    with _client(db) as client:
        client.get_workflow_status(workflow_id)  # "does not exist" rather than no steps
        steps = [step_json(s, client.serializer) for s in client.get_workflow_steps(workflow_id)]
    if _settings().as_json or as_json:
        _print_json(steps)
        return
    table = Table("step_id", "name", "outcome", "started_at", "completed_at", "child")
    for s in steps:
        outcome = f"error: {_short(s['error'])}" if s["error"] else _short(s["output"])
        table.add_row(
            str(s["step_id"]),
            s["name"],
            outcome,
            s["started_at"] or "",
            s["completed_at"] or "",
            s["child_workflow_id"] or "",
        )
    _console().print(table)


@workflow.command("cancel")
@_common
@click.argument("workflow_id")
def cancel_cmd(db: str | None, as_json: bool, workflow_id: str) -> None:
    """Cancel a workflow (it stops at its next step; a finished one is left as it is)."""
    with _client(db) as client:
        client.cancel_workflow(workflow_id)
        status = client.get_workflow_status(workflow_id).status.value
    _done(as_json, {"workflow_id": workflow_id, "status": status}, f"{workflow_id}: {status}")


@workflow.command("set-version")
@_common
@click.argument("workflow_ids", nargs=-1)
@click.option("--to", "to_version", required=True, help="The application version to move to.")
@click.option("--from", "from_version", help="Move every waiting workflow of this version.")
def set_version_cmd(
    *,
    db: str | None,
    as_json: bool,
    workflow_ids: tuple[str, ...],
    to_version: str,
    from_version: str | None,
) -> None:
    """Move PENDING and ENQUEUED workflows (these IDs and/or --from a version) to the
    version --to, so that executors of that version run them. Finished ones never move."""
    with _client(db) as client:
        moved = client.set_workflow_version(
            list(workflow_ids) or None, from_version=from_version, to_version=to_version
        )
    _done(
        as_json,
        {"moved": moved, "to_version": to_version},
        f"moved {len(moved)} workflow(s) to version {to_version}"
        + "".join(f"\n  {wid}" for wid in moved),
    )


def _admin_option(fn: F) -> F:
    fn = click.option(
        "--admin-url",
        envvar="DURAKIT_ADMIN_URL",
        metavar="URL",
        help="The application's admin server (env DURAKIT_ADMIN_URL).",
    )(fn)
    return click.option(
        "--token", envvar="DURAKIT_ADMIN_TOKEN", help="Its bearer token (env DURAKIT_ADMIN_TOKEN)."
    )(fn)


def _admin_call(action: str, admin_url: str | None, token: str | None, path: str, body: Any) -> Any:
    """POST to a running application's admin server: resume and fork run the workflow's
    code, which only the application has."""
    if not admin_url:
        raise click.UsageError(
            f"{action} runs the workflow's code, which only its application has: pass "
            "--admin-url (or DURAKIT_ADMIN_URL) of the application's admin server, "
            "started with Config(admin_server=True)"
        )
    request = urllib.request.Request(  # noqa: S310 - the operator's own admin URL
        admin_url.rstrip("/") + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            error = json.loads(exc.read())
            message = f"{error['error']} ({error['code']})"
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {exc.code}"
        raise click.ClickException(f"{action} failed: {message}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise click.ClickException(
            f"cannot reach the admin server at {admin_url}: {reason}"
        ) from None


def _done(as_json: bool, answer: dict[str, Any], human: str) -> None:
    if _settings().as_json or as_json:
        _print_json(answer)
    else:
        click.echo(human)


@workflow.command("resume")
@_common
@_admin_option
@click.argument("workflow_id")
def resume_cmd(
    db: str | None, as_json: bool, admin_url: str | None, token: str | None, workflow_id: str
) -> None:
    """Resume a cancelled or dead-lettered workflow from its last completed step.

    Runs through the application's admin server (--admin-url)."""
    path = "/workflows/" + urllib.parse.quote(workflow_id, safe="") + "/resume"
    answer = _admin_call("resume", admin_url, token, path, {})
    _done(as_json, answer, f"{answer['workflow_id']}: {answer['status']}")


@workflow.command("fork")
@_common
@_admin_option
@click.argument("workflow_id")
@click.option(
    "--step", "start_step", type=click.IntRange(0), required=True, help="First step to run again."
)
@click.option("--forked-id", help="The new workflow's ID (default: a new UUID).")
@click.option("--app-version", help="The new workflow's application version.")
def fork_cmd(
    *,
    db: str | None,
    as_json: bool,
    admin_url: str | None,
    token: str | None,
    workflow_id: str,
    start_step: int,
    forked_id: str | None,
    app_version: str | None,
) -> None:
    """Start a new workflow that reuses the steps before --step and runs the rest.

    Runs through the application's admin server (--admin-url)."""
    body: dict[str, Any] = {"start_step": start_step}
    if forked_id is not None:
        body["forked_workflow_id"] = forked_id
    if app_version is not None:
        body["application_version"] = app_version
    path = "/workflows/" + urllib.parse.quote(workflow_id, safe="") + "/fork"
    answer = _admin_call("fork", admin_url, token, path, body)
    _done(as_json, answer, f"forked {workflow_id} from step {start_step}: {answer['workflow_id']}")


@cli.command()
@_common
def migrate(db: str | None, as_json: bool) -> None:
    """Create or upgrade durakit's tables in the database."""
    settings = _settings()
    with _errors():
        store = _open_store(settings.url(db), settings.schema)
        try:
            store.migrate()
        finally:
            store.close()
    _done(as_json, {"migrated": True}, "durakit tables are up to date")


@cli.command()
@_common
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=3001, show_default=True)
@click.option("--token", envvar="DURAKIT_ADMIN_TOKEN", help="Require this bearer token.")
def dashboard(db: str | None, as_json: bool, host: str, port: int, token: str | None) -> None:
    """Serve the web dashboard and admin API on a database, without the application.

    Lists, inspects and cancels; resume and fork need the application's own server."""
    with _client(db) as client:
        server = AdminServer(
            client, host=host, port=port, token=token or None, log=logging.getLogger("durakit")
        )
        click.echo(f"durakit dashboard on {server.url} (Ctrl-C to stop)")
        # uvicorn re-raises the Ctrl-C it stopped on: here that is the normal end.
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
    click.echo("dashboard stopped")


def main() -> None:
    """The console script's entry point."""
    # Warnings reach stderr as one line each; the connection pools' retry chatter does not
    # (a command that cannot reach its database says so once, when it gives up).
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    for noisy in ("psycopg", "durakit.backends"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    cli(prog_name="durakit")
