"""Run the floor, durakit (Postgres and SQLite) and optionally the reference, in one go.

usage:
  python bench/run_all.py [--base-url postgresql://postgres@127.0.0.1:5432]
                          [--reference-python /path/to/venv/bin/python]
                          [--reference-dir ../shared/reference-bench]
                          [--runs 1] [--only floor a b e] [--no-sqlite]
                          [--round-trips] [--out bench/results/run-<utc time>.jsonl]

Workloads (``../shared/BENCHMARKS.md``): floor (plain psycopg, and plain sqlite3 for the
SQLite row), a = seq_workflows, b = step_overhead, e = events_messages. Every run starts
each script in a fresh subprocess on a fresh scratch database: ``dk_bench_<workload>``
for durakit, ``ref_<workload>`` for the reference (both DROPPED and re-created), and a
SQLite file in a temporary directory. Runs are interleaved (run 1 of every variant, then
run 2, ...), so slow drifts of a noisy host spread over all of them.

The reference (DBOS Transact for Python) runs only with ``--reference-python``: the
interpreter of a virtualenv that has ``dbos`` installed (never a durakit dependency),
and the reference's scripts from ``--reference-dir``.

``--round-trips`` adds one un-timed pass per Postgres variant under ``trace_sql.py``
that counts database round trips per unit of work (timings from that pass are ignored).

Every raw JSON line (plus ``variant``, ``run``, ``driver_wall_s``) is appended to the
JSONL file (``bench/results/`` is git-ignored); at the end the medians over runs are
printed as a ratio table: durakit vs the floor and durakit vs the reference.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DEFAULT_REFERENCE_DIR = os.path.normpath(os.path.join(REPO, "..", "shared", "reference-bench"))


@dataclass(frozen=True)
class Variant:
    label: str  # e.g. "b/durakit-pg"
    workload: str  # floor, a, b, e
    engine: str  # floor-pg, floor-sqlite, durakit-pg, durakit-sqlite, reference
    script: str
    url: str
    python: str
    args: list[str] = field(default_factory=list)

    @property
    def postgres(self) -> bool:
        return not self.url.startswith("sqlite:")


SCRIPTS = {"floor": "pg_floor.py", "a": "seq_workflows.py", "b": "step_overhead.py"}
SCRIPTS["e"] = "events_messages.py"
NAMES = {"floor": "floor", "a": "seq", "b": "step", "e": "events"}


def plan(opts: argparse.Namespace, sqlite_dir: str) -> list[Variant]:
    out: list[Variant] = []
    me = sys.executable
    for w in opts.only:
        script = SCRIPTS[w]
        name = NAMES[w]
        engine = "floor" if w == "floor" else "durakit"
        out.append(
            Variant(
                f"{w}/{engine}-pg",
                w,
                f"{engine}-pg",
                os.path.join(HERE, script),
                f"{opts.base_url}/dk_bench_{name}",
                me,
            )
        )
        if not opts.no_sqlite:
            out.append(
                Variant(
                    f"{w}/{engine}-sqlite",
                    w,
                    f"{engine}-sqlite",
                    os.path.join(HERE, script),
                    f"sqlite:///{os.path.join(sqlite_dir, name + '.db')}",
                    me,
                )
            )
        if opts.reference_python and w != "floor":
            out.append(
                Variant(
                    f"{w}/reference",
                    w,
                    "reference",
                    os.path.join(opts.reference_dir, script),
                    f"{opts.base_url}/ref_{name}",
                    opts.reference_python,
                )
            )
    return out


TRANSIENT = (
    "too many clients",
    "Connection refused",
    "the database system is starting up",
    "the database system is shutting down",
    "terminating connection due to administrator command",
)


def busy_cores(window_s: float = 1.0) -> float:
    """Busy CPU cores of the whole machine over ``window_s`` (from /proc/stat)."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            vals = [int(x) for x in f.readline().split()[1:9]]
        return sum(vals), vals[3] + vals[4]  # total, idle + iowait

    t0, i0 = sample()
    time.sleep(window_s)
    t1, i1 = sample()
    ticks = os.sysconf("SC_CLK_TCK")
    return ((t1 - t0) - (i1 - i0)) / ticks / window_s


def wait_quiet(limit: float, max_wait_s: float) -> float:
    """Wait until other load stays below ``limit`` busy cores (at most ``max_wait_s``)."""
    deadline = time.monotonic() + max_wait_s
    while True:
        busy = busy_cores()
        if busy < limit or time.monotonic() > deadline:
            return busy
        sys.stderr.write(f"  waiting for a quieter machine ({busy:.2f} busy cores)\n")
        time.sleep(2.0)


def run_one(v: Variant, trace: bool = False, attempts: int = 5) -> dict[str, Any]:
    """Run one script; retried (after a pause) when Postgres was out of connection slots
    or restarting, which on a shared host means someone else's tests, not a failure of
    the benchmarked engine."""
    for attempt in range(1, attempts + 1):
        rec = _run_once(v, trace)
        error = rec.get("error", "")
        if not any(m in error for m in TRANSIENT) or attempt == attempts:
            return rec
        sys.stderr.write(f"  {v.label}: Postgres unavailable, retrying in 15 s\n")
        time.sleep(15.0)
    raise AssertionError("unreachable")


def _run_once(v: Variant, trace: bool) -> dict[str, Any]:
    cmd = [v.python]
    if trace:
        cmd.append(os.path.join(HERE, "trace_sql.py"))
    cmd += [v.script, v.url, *v.args]
    t0 = time.perf_counter()
    proc = subprocess.run(
        cmd,
        cwd=os.path.dirname(v.script),
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    wall = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or len(lines) != 1:
        sys.stderr.write(
            f"{v.label} FAILED rc={proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}\n"
        )
        return {"workload": v.workload, "error": proc.stderr[-2000:], "rc": proc.returncode}
    rec: dict[str, Any] = json.loads(lines[0])
    rec["driver_wall_s"] = round(wall, 3)
    return rec


# -- summary --------------------------------------------------------------------------

# (workload, metric key, label, unit, lower is better)
HEADLINES = [
    ("floor", "us_per_commit_1row", "1-row INSERT+COMMIT", "µs"),
    ("a", "latency_median_ms", "3-step workflow, median latency", "ms"),
    ("a", "workflows_per_s", "3-step workflows per second", "/s"),
    ("b", "us_per_step_inner", "per step (1000-step workflow)", "µs"),
    ("b", "step_median_us", "per step, median", "µs"),
    ("e", "msg_one_way_median_ms", "send→recv one way, median", "ms"),
    ("e", "ev_one_way_median_ms", "set_event→get_event one way, median", "ms"),
]
COUNTS = [
    ("a", "write_xacts_per_workflow", "write transactions per workflow"),
    ("b", "write_xacts_per_step", "write transactions per step"),
    ("e", "msg_write_xacts_per_round", "write transactions per message round"),
    ("e", "ev_write_xacts_per_round", "write transactions per event round"),
]
# Per-unit divisors for the round-trip pass: (metric prefix, units key in metrics).
ROUND_TRIP_UNITS = {
    "a": [("cpu", "n", "per workflow")],
    "b": [("cpu", "steps", "per step")],
    "e": [("msg_cpu", "rounds", "per message round"), ("ev_cpu", "rounds", "per event round")],
}
TARGETS = {  # workload -> (description, check on (durakit value, floor value))
    "a": "≤ 6 x floor",
    "b": "≤ 1.3 x floor",
    "e": "≤ 1.5 ms",
}


def medians(recs: list[dict[str, Any]]) -> dict[str, float]:
    values: defaultdict[str, list[float]] = defaultdict(list)
    for r in recs:
        for k, v in r.get("metrics", {}).items():
            if isinstance(v, int | float) and not isinstance(v, bool):
                values[k].append(float(v))
    return {k: statistics.median(v) for k, v in values.items()}


def fmt(x: float | None) -> str:
    if x is None:
        return "—"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def target_met(workload: str, key: str, value: float, floor: float | None) -> str:
    if workload == "a" and key == "latency_median_ms" and floor:
        return "yes" if value * 1000 <= 6 * floor else "NO"
    if workload == "b" and key == "us_per_step_inner" and floor:
        return "yes" if value <= 1.3 * floor else "NO"
    if workload == "e":
        return "yes" if value <= 1.5 else "NO"
    return ""


def summarize(by_label: dict[str, list[dict[str, Any]]], traces: dict[str, dict[str, Any]]) -> str:
    med = {label: medians(recs) for label, recs in by_label.items() if recs}
    runs = {label: len(recs) for label, recs in by_label.items()}
    floor_pg = med.get("floor/floor-pg", {}).get("us_per_commit_1row")
    floor_sq = med.get("floor/floor-sqlite", {}).get("us_per_commit_1row")
    out: list[str] = []
    n_runs = max(runs.values(), default=0)
    out.append(f"medians over {n_runs} run(s); floor = 1-row INSERT+COMMIT of the same store")
    busy = [r["busy_cores_before"] for rs in by_label.values() for r in rs]
    busy = [b for b in busy if b is not None]
    if busy:
        out.append(
            f"other load before each script: median {statistics.median(busy):.2f} busy cores "
            f"(max {max(busy):.2f})"
        )
    out.append("")
    out.append(
        "| workload | metric | durakit Postgres | x PG floor | durakit SQLite | "
        "x SQLite floor | reference | ref x PG floor | durakit PG vs reference | target |"
    )
    out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")

    def ratio_to_floor(value: float | None, unit: str, floor: float | None) -> float | None:
        if value is None or not floor or unit == "/s":
            return None
        us = value * 1000 if unit == "ms" else value
        return us / floor

    for w, key, label, unit in HEADLINES:
        if w == "floor":
            pg, sq, ref = floor_pg, floor_sq, None
        else:
            pg = med.get(f"{w}/durakit-pg", {}).get(key)
            sq = med.get(f"{w}/durakit-sqlite", {}).get(key)
            ref = med.get(f"{w}/reference", {}).get(key)
        if pg is None and sq is None:
            continue
        vs_ref: str = "—"
        if pg and ref:
            speedup = pg / ref if unit == "/s" else ref / pg
            vs_ref = f"{speedup:.1f}x faster" if speedup >= 1 else f"{1 / speedup:.1f}x slower"
        met = ""
        if w in TARGETS and pg is not None:
            verdict = target_met(w, key, pg, floor_pg)
            met = f"{TARGETS[w]}: {verdict}" if verdict else ""
        out.append(
            f"| {w} | {label}, {unit} | {fmt(pg)} | {fmt(ratio_to_floor(pg, unit, floor_pg))} | "
            f"{fmt(sq)} | {fmt(ratio_to_floor(sq, unit, floor_sq))} | {fmt(ref)} | "
            f"{fmt(ratio_to_floor(ref, unit, floor_pg))} | {vs_ref} | {met} |"
        )
    out.append("")
    out.append("| workload | count (Postgres, exact) | durakit | reference |")
    out.append("|---|---|---:|---:|")
    for w, key, label in COUNTS:
        pg = med.get(f"{w}/durakit-pg", {}).get(key)
        ref = med.get(f"{w}/reference", {}).get(key)
        if pg is not None or ref is not None:
            out.append(f"| {w} | {label} | {fmt(pg)} | {fmt(ref)} |")
    for w, units in ROUND_TRIP_UNITS.items():
        for prefix, units_key, per in units:
            cells = []
            for engine in ("durakit-pg", "reference"):
                metrics = traces.get(f"{w}/{engine}", {}).get("metrics", {})
                total, n = metrics.get(f"{prefix}_round_trips"), metrics.get(units_key)
                cells.append(f"{total / n:.2f}" if total is not None and n else "—")
            if cells != ["—", "—"]:
                out.append(f"| {w} | database round trips {per} | {cells[0]} | {cells[1]} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--base-url", default="postgresql://postgres@127.0.0.1:5432")
    ap.add_argument("--reference-python")
    ap.add_argument("--reference-dir", default=DEFAULT_REFERENCE_DIR)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--only", nargs="+", default=["floor", "a", "b", "e"], choices=list(SCRIPTS))
    ap.add_argument("--no-sqlite", action="store_true")
    ap.add_argument("--round-trips", action="store_true")
    ap.add_argument("--out")
    ap.add_argument(
        "--quiet-below",
        type=float,
        metavar="CORES",
        help="before each script, wait (up to --max-wait s) until the machine's other load "
        "is below CORES busy cores; the load seen is recorded as busy_cores_before",
    )
    ap.add_argument("--max-wait", type=float, default=300.0)
    opts = ap.parse_args()
    opts.base_url = opts.base_url.rstrip("/")
    if opts.reference_python and not os.path.isdir(opts.reference_dir):
        raise SystemExit(f"reference scripts not found in {opts.reference_dir}")
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out_path = opts.out or os.path.join(HERE, "results", f"run-{stamp}.jsonl")
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)

    sqlite_dir = tempfile.mkdtemp(prefix="dk_bench_sqlite_")
    by_label: dict[str, list[dict[str, Any]]] = defaultdict(list)
    traces: dict[str, dict[str, Any]] = {}
    try:
        variants = plan(opts, sqlite_dir)
        with open(out_path, "a") as out:
            for run in range(1, opts.runs + 1):
                for v in variants:
                    busy = None
                    if opts.quiet_below is not None:
                        busy = round(wait_quiet(opts.quiet_below, opts.max_wait), 2)
                    rec = run_one(v)
                    rec.update(
                        variant=v.label, engine_label=v.engine, run=run, busy_cores_before=busy
                    )
                    out.write(json.dumps(rec) + "\n")
                    out.flush()
                    if "error" not in rec:
                        by_label[v.label].append(rec)
                    sys.stderr.write(f"[run {run}] {v.label}: {rec.get('driver_wall_s', '?')}s\n")
            if opts.round_trips:
                for v in variants:
                    if not v.postgres or v.workload == "floor":
                        continue
                    rec = run_one(v, trace=True)
                    rec.update(variant=v.label, engine_label=v.engine, run="round-trips")
                    out.write(json.dumps(rec) + "\n")
                    if "error" not in rec:
                        traces[v.label] = rec
                    sys.stderr.write(f"[round trips] {v.label}: done\n")
    finally:
        shutil.rmtree(sqlite_dir, ignore_errors=True)

    load = os.getloadavg()
    print(f"host: {platform.node()}, {os.cpu_count()} CPUs, load average {load[0]:.2f} (1 min)")
    print(f"raw results: {out_path}")
    print(summarize(by_label, traces))


if __name__ == "__main__":
    main()
