"""An SQLite file that cannot be used says why; one that cannot be used *now* pauses.

Missing directory, read-only file, garbage in the file: ``launch()`` raises
``InitializationError`` naming the path. Running out of file descriptors is transient:
workflows pause and resume as on a Postgres outage, never ending ERROR. And the
connections of ended threads are given back, so file descriptors stay bounded.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import durakit as dk
from durakit.backends.sqlite import SQLiteStore
from durakit.backends.sqlite_errors import SQLiteFileError, classify
from durakit.backends.sqlite_pool import MAX_CONNECTIONS


def launch(path: Path) -> None:
    app = dk.Durakit(dk.Config(app_name="files", database_url=f"sqlite:///{path}"))
    try:
        app.launch()
    finally:
        app.shutdown()


def test_a_missing_directory_is_named(tmp_path: Path) -> None:
    path = tmp_path / "no-such-dir" / "app.db"
    with pytest.raises(dk.InitializationError) as info:
        launch(path)
    assert str(path) in str(info.value)
    assert f"the directory {path.parent} does not exist" in str(info.value)


def test_a_file_that_is_not_a_database_is_named(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    path.write_bytes(b"this is not a database\n" * 400)
    with pytest.raises(dk.InitializationError) as info:
        launch(path)
    assert str(path) in str(info.value)
    assert "not an SQLite database" in str(info.value)


@pytest.fixture
def read_only_db(tmp_path: Path) -> Iterator[Path]:
    """A migrated database file this process cannot write (immutable, if we are root)."""
    path = tmp_path / "app.db"
    store = SQLiteStore(path)
    store.migrate()
    store.close()
    for extra in tmp_path.glob("app.db-*"):
        extra.unlink()
    path.chmod(0o444)
    immutable = False
    if os.geteuid() == 0:  # root writes read-only files: make it immutable instead
        chattr = shutil.which("chattr")
        done = chattr and subprocess.run([chattr, "+i", str(path)], check=False).returncode
        if done != 0:
            pytest.skip("running as root without chattr +i: cannot make a read-only file")
        immutable = True
    try:
        yield path
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        path.chmod(0o644)


def test_a_read_only_file_is_named(read_only_db: Path) -> None:
    with pytest.raises(dk.InitializationError) as info:
        launch(read_only_db)
    assert str(read_only_db) in str(info.value)
    assert "read-only" in str(info.value)


def error(code: int) -> sqlite3.OperationalError:
    exc = sqlite3.OperationalError(f"code {code}")
    exc.sqlite_errorcode = code
    return exc


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (5, "transient"),  # SQLITE_BUSY
        (6, "transient"),  # SQLITE_LOCKED
        (10, "transient"),  # SQLITE_IOERR
        (10 | (3 << 8), "transient"),  # SQLITE_IOERR_WRITE
        (13, "transient"),  # SQLITE_FULL
        (8, "permanent"),  # SQLITE_READONLY
        (11, "permanent"),  # SQLITE_CORRUPT
        (26, "permanent"),  # SQLITE_NOTADB
        (19, "other"),  # SQLITE_CONSTRAINT: not about the file
    ],
)
def test_classification_by_result_code(code: int, kind: str, tmp_path: Path) -> None:
    result = classify(error(code), str(tmp_path / "a.db"))
    if kind == "other":
        assert result is None
    else:
        assert isinstance(result, dk.StoreUnavailableError)
        assert isinstance(result, SQLiteFileError) == (kind == "permanent")
        assert str(tmp_path / "a.db") in str(result)


def test_cannot_open_is_transient_unless_the_path_is_wrong(tmp_path: Path) -> None:
    cantopen = error(14)
    assert type(classify(cantopen, str(tmp_path / "a.db"))) is dk.StoreUnavailableError
    assert isinstance(classify(cantopen, str(tmp_path / "x" / "a.db")), SQLiteFileError)
    assert isinstance(classify(cantopen, str(tmp_path)), SQLiteFileError)  # a directory


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd")
def test_finished_workflows_leave_no_connections_open(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "app.db")
    app = dk.Durakit(dk.Config(app_name="fds", store=store, application_version="v1"))
    release = threading.Event()

    first_done = threading.Semaphore(0)

    @app.workflow(name="waits")
    def waits(ctx: dk.Context) -> int:
        ctx.run_step(lambda: None, name="first")  # every thread has used the store
        first_done.release()
        release.wait()
        return ctx.run_step(lambda: 1, name="second")

    with app:
        before = open_fds()
        handles = [app.run_workflow(waits) for _ in range(300)]
        for _ in handles:
            assert first_done.acquire(timeout=60)
        release.set()
        assert sum(h.get_result(timeout=60) for h in handles) == 300
        assert store._pool.open_connections() <= MAX_CONNECTIONS
        # Each connection holds the file and its WAL: a few descriptors each.
        assert open_fds() - before <= 3 * MAX_CONNECTIONS
    store.close()


WORKER = textwrap.dedent(
    """
    import json, os, resource, sys, time
    import durakit as dk

    app = dk.Durakit(dk.Config(app_name="fd", database_url="sqlite:///" + sys.argv[1]))

    @app.workflow(name="w")
    def w(ctx: dk.Context, i: int) -> int:
        ctx.run_step(lambda: time.sleep(0.3), name="slow")
        return ctx.run_step(lambda: i, name="value")

    with app:
        ids = [f"w{i}" for i in range(12)]
        open_now = len(os.listdir("/proc/self/fd"))
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        # Room for a couple of connections: the other workflows cannot open theirs.
        resource.setrlimit(resource.RLIMIT_NOFILE, (open_now + 5, hard))
        for i, wid in enumerate(ids):
            app.run_workflow(w, i, workflow_id=wid)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            statuses = {wid: app.get_workflow_status(wid).status.value for wid in ids}
            if "PENDING" not in statuses.values():
                break
            time.sleep(0.2)
        print(json.dumps(statuses), flush=True)
    """
)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd")
def test_running_out_of_file_descriptors_pauses_workflows(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", WORKER, str(tmp_path / "app.db")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    statuses = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(statuses.values()) == {"SUCCESS"}, (statuses, done.stderr[-3000:])
    assert "Too many open files" not in done.stderr
    assert done.stderr.count("is unavailable") <= 1, done.stderr[-3000:]
