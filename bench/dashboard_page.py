"""Workload dashboard_page: the dashboard and the admin API on a big database.

Fills a scratch database with WORKFLOWS (default 100,000) finished and pending workflow
rows (bulk COPY into durakit's own table, after durakit migrated it: 10 workflow names;
70 % SUCCESS, 15 % ERROR, 10 % PENDING, 5 % CANCELLED; created over 30 days; small JSON
inputs and outputs), runs ``ANALYZE``, then starts ``python -m durakit dashboard`` on it
as its own process (what an operator runs) and measures, over HTTP/1.1 from this process:

* ``first_list_ms``: the first list request the fresh server answers (the dashboard's
  own body: newest first, 50 a page, without inputs and outputs);
* ``page_html_median_ms``: ``GET /`` (the page), median of REPEATS;
* ``first_page_median_ms``: what a browser fetches before it can draw the first page,
  one after another on one connection: the page, app.js, app.css, /healthz and the
  list request; median of REPEATS;
* ``list_*_median_ms`` / ``_p99_ms``: list requests with the filters the dashboard
  sends (none, status, name, a status and a time window, page 100), REPEATS each;
* ``list_rps``: list requests per second from CLIENTS threads, each with its own
  keep-alive connection, for RPS_SECONDS (default page, newest first);
* ``browser_first_rows_ms`` (with ``--browser`` and Chromium at /usr/bin/chromium):
  navigation start to the first page's rows drawn, in Chromium driven by Playwright,
  median of 5 cold loads (a new browser context each), and ``browser_list_answered_ms``:
  navigation start to the list request's answer received.

Prints one JSON line (see common.py)::

    python bench/dashboard_page.py postgresql://postgres@127.0.0.1:5432/dk_bench_dashboard --browser
"""

from __future__ import annotations

import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
from common import base_args, emit, is_sqlite, lat_summary, reset_database

NAMES = [f"shop.flow_{i}" for i in range(10)]
STATUSES = ["SUCCESS"] * 14 + ["ERROR"] * 3 + ["PENDING"] * 2 + ["CANCELLED"]
DAY_MS = 86_400_000
LIST_BODY: dict[str, Any] = {
    "limit": 50,
    "offset": 0,
    "sort_desc": True,
    "load_input": False,
    "load_output": False,
}


def fill(url: str, count: int, seed: int = 7) -> None:
    """Migrate with durakit, then COPY ``count`` workflow rows in and ANALYZE."""
    from durakit.backends.urls import open_store

    store = open_store(url, "durakit")
    store.migrate()
    store.close()
    rng = random.Random(seed)
    now = int(time.time() * 1000)
    columns = (
        "workflow_id, name, status, input, output, error, executor_id, application_version,"
        " application_id, created_at, updated_at, attempts, priority, started_at"
    )
    with psycopg.connect(url) as conn:
        with conn.cursor().copy(f"COPY durakit.workflows ({columns}) FROM STDIN") as copy:
            for i in range(count):
                status = rng.choice(STATUSES)
                created = now - rng.randrange(30 * DAY_MS)
                output = '{"v":1,"d":"done"}' if status == "SUCCESS" else None
                error = (
                    '{"v":1,"d":{"type":"builtins.RuntimeError","message":"boom","args":["boom"]}}'
                    if status == "ERROR"
                    else None
                )
                copy.write_row(
                    (
                        f"wf-{i:07d}",
                        rng.choice(NAMES),
                        status,
                        f'{{"v":1,"d":{{"order":{i}}}}}',
                        output,
                        error,
                        f"executor-{i % 4}",
                        "v1",
                        "shop",
                        created,
                        created + rng.randrange(5000),
                        1,
                        0,
                        created,
                    )
                )
        conn.execute("ANALYZE durakit.workflows")
        conn.commit()


class Http:
    """One keep-alive HTTP/1.1 connection to the server."""

    def __init__(self, base: str) -> None:
        parts = urlsplit(base)
        self.conn = http.client.HTTPConnection(
            parts.hostname or "127.0.0.1", parts.port, timeout=60
        )

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        self.conn.request(method, path, body=data, headers=headers)
        response = self.conn.getresponse()
        payload = response.read()
        if response.status != 200:
            raise SystemExit(f"{method} {path} answered {response.status}: {payload[:200]!r}")
        return response.status, payload

    def timed(self, method: str, path: str, body: Any = None) -> int:
        start = time.perf_counter_ns()
        self.call(method, path, body)
        return time.perf_counter_ns() - start


def start_dashboard(url: str) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DURAKIT_")}
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "durakit", "dashboard", "--db", url, "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if " on " not in line:
        proc.kill()
        raise SystemExit(f"the dashboard did not start: {line!r}")
    return proc, line.split(" on ")[1].split()[0]


def list_rps(base: str, clients: int, seconds: float) -> float:
    done = [0] * clients
    stop = time.perf_counter() + seconds

    def worker(k: int) -> None:
        client = Http(base)
        while time.perf_counter() < stop:
            client.call("POST", "/workflows", LIST_BODY)
            done[k] += 1

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.perf_counter() - start)


def browser_first_rows(base: str, loads: int = 5) -> dict[str, float]:
    chromium = Path("/usr/bin/chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return {}
    if not chromium.exists():
        return {}
    times: list[float] = []
    lists: list[float] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium), args=["--no-sandbox"])
        for _ in range(loads):
            context = browser.new_context()  # cold: no cache
            page = context.new_page()
            page.goto(base + "/", wait_until="commit")
            page.wait_for_function("document.querySelectorAll('#workflows tbody tr').length >= 50")
            # ms since this navigation started: rows drawn, and the list answer received.
            times.append(page.evaluate("performance.now()"))
            lists.append(
                page.evaluate(
                    "performance.getEntriesByType('resource')"
                    ".filter(e => e.name.endsWith('/workflows'))[0].responseEnd"
                )
            )
            context.close()
        browser.close()
    return {
        "browser_first_rows_ms": round(statistics.median(times), 1),
        "browser_list_answered_ms": round(statistics.median(lists), 1),
    }


def main() -> None:
    p = base_args(__doc__)
    p.add_argument("--workflows", type=int, default=100_000)
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--rps-seconds", type=float, default=5.0)
    p.add_argument("--browser", action="store_true", help="also time the page in Chromium")
    args = p.parse_args()
    if is_sqlite(args.db_url):
        raise SystemExit("this workload is defined on Postgres")
    if not args.no_reset:
        reset_database(args.db_url)
    t0 = time.perf_counter()
    fill(args.db_url, args.workflows)
    fill_s = time.perf_counter() - t0
    print(f"filled {args.workflows} workflows in {fill_s:.1f} s", file=sys.stderr)

    proc, base = start_dashboard(args.db_url)
    try:
        client = Http(base)
        first_list_ns = client.timed("POST", "/workflows", LIST_BODY)
        html = [client.timed("GET", "/") for _ in range(args.repeats)]
        first_page = []
        for _ in range(args.repeats):
            start = time.perf_counter_ns()
            for path in ("/", "/static/app.js", "/static/app.css", "/healthz"):
                client.call("GET", path)
            client.call("POST", "/workflows", LIST_BODY)
            first_page.append(time.perf_counter_ns() - start)
        newest = int(time.time() * 1000)
        window = {
            "start_time": _iso(newest - 2 * DAY_MS),
            "end_time": _iso(newest),
        }
        variants: dict[str, dict[str, Any]] = {
            "list_default": LIST_BODY,
            "list_status": {**LIST_BODY, "status": "ERROR"},
            "list_name": {**LIST_BODY, "name": NAMES[3]},
            "list_status_window": {**LIST_BODY, "status": "PENDING", **window},
            "list_page100": {**LIST_BODY, "offset": 50 * 99},
        }
        metrics: dict[str, Any] = {
            "first_list_ms": round(first_list_ns / 1e6, 2),
            **lat_summary(html, "page_html"),
            **lat_summary(first_page, "first_page"),
        }
        for name, body in variants.items():
            ns = [client.timed("POST", "/workflows", body) for _ in range(args.repeats)]
            summary = lat_summary(ns, name)
            metrics[f"{name}_median_ms"] = summary[f"{name}_median_ms"]
            metrics[f"{name}_p99_ms"] = summary[f"{name}_p99_ms"]
        metrics["list_rps"] = round(list_rps(base, args.clients, args.rps_seconds), 1)
        if args.browser:
            metrics.update(browser_first_rows(base))
    finally:
        proc.terminate()
        proc.wait(30)
    emit(
        "dashboard_page",
        {
            "workflows": args.workflows,
            "repeats": args.repeats,
            "clients": args.clients,
            "rps_seconds": args.rps_seconds,
            "page_size": LIST_BODY["limit"],
        },
        metrics,
        args.db_url,
        fill_s=round(fill_s, 1),
    )


def _iso(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


if __name__ == "__main__":
    main()
