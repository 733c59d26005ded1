"""A wrong Postgres configuration fails at once, with the server's reason; an outage retries.

Permanent failures (no such database or role, a wrong password, no pg_hba.conf entry, no
CONNECT privilege, an invalid option or sslmode, an unknown host) raise
``InitializationError`` from ``launch()`` and ``Client()`` within seconds, naming the
server, database and user. Transient ones (nothing listening, a server starting up, too
many clients) keep the store's retry budget.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import quote, urlencode

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

import durakit as dk
from durakit.backends.postgres import PostgresStore
from durakit.backends.postgres_errors import (
    connect_reason,
    describe_target,
    is_permanent_connect_error,
)
from tests.fake_pg import FakePostgres
from tests.pg import require_postgres

FAST_S = 5.0


def with_(url: str, **options: str) -> str:
    """``url`` with ``options`` changed, as a ``postgresql://`` URL (what Config takes)."""
    info = {k: str(v) for k, v in conninfo_to_dict(make_conninfo(url, **options)).items()}
    user = quote(info.pop("user", ""), safe="")
    password = info.pop("password", None)
    auth = f"{user}:{quote(password, safe='')}@" if password else (f"{user}@" if user else "")
    host, port = info.pop("host", ""), info.pop("port", "")
    dbname = quote(info.pop("dbname", ""), safe="")
    query = urlencode(info)
    return f"postgresql://{auth}{host}{':' + port if port else ''}/{dbname}" + (
        f"?{query}" if query else ""
    )


REAL_SERVER_CASES = {
    "missing database": ({"dbname": "durakit_no_such_db"}, 'database "durakit_no_such_db"'),
    "missing role": ({"user": "durakit_no_such_role"}, 'role "durakit_no_such_role"'),
    "invalid sslmode": ({"sslmode": "bogus"}, 'invalid sslmode value: "bogus"'),
    "invalid option": ({"connect_timeout": "soon"}, "connect_timeout"),
    "unknown host": ({"host": "no-such-host.invalid"}, "no-such-host.invalid"),
}


def _ssl_is_off(url: str) -> bool:
    with psycopg.connect(url) as conn:
        row = conn.execute("SHOW ssl").fetchone()
    return row is not None and row[0] == "off"


@pytest.mark.parametrize("case", [*REAL_SERVER_CASES, "sslmode=require"])
def test_launch_fails_at_once_with_the_servers_reason(
    case: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = require_postgres()
    if case == "sslmode=require":
        if not _ssl_is_off(url):
            pytest.skip("the test server accepts SSL")
        bad, reason = with_(url, sslmode="require"), "SSL was required"
    else:
        options, reason = REAL_SERVER_CASES[case]
        bad = with_(url, **options)
    app = dk.Durakit(dk.Config(app_name="connect", database_url=bad))
    caplog.set_level(logging.DEBUG)
    started = time.monotonic()
    with pytest.raises(dk.InitializationError) as info:
        app.launch()
    assert time.monotonic() - started < FAST_S
    message = str(info.value)
    assert message.startswith("cannot connect to Postgres (")
    assert reason in message
    assert app._store is None  # nothing left open
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == []  # the exception says it all


@pytest.mark.parametrize(
    ("sqlstate", "message"),
    [
        ("28P01", 'password authentication failed for user "app"'),
        ("28000", 'no pg_hba.conf entry for host "127.0.0.1", user "app", database "shop"'),
        (
            "42501",
            'permission denied for database "shop"\nDETAIL:  User does not have CONNECT privilege.',
        ),
        ("3D000", 'database "shop" does not exist'),
        ("28000", 'role "app" does not exist'),
    ],
)
def test_a_refused_login_fails_launch_and_client_at_once(sqlstate: str, message: str) -> None:
    server = FakePostgres(sqlstate, message)
    try:
        for open_it in (
            lambda: dk.Durakit(dk.Config(app_name="c", database_url=server.url())).launch(),
            lambda: dk.Client(server.url()),
        ):
            started = time.monotonic()
            with pytest.raises(dk.InitializationError) as info:
                open_it()
            assert time.monotonic() - started < FAST_S
            text = str(info.value)
            assert text.startswith(
                f"cannot connect to Postgres (127.0.0.1:{server.port}, database 'shop', "
                "user 'app'): "
            )
            assert message.splitlines()[0] in text
            assert ":pw@" not in text
        assert server.attempts <= 2 * 2  # one attempt each (libpq may retry without GSS)
    finally:
        server.close()


@pytest.mark.parametrize(
    ("sqlstate", "message"),
    [
        ("57P03", "the database system is starting up"),
        ("53300", "sorry, too many clients already"),
        ("57P01", "terminating connection due to administrator command"),
    ],
)
def test_a_server_that_is_not_ready_is_retried_for_the_budget(sqlstate: str, message: str) -> None:
    server = FakePostgres(sqlstate, message)
    store = PostgresStore(server.url(), "s", retry_timeout=1.5)  # not refused: retried
    try:
        started = time.monotonic()
        with pytest.raises(dk.StoreUnavailableError) as info:
            store.get_workflow("wf")
        assert 1.0 < time.monotonic() - started < 15
        assert message in str(info.value)  # the server's reason, not "no connection"
        assert server.attempts >= 2
    finally:
        store.close()
        server.close()


def test_nothing_listening_is_retried_for_the_budget() -> None:
    url = require_postgres()
    store = PostgresStore(with_(url, host="127.0.0.1", port="1"), "s", retry_timeout=1.5)
    try:
        started = time.monotonic()
        with pytest.raises(dk.StoreUnavailableError, match="Connection refused"):
            store.migrate()
        assert 1.0 < time.monotonic() - started < 15
    finally:
        store.close()


def test_classification_of_connect_errors() -> None:
    def op(message: str, sqlstate: str | None = None) -> psycopg.OperationalError:
        exc = psycopg.OperationalError(message)
        if sqlstate is not None:
            exc.sqlstate = sqlstate
        return exc

    permanent = [
        op('connection failed: connection to server at "h", port 5 failed: FATAL:  '
           'database "x" does not exist'),
        op("fe_sendauth: no password supplied"),
        op("could not translate host name \"nope\" to address: Name or service not known"),
        op("x", "28P01"),
        op("x", "3D000"),
        op("x", "42501"),
        psycopg.ProgrammingError('invalid connection option "bogus"'),
    ]  # fmt: skip
    transient = [
        op('connection to server at "h", port 5 failed: Connection refused'),
        op("connection timeout expired"),
        op("failed to resolve host 'h': Temporary failure in name resolution"),
        op("server closed the connection unexpectedly"),
        op("x", "57P03"),
        op("x", "53300"),
        op("x", "08006"),
        RuntimeError('database "x" does not exist'),  # not a psycopg error: not ours
    ]
    assert [is_permanent_connect_error(e) for e in permanent] == [True] * len(permanent)
    assert [is_permanent_connect_error(e) for e in transient] == [False] * len(transient)


def test_connect_reason_and_target() -> None:
    exc = psycopg.OperationalError(
        'connection failed: connection to server at "127.0.0.1", port 1 failed: '
        "Connection refused\n\tIs the server running on that host?\nMultiple connection "
        "attempts failed."
    )
    assert connect_reason(exc) == "Connection refused Is the server running on that host?"
    assert connect_reason(psycopg.OperationalError("")) == "OperationalError"
    assert (
        describe_target("postgresql://u:secret@db:6543/shop")
        == "db:6543, database 'shop', user 'u'"
    )
    assert describe_target("host=db user=u") == "db:5432, database 'u', user 'u'"
