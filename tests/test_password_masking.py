"""The database password never shows: not in a Config's repr, an error, or a log line."""

from __future__ import annotations

import logging

import pytest
from psycopg.conninfo import conninfo_to_dict

import durakit as dk
from durakit.backends.dsn import mask_secrets
from durakit.backends.urls import open_store
from tests.pg import require_postgres

SECRET = "s3cr3t-pw"  # noqa: S105 - the value the tests look for
URLS = [
    f"postgresql://user:{SECRET}@db.example:5432/shop",
    f"postgres://user:{SECRET}@db.example/shop?sslmode=require",
    f"postgresql://db.example/shop?user=u&password={SECRET}",
    f"host=db.example dbname=shop user=u password={SECRET}",
    f"host=db.example password='{SECRET} x' user=u",
]


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("postgresql://u:pw@h:5/db?x=1", "postgresql://u:***@h:5/db?x=1"),
        ("postgresql://u:p@ss@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:pw@h1:5,h2:6/db", "postgresql://u:***@h1:5,h2:6/db"),
        ("postgresql://h/db?password=pw&x=1", "postgresql://h/db?password=***&x=1"),
        ("host=h password=pw user=u", "host=h password=*** user=u"),
        ("host=h PASSWORD = 'p w\\' x' user=u", "host=h PASSWORD = *** user=u"),
        ("failed: 'postgresql://u:pw@h/db' (x)", "failed: 'postgresql://u:***@h/db' (x)"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("sqlite:////tmp/a:b.db", "sqlite:////tmp/a:b.db"),
    ],
)
def test_mask_secrets(text: str, masked: str) -> None:
    assert mask_secrets(text) == masked


@pytest.mark.parametrize("url", URLS)
def test_config_repr_and_str_hide_the_password(url: str) -> None:
    config = dk.Config(app_name="shop", database_url=url)
    assert SECRET not in repr(config)
    assert SECRET not in str(config)
    assert "***" in repr(config)
    assert config.database_url == url  # only its display is masked


def test_config_repr_without_a_url() -> None:
    assert "database_url=None" in repr(dk.Config(app_name="shop"))


@pytest.mark.parametrize("url", [f"mysql://u:{SECRET}@h/db", f"oracle://h/db?password={SECRET}"])
def test_an_unsupported_url_error_hides_the_password(url: str) -> None:
    with pytest.raises(dk.InitializationError) as info:
        open_store(url, "s")
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)


def test_a_failed_connection_names_the_server_but_not_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    base = require_postgres()
    info = conninfo_to_dict(base)
    host, port = info.get("host") or "127.0.0.1", info.get("port") or "5432"
    for url in (
        f"postgresql://{info.get('user') or 'postgres'}:{SECRET}@{host}:{port}/durakit_no_db",
        f"host={host} port={port} dbname=durakit_no_db password={SECRET}",
    ):
        caplog.set_level(logging.DEBUG)
        config = dk.Config(app_name="shop", database_url=url)
        app = dk.Durakit(config)
        with pytest.raises(dk.InitializationError) as raised:
            app.launch()
        assert "durakit_no_db" in str(raised.value)
        for text in (str(raised.value), repr(raised.value), repr(config), repr(app)):
            assert SECRET not in text
        assert all(SECRET not in r.getMessage() for r in caplog.records)
