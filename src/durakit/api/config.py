"""``Config``: how an engine is set up.

Invalid values raise InitializationError naming the field.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta

import attrs

from durakit.api.clock import Clock, SystemClock
from durakit.backends.dsn import mask_secrets
from durakit.backends.protocol import SystemStore
from durakit.core.errors import InitializationError


def _masked_repr(url: str | None) -> str:
    return repr(url if url is None else mask_secrets(url))


@attrs.frozen(kw_only=True)
class Config:
    """Engine configuration: ``Durakit(Config(app_name="shop", ...))``.

    Every field but ``app_name`` is optional and keyword-only. An invalid value raises
    ``InitializationError`` naming the field.

    Attributes:
        app_name: The application's name, recorded on each workflow it starts
            (``WorkflowStatus.application_id``). ``launch()`` recovers only this
            application's workflows, so several applications can share one database
            (and the default executor ID). Required, not blank.
        database_url: Where the state lives. ``None``: the SQLite file ``durakit.db`` in
            the working directory. ``"sqlite:///relative.db"`` or
            ``"sqlite:////absolute/path.db"``: an SQLite file. ``"postgresql://..."``:
            PostgreSQL. ``"memory://"``: in this process only, for tests.
        store: A ready ``SystemStore`` (for instance a ``MemoryStore`` shared by several
            engines in a test); it wins over ``database_url``. The engine does not close
            a store it was given.
        database_schema: The Postgres schema of durakit's tables (default
            ``"durakit"``); a plain identifier.
        logger: Where the engine logs: workflows started, finished, cancelled and
            recovered (info); failed, dead-lettered or stranded (not registered here,
            or of another application version) (warning); each step that runs
            (debug); a workflow stopped without an outcome (error, with the
            exception). Records carry ``workflow_id``, ``workflow_name`` and, for
            steps, ``step_id`` and ``step_name`` as extra attributes. ``None`` (the
            default): the ``"durakit"`` logger. Outages are logged by the store, on
            ``"durakit.backends.health"`` whatever this field says: one warning when
            the database becomes unreachable (with the reason) and one when it is back
            (with the downtime), however many calls retried and workflows paused
            meanwhile (those are DEBUG records). A store without such a tracker
            (``MemoryStore``, your own) has its outages logged here.
        tracing: Make OpenTelemetry spans: one per workflow execution, one per step
            that runs, on the global tracer provider; a workflow's executions (its
            recoveries too, in any process) continue the trace of the code that
            started it. Needs ``pip install 'durakit[otel]'``: without it, the engine
            refuses to be created (``InitializationError``). ``False`` (the default):
            nothing of OpenTelemetry is imported.
        admin_server: Serve the admin HTTP API and the web dashboard while the engine
            is launched (``launch()`` starts it, ``shutdown()`` stops it). Off by default.
        admin_host: The address the admin server binds (default ``"127.0.0.1"``).
            Another address than ``127.0.0.1``, ``::1`` or ``localhost`` needs an
            ``admin_token``: without one ``launch()`` raises ``InitializationError``.
        admin_port: The admin server's port (default 3001); 0 picks a free port, and
            ``app.admin_url`` tells which.
        admin_token: When set (or, when ``None``, the environment variable
            ``DURAKIT_ADMIN_TOKEN``), every admin request but ``GET /healthz`` and the
            dashboard's own files needs ``Authorization: Bearer <token>``.
        application_version: The version recorded on each workflow started here;
            ``launch()`` recovers only PENDING workflows of this version. ``None``: the
            environment variable ``DURAKIT_APP_VERSION``, else a hash of the registered
            workflows' code. Pin it in production (your release number).
        executor_id: This process's identity; ``launch()`` recovers only PENDING
            workflows of this executor. ``None``: the environment variable
            ``DURAKIT_EXECUTOR_ID``, else ``"local"``. Give each live process its own,
            and keep it across restarts.
        clock: Where time comes from, for every durable wait (sleeps, timeouts, retry
            backoff, deadlines). Tests pass a ``durakit.testing.FakeClock``.
        max_concurrent_workflows: At most this many workflow bodies of this engine run
            at once; ``None`` (the default): no bound. Workflows past the bound are
            started (their row is written and they are PENDING) and wait for a running
            one to finish before their body runs. A parent waiting for a child's result
            keeps its place, so leave room for children: with a bound of 1, a workflow
            that waits for a child never finishes.
        retention: Keep finished workflows this long: the engine deletes older ones
            (as ``garbage_collect(older_than=retention)``) at launch and then every
            tenth of this period (at least every second, at most every hour).
            ``None`` (the default): finished workflows are kept until deleted by hand.
            Must be a positive timedelta.
    """

    app_name: str
    # The URL's password stays out of repr()/str(), so a logged Config does not leak it.
    database_url: str | None = attrs.field(default=None, repr=_masked_repr)
    store: SystemStore | None = None
    database_schema: str = "durakit"
    logger: logging.Logger | None = None
    admin_server: bool = False
    admin_host: str = "127.0.0.1"
    admin_port: int = 3001
    admin_token: str | None = None
    application_version: str | None = None
    executor_id: str | None = None
    clock: Clock = attrs.field(factory=SystemClock)
    max_concurrent_workflows: int | None = None
    tracing: bool = False
    retention: timedelta | None = None

    def __attrs_post_init__(self) -> None:
        if not self.app_name.strip():
            raise InitializationError("Config.app_name must be a non-empty string")
        if not self.database_schema.isidentifier():
            raise InitializationError(
                f"Config.database_schema must be a plain identifier, got {self.database_schema!r}"
            )
        if not 0 <= self.admin_port < 65536:
            raise InitializationError(f"Config.admin_port out of range: {self.admin_port}")
        if self.admin_token is not None and not self.admin_token.strip():
            raise InitializationError("Config.admin_token must not be blank (None: no token)")
        if self.max_concurrent_workflows is not None and self.max_concurrent_workflows < 1:
            raise InitializationError(
                "Config.max_concurrent_workflows must be >= 1 or None, "
                f"got {self.max_concurrent_workflows}"
            )
        if not isinstance(self.tracing, bool):
            raise InitializationError(f"Config.tracing must be True or False, got {self.tracing!r}")
        # Checked at run time too: a caller without mypy may pass seconds as a number.
        retention: object = self.retention
        if retention is not None and (
            not isinstance(retention, timedelta) or retention <= timedelta(0)
        ):
            raise InitializationError(
                f"Config.retention must be a positive timedelta or None, got {self.retention!r}"
            )
        if not isinstance(self.clock, Clock):
            raise InitializationError("Config.clock must implement durakit.Clock (now, wait)")

    def resolved_executor_id(self) -> str:
        """Config value, else DURAKIT_EXECUTOR_ID, else "local"."""
        return self.executor_id or os.environ.get("DURAKIT_EXECUTOR_ID") or "local"

    def resolved_admin_token(self) -> str | None:
        """Config value, else DURAKIT_ADMIN_TOKEN (blank: none), else None."""
        return self.admin_token or os.environ.get("DURAKIT_ADMIN_TOKEN", "").strip() or None

    def resolved_logger(self) -> logging.Logger:
        return self.logger or logging.getLogger("durakit")
