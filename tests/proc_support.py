"""Shared by the tests that run durakit in child processes (tests/*_worker.py): starting a
worker, reading its stdout, and waiting for a killed worker's Postgres sessions to end."""

from __future__ import annotations

import select
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import attrs
import pytest

ROOT = Path(__file__).resolve().parent.parent


@attrs.frozen(kw_only=True)
class Backend:
    url: str
    schema: str

    @property
    def postgres(self) -> bool:
        return self.url.startswith(("postgresql://", "postgres://"))


@contextmanager
def open_backend(kind: str, sqlite_path: Path) -> Iterator[Backend]:
    """A SQLite database at ``sqlite_path`` (``kind == "sqlite"``) or a fresh Postgres
    schema of its own (skips when Postgres is unreachable; fails under CI=true)."""
    if kind == "sqlite":
        yield Backend(url=f"sqlite:///{sqlite_path}", schema="durakit")
        return
    from tests import pg

    with pg.fresh_schema() as (url, schema):
        yield Backend(url=url, schema=schema)


def tag_url(url: str, application_name: str) -> str:
    """``url`` with the sessions tagged, so the parent can wait for the server to drop them."""
    return url + ("&" if "?" in url else "?") + f"application_name={application_name}"


def start_worker(
    module: str, args: list[str], *, stderr: IO[bytes], stdin: int | None = None
) -> subprocess.Popen[bytes]:
    """Run ``tests/<module>.py`` as ``python -m tests.<module> <args>`` from the repository
    root (so that it can import tests.worker_support), its stdout piped."""
    return subprocess.Popen(
        [sys.executable, "-m", f"tests.{module}", *args],
        cwd=ROOT,
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=stderr,
    )


def wait_for_line(
    proc: subprocess.Popen[bytes], expected: bytes, log_path: Path, timeout: float
) -> None:
    """Read the worker's stdout until a line ``expected``; fail if it ends or the time runs out."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.05)
        if ready:
            line = proc.stdout.readline()
            if line.strip() == expected:
                return
            if not line:
                break
    pytest.fail(
        f"worker {proc.pid} did not say {expected.decode()!r} (exit code {proc.poll()}):\n"
        f"{log_path.read_text()}"
    )


def wait_sessions_gone(url: str, application_name: str, timeout: float, worker: object) -> None:
    """After a SIGKILL, a Postgres backend may still be finishing the dead worker's
    transaction (a COMMIT sent just before the kill). Wait until its sessions are gone."""
    import psycopg

    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                (application_name,),
            ).fetchone()
            if row is not None and row[0] == 0:
                return
            time.sleep(0.02)
    pytest.fail(f"the sessions of killed worker {worker} did not go away")
