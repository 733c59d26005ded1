"""Shared helpers for durakit's benchmark scripts.

The workloads, parameters and JSON keys are those of the reference benchmarks
(``../shared/reference-bench`` in the development checkout; see ``bench/README.md``):
every script

* takes a scratch database URL: ``postgresql://...`` (the database named in it is
  DROPPED and re-created) or ``sqlite:///path`` / ``sqlite:////abs/path`` (the file and
  its ``-wal``/``-shm`` companions are deleted first),
* prints exactly one JSON line on stdout, with ``"engine": "durakit"`` and a ``"store"``
  key (``postgres`` or ``sqlite``); logs go to stderr.

This module is self-contained (psycopg is a durakit dependency anyway), so the scripts
run from a plain clone of the repository.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import sqlite3
import statistics
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

T_PROCESS_START = time.perf_counter()

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/dk_bench"
APP_NAME = "bench"
APP_VERSION = "bench-v1"  # pinned so a restarted process recovers the same version


# --------------------------------------------------------------------------
# Command line / database handling
# --------------------------------------------------------------------------


def base_args(description: str | None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "db_url",
        nargs="?",
        default=DEFAULT_URL,
        help="scratch database: postgresql://... (DROPPED and re-created) or "
        "sqlite:///path (file deleted first)",
    )
    p.add_argument(
        "--no-reset",
        action="store_true",
        help="do not drop/re-create the database first (not for recorded runs)",
    )
    return p


def is_sqlite(url: str) -> bool:
    return url.lower().startswith("sqlite://")


def store_kind(url: str) -> str:
    return "sqlite" if is_sqlite(url) else "postgres"


def sqlite_path(url: str) -> Path:
    """``sqlite:///rel.db`` -> ``rel.db``, ``sqlite:////abs.db`` -> ``/abs.db`` (as durakit)."""
    rest = url.partition("://")[2]
    if not rest.startswith("/") or len(rest) < 2:
        raise SystemExit(f"bad SQLite URL (use sqlite:///rel.db or sqlite:////abs.db): {url}")
    return Path(rest[1:])


def db_name(url: str) -> str:
    name = urlsplit(url).path.lstrip("/")
    if not name:
        raise SystemExit(f"database URL has no database name: {url}")
    return name


def with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def reset_database(url: str) -> None:
    """Postgres: DROP ... WITH (FORCE) and CREATE the database named in ``url``.
    SQLite: delete the file and its WAL/SHM companions."""
    if is_sqlite(url):
        path = sqlite_path(url)
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        return
    name = db_name(url)
    if name in ("postgres", "template0", "template1"):
        raise SystemExit(f"refusing to drop database {name!r}")
    admin = with_db(url, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def pg_settings(url: str) -> dict[str, str]:
    names = [
        "server_version",
        "fsync",
        "synchronous_commit",
        "wal_sync_method",
        "full_page_writes",
        "commit_delay",
        "shared_buffers",
        "max_connections",
    ]
    out: dict[str, str] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for n in names:
            row = conn.execute(f"SHOW {n}").fetchone()
            out[n] = str(row[0]) if row else ""
    return out


def sqlite_settings(url: str) -> dict[str, str]:
    path = sqlite_path(url)
    conn = sqlite3.connect(path)
    try:
        journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
        # synchronous is per connection; durakit sets FULL on each of its connections.
        return {
            "sqlite_version": sqlite3.sqlite_version,
            "journal_mode": str(journal),
            "synchronous": "FULL (set by durakit per connection)",
            "path": str(path),
        }
    finally:
        conn.close()


# --------------------------------------------------------------------------
# durakit engine
# --------------------------------------------------------------------------


def make_app(url: str) -> Any:
    """A durakit engine on ``url`` (not launched)."""
    import durakit as dk

    return dk.Durakit(
        dk.Config(app_name=APP_NAME, database_url=url, application_version=APP_VERSION)
    )


def durakit_version() -> str:
    try:
        import importlib.metadata as md

        return md.version("durakit")
    except Exception:
        return "unknown"


# --------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------


def percentile(values: Iterable[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]): sorted[ceil(q/100*n) - 1]."""
    s = sorted(values)
    if not s:
        return float("nan")
    k = max(0, math.ceil(q / 100.0 * len(s)) - 1)
    return s[k]


def lat_summary(ns_values: list[int], prefix: str, unit: str = "ms") -> dict[str, float]:
    div = {"ms": 1e6, "us": 1e3}[unit]
    v = [x / div for x in ns_values]
    return {
        f"{prefix}_median_{unit}": round(statistics.median(v), 4),
        f"{prefix}_p99_{unit}": round(percentile(v, 99), 4),
        f"{prefix}_mean_{unit}": round(statistics.fmean(v), 4),
        f"{prefix}_min_{unit}": round(min(v), 4),
        f"{prefix}_max_{unit}": round(max(v), 4),
    }


# --------------------------------------------------------------------------
# CPU accounting
# --------------------------------------------------------------------------

_CLK = os.sysconf("SC_CLK_TCK")


def _pg_cpu_s() -> float:
    """utime+stime of all visible processes whose comm is 'postgres' (see the reference)."""
    tot = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                s = f.read().decode("ascii", "replace")
        except OSError:
            continue
        comm = s[s.find("(") + 1 : s.rfind(")")]
        if comm != "postgres":
            continue
        fields = s[s.rfind(")") + 2 :].split()
        tot += int(fields[11]) + int(fields[12])
    return tot / _CLK


def _machine_busy_s() -> float:
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:]
    vals = [int(x) for x in parts]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)  # idle + iowait
    total = sum(vals[:8])
    return (total - idle) / _CLK


class CpuMeter:
    """CPU of this process / of Postgres / of the whole machine over a window.

    With a Postgres ``url``, also counts cluster-wide write transactions (transaction ids
    assigned, from ``pg_current_snapshot()``'s xmax) and WAL bytes over the same window,
    exactly as the reference's meter does. With a SQLite URL (or None) those two keys
    are absent.
    """

    _SNAP = (
        "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint, pg_current_wal_lsn()::text"
    )

    def __init__(self, url: str | None = None) -> None:
        self.conn: psycopg.Connection[Any] | None = None
        if url and not is_sqlite(url):
            self.conn = psycopg.connect(url, autocommit=True)
            row = self.conn.execute(self._SNAP).fetchone()
            assert row is not None
            self.x0, self.w0 = row
        self.t0 = time.perf_counter()
        self.p0 = time.process_time()
        self.pg0 = _pg_cpu_s()
        self.m0 = _machine_busy_s()

    def stop(self, prefix: str = "cpu") -> dict[str, Any]:
        wall = time.perf_counter() - self.t0
        client = time.process_time() - self.p0
        pg = _pg_cpu_s() - self.pg0
        mach = _machine_busy_s() - self.m0
        db: dict[str, Any] = {}
        if self.conn is not None:
            row = self.conn.execute(self._SNAP).fetchone()
            assert row is not None
            x1, w1 = row
            wal_row = self.conn.execute(
                "SELECT pg_wal_lsn_diff(%s::pg_lsn, %s::pg_lsn)::bigint", (w1, self.w0)
            ).fetchone()
            assert wal_row is not None
            self.conn.close()
            db = {
                f"{prefix}_write_xacts": int(x1) - int(self.x0),
                f"{prefix}_wal_bytes": int(wal_row[0]),
            }
        return {
            **db,
            f"{prefix}_window_s": round(wall, 3),
            f"{prefix}_client_s": round(client, 3),
            f"{prefix}_postgres_s": round(pg, 3),
            f"{prefix}_client_cores": round(client / wall, 3) if wall else 0.0,
            f"{prefix}_postgres_cores": round(pg / wall, 3) if wall else 0.0,
            f"{prefix}_machine_busy_cores": round(mach / wall, 3) if wall else 0.0,
        }


def per_unit(metrics: dict[str, Any], key: str, units: int, digits: int) -> float | None:
    """``metrics[key] / units`` rounded, or None when the key is absent (SQLite)."""
    value = metrics.get(key)
    if value is None or not units:
        return None
    per = float(value) / units
    return round(per, digits) if digits else round(per)


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------


def emit(
    workload: str, params: dict[str, Any], metrics: dict[str, Any], url: str, **extra: Any
) -> None:
    store = store_kind(url)
    settings: dict[str, str]
    try:
        settings = sqlite_settings(url) if store == "sqlite" else pg_settings(url)
    except Exception as e:  # pragma: no cover
        settings = {"error": repr(e)}
    rec: dict[str, Any] = {
        "workload": workload,
        "engine": "durakit",
        "engine_version": durakit_version(),
        "store": store,
        "python": platform.python_version(),
        "psycopg": psycopg.__version__,
        "ts": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "params": params,
        "metrics": metrics,
        ("sqlite" if store == "sqlite" else "pg"): settings,
        "script_wall_s": round(time.perf_counter() - T_PROCESS_START, 3),
    }
    rec.update(extra)
    sys.stdout.write(json.dumps(rec) + "\n")
    sys.stdout.flush()
