"""Workload (f) pg_floor: the physical floor of one durable checkpoint.

Postgres URL: plain psycopg 3 (no durakit), one connection over TCP, default psycopg
settings (autocommit off, automatic server-side prepare after 5 uses).
Table:  CREATE TABLE floor_t (id bigint PRIMARY KEY, payload text NOT NULL)
Payload: the 12-byte text '{"result":1}' (about the size of a small step output).

Each variant: WARMUP=50 un-timed iterations, then ROUNDS=5 timed loops of ITER=1000
iterations each; the headline numbers (per_s, us_per_op) come from the median round,
latency percentiles from all 5000.
Variants:
  select1        : SELECT 1 in autocommit mode                 (pure round trip)
  insert1        : INSERT 1 row ; COMMIT                        (1 durable commit)
  insert3        : INSERT 3 rows (3 statements) ; COMMIT        (1 durable commit)
  insert1_async  : as insert1 but SET synchronous_commit = off  (no WAL flush wait)

SQLite URL (sqlite:///path): the same variants and keys with the stdlib sqlite3 driver
on a WAL-mode file with synchronous=FULL (what durakit's SQLite store uses), explicit
BEGIN IMMEDIATE ... COMMIT per iteration; insert1_async uses synchronous=NORMAL (no
fsync at commit in WAL mode). Reported as workload "sqlite_floor".
"""

from __future__ import annotations

import sqlite3
import statistics
import time
from collections.abc import Callable
from typing import Any

import psycopg
from common import CpuMeter, base_args, emit, is_sqlite, lat_summary, reset_database, sqlite_path

ITER = 1000
WARMUP = 50
ROUNDS = 5
PAYLOAD = '{"result":1}'
INSERT = "INSERT INTO floor_t (id, payload) VALUES (%s, %s)"
INSERT_SQLITE = "INSERT INTO floor_t (id, payload) VALUES (?, ?)"

Runner = Callable[[int], list[int]]


# -- Postgres -----------------------------------------------------------------------


def pg_select1(conn: psycopg.Connection[Any], n: int) -> list[int]:
    lat = []
    conn.autocommit = True
    for _ in range(n):
        s = time.perf_counter_ns()
        conn.execute("SELECT 1").fetchone()
        lat.append(time.perf_counter_ns() - s)
    conn.autocommit = False
    return lat


def pg_inserts(conn: psycopg.Connection[Any], start_id: int, n: int, per_txn: int) -> list[int]:
    lat = []
    nid = start_id
    with conn.cursor() as cur:
        for _ in range(n):
            s = time.perf_counter_ns()
            for _k in range(per_txn):
                cur.execute(INSERT, (nid, PAYLOAD))
                nid += 1
            conn.commit()
            lat.append(time.perf_counter_ns() - s)
    return lat


# -- SQLite -------------------------------------------------------------------------


def sq_select1(conn: sqlite3.Connection, n: int) -> list[int]:
    lat = []
    for _ in range(n):
        s = time.perf_counter_ns()
        conn.execute("SELECT 1").fetchone()
        lat.append(time.perf_counter_ns() - s)
    return lat


def sq_inserts(conn: sqlite3.Connection, start_id: int, n: int, per_txn: int) -> list[int]:
    lat = []
    nid = start_id
    for _ in range(n):
        s = time.perf_counter_ns()
        conn.execute("BEGIN IMMEDIATE")
        for _k in range(per_txn):
            conn.execute(INSERT_SQLITE, (nid, PAYLOAD))
            nid += 1
        conn.execute("COMMIT")
        lat.append(time.perf_counter_ns() - s)
    return lat


def main() -> None:
    p = base_args(__doc__)
    p.add_argument("--iter", type=int, default=ITER)
    args = p.parse_args()
    if not args.no_reset:
        reset_database(args.db_url)
    n = args.iter
    sqlite = is_sqlite(args.db_url)

    metrics: dict[str, Any] = {"iter": n}
    next_id = [0]

    def variant(name: str, fn: Runner) -> None:
        fn(WARMUP)
        cpu = CpuMeter(args.db_url)
        totals: list[int] = []
        lat: list[int] = []
        for _ in range(ROUNDS):
            t0 = time.perf_counter_ns()
            lat += fn(n)
            totals.append(time.perf_counter_ns() - t0)
        cpu_m = cpu.stop(prefix=f"{name}_cpu")
        total = statistics.median(totals)
        metrics[f"{name}_total_s"] = round(total / 1e9, 4)
        metrics[f"{name}_per_s"] = round(n / (total / 1e9), 1)
        metrics[f"{name}_us_per_op"] = round(total / 1e3 / n, 2)
        metrics[f"{name}_rounds_us_per_op"] = [round(t / 1e3 / n, 2) for t in totals]
        xacts = cpu_m.get(f"{name}_cpu_write_xacts")
        metrics[f"{name}_write_xacts_per_op"] = (
            None if xacts is None else round(xacts / (n * ROUNDS), 3)
        )
        metrics.update(lat_summary(lat, name, unit="us"))
        metrics.update(cpu_m)

    if sqlite:
        sq = sqlite3.connect(sqlite_path(args.db_url), isolation_level=None)
        sq.execute("PRAGMA journal_mode = WAL")
        sq.execute("PRAGMA synchronous = FULL")
        sq.execute("CREATE TABLE floor_t (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)")

        def sq_ins(per_txn: int) -> Runner:
            def f(k: int) -> list[int]:
                lat = sq_inserts(sq, next_id[0], k, per_txn)
                next_id[0] += k * per_txn
                return lat

            return f

        variant("select1", lambda k: sq_select1(sq, k))
        variant("insert1", sq_ins(1))
        variant("insert3", sq_ins(3))
        sq.execute("PRAGMA synchronous = NORMAL")
        variant("insert1_async", sq_ins(1))
        sq.close()
        driver = f"sqlite3 {sqlite3.sqlite_version}, WAL, synchronous=FULL"
    else:
        conn = psycopg.connect(args.db_url)
        conn.execute("CREATE TABLE floor_t (id bigint PRIMARY KEY, payload text NOT NULL)")
        conn.commit()

        def pg_ins(per_txn: int) -> Runner:
            def f(k: int) -> list[int]:
                lat = pg_inserts(conn, next_id[0], k, per_txn)
                next_id[0] += k * per_txn
                return lat

            return f

        variant("select1", lambda k: pg_select1(conn, k))
        variant("insert1", pg_ins(1))
        variant("insert3", pg_ins(3))
        conn.execute("SET synchronous_commit = off")
        conn.commit()
        variant("insert1_async", pg_ins(1))
        conn.execute("SET synchronous_commit = on")
        conn.commit()
        conn.close()
        driver = "psycopg3 sync, TCP 127.0.0.1"

    # Convenience names used in BENCHMARKS.md.
    metrics["commits_per_s_1row"] = metrics["insert1_per_s"]
    metrics["us_per_commit_1row"] = metrics["insert1_us_per_op"]
    metrics["commits_per_s_3rows"] = metrics["insert3_per_s"]
    metrics["us_per_commit_3rows"] = metrics["insert3_us_per_op"]

    emit(
        "sqlite_floor" if sqlite else "pg_floor",
        {"iter": n, "rounds": ROUNDS, "warmup": WARMUP, "payload": PAYLOAD, "driver": driver},
        metrics,
        args.db_url,
    )


if __name__ == "__main__":
    main()
