"""Run a benchmark script with every database round trip counted (a diagnostic pass).

usage: python bench/trace_sql.py SCRIPT [SCRIPT ARGS ...]

Works for durakit's scripts and for the reference's (it needs only psycopg 3 and the
script's own ``common.py``), under whichever interpreter runs it. It:

* counts psycopg 3 round trips: each ``Cursor.execute`` (one statement; also what an
  ORM such as SQLAlchemy calls), each internal command (``BEGIN``, ``COMMIT``,
  ``ROLLBACK``, ``SET``), and each separate server-side ``PREPARE``;
* counts SQLite statements and ``COMMIT``s (through ``sqlite3.connect``'s trace hook);
* wraps the script's ``common.CpuMeter`` so that every measured window also reports
  ``<prefix>_round_trips`` (total), ``<prefix>_round_trips_by_sql`` (per statement, the
  first 90 characters with whitespace collapsed) and, on SQLite,
  ``<prefix>_sqlite_statements`` / ``<prefix>_sqlite_commits``. The meter's own probe
  queries are not counted.

The hooks add a few microseconds per statement: use this pass for counting, not timing.
"""

from __future__ import annotations

import os
import re
import runpy
import sqlite3
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

_lock = threading.Lock()
_counts: Counter[str] = Counter()
_sqlite: Counter[str] = Counter()
_WS = re.compile(r"\s+")


def _summary(query: object) -> str:
    if isinstance(query, bytes):
        text = query.decode("utf-8", "replace")
    elif isinstance(query, str):
        text = query
    else:  # psycopg.sql.Composable: its repr is good enough to tell statements apart
        text = repr(query)
    return _WS.sub(" ", text).strip()[:90]


def _count(key: str) -> None:
    with _lock:
        _counts[key] += 1


def _wrap_gen(original: Callable[..., Iterator[Any]], label: Callable[..., str]) -> Any:
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        _count(label(self, *args, **kwargs))
        return original(self, *args, **kwargs)

    return wrapper


def install_psycopg_hooks() -> None:
    from psycopg import _connection_base, _cursor_base

    cur = _cursor_base.BaseCursor
    cur._execute_gen = _wrap_gen(  # type: ignore[method-assign]
        cur._execute_gen, lambda _self, query, *_a, **_k: _summary(query)
    )
    for name in ("_executemany_gen_pipeline", "_executemany_gen_no_pipeline"):
        if hasattr(cur, name):
            setattr(
                cur,
                name,
                _wrap_gen(getattr(cur, name), lambda _s, q, *_a, **_k: f"many: {_summary(q)}"),
            )
    send_prepare = cur._send_prepare

    def counted_prepare(self: Any, *args: Any, **kwargs: Any) -> Any:
        _count("PREPARE (first use on a connection)")
        return send_prepare(self, *args, **kwargs)

    cur._send_prepare = counted_prepare  # type: ignore[method-assign]
    conn = _connection_base.BaseConnection
    conn._exec_command = _wrap_gen(  # type: ignore[method-assign]
        conn._exec_command, lambda _self, command, *_a, **_k: _summary(command)
    )


def install_sqlite_hooks() -> None:
    connect = sqlite3.connect

    def trace(statement: str) -> None:
        word = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else ""
        with _lock:
            _sqlite["statements"] += 1
            if word in ("COMMIT", "END"):
                _sqlite["commits"] += 1

    def traced_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn: sqlite3.Connection = connect(*args, **kwargs)
        conn.set_trace_callback(trace)
        return conn

    sqlite3.connect = traced_connect  # type: ignore[assignment]


def snapshot() -> tuple[Counter[str], Counter[str]]:
    with _lock:
        return Counter(_counts), Counter(_sqlite)


def wrap_cpu_meter(common: Any) -> None:
    base = common.CpuMeter

    class CountingCpuMeter(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._rt0, self._sq0 = snapshot()

        def stop(self, prefix: str = "cpu") -> dict[str, Any]:
            rt1, sq1 = snapshot()
            out: dict[str, Any] = super().stop(prefix=prefix)
            rt = rt1 - self._rt0
            out[f"{prefix}_round_trips"] = sum(rt.values())
            out[f"{prefix}_round_trips_by_sql"] = dict(rt.most_common(25))
            sq = sq1 - self._sq0
            if sq:
                out[f"{prefix}_sqlite_statements"] = sq["statements"]
                out[f"{prefix}_sqlite_commits"] = sq["commits"]
            return out

    common.CpuMeter = CountingCpuMeter


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    script = os.path.abspath(sys.argv[1])
    sys.argv = [script, *sys.argv[2:]]
    sys.path.insert(0, os.path.dirname(script))
    install_psycopg_hooks()
    install_sqlite_hooks()
    import common  # the script's own helpers, found through sys.path[0]

    wrap_cpu_meter(common)
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
