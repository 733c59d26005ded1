"""Run a benchmark script under a wall-clock sampling profiler (a diagnostic pass).

usage: python bench/profile_run.py [--interval S] [--top N] [--report FILE] SCRIPT [ARGS ...]

Workflow bodies run on their own threads, which cProfile does not see and which spend
much of their time blocked in the database driver, which CPU profilers do not count.
This profiler samples every thread's Python stack (``sys._current_frames()``) every
``--interval`` seconds, only while one of the script's ``common.CpuMeter`` windows is
open (the measured part), and reports per thread group (thread names with their IDs
blanked, e.g. ``durakit-*``):

* inclusive: share of samples in which a function is anywhere on the stack,
* self: share of samples in which it is the innermost Python frame (a function blocked
  in C, e.g. a socket wait inside the driver, is charged to its Python caller).

Shares are of wall time, so "blocked waiting for Postgres" and "running Python" can be
told apart. The script's JSON line still goes to stdout; the report to stderr (or FILE).
The sampler costs a little CPU (it holds the GIL briefly per sample). To keep samples
from landing only when the sampled thread has released the GIL (i.e. only in I/O waits),
the interpreter's switch interval is lowered to a fifth of the sampling interval.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import runpy
import sys
import threading
import time
from collections import Counter, defaultdict
from types import FrameType
from typing import Any

_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f-]{27,}|[0-9a-f]{16,}|\d+")


def _where(frame: FrameType) -> str:
    path = frame.f_code.co_filename
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        i = path.rfind(marker)
        if i >= 0:
            path = path[i + len(marker) :]
            break
    else:
        path = os.path.basename(path)
    return f"{path}:{frame.f_code.co_name}"


class Sampler:
    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.active = 0
        self.lock = threading.Lock()
        self.samples: Counter[str] = Counter()
        self.incl: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.self_: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.me = threading.Thread(target=self._loop, name="sampler", daemon=True)
        self.me.start()

    def _loop(self) -> None:
        my_id = threading.get_ident()
        while True:
            time.sleep(self.interval)
            if not self.active:
                continue
            names = {t.ident: t.name for t in threading.enumerate()}
            for ident, frame in sys._current_frames().items():
                if ident == my_id:
                    continue
                group = _ID.sub("*", names.get(ident, "?"))
                seen: set[str] = set()
                leaf = _where(frame)
                f: FrameType | None = frame
                while f is not None:
                    seen.add(_where(f))
                    f = f.f_back
                with self.lock:
                    self.samples[group] += 1
                    self.self_[group][leaf] += 1
                    for key in seen:
                        self.incl[group][key] += 1

    def report(self, top: int, threads: str = "") -> str:
        lines: list[str] = []
        with self.lock:
            for group, n in self.samples.most_common():
                if not re.search(threads, group):
                    continue
                lines.append(f"\n=== thread group {group!r}: {n} samples ===")
                for title, table in (("inclusive", self.incl[group]), ("self", self.self_[group])):
                    lines.append(f"--- {title} (% of this group's wall time) ---")
                    for key, c in table.most_common(top):
                        lines.append(f"{100.0 * c / n:6.1f}%  {key}")
        return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--interval", type=float, default=0.0005)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--report")
    ap.add_argument("--threads", default="", help="only thread groups matching this regex")
    ap.add_argument("script")
    ap.add_argument("args", nargs=argparse.REMAINDER)
    opts = ap.parse_args()
    script = os.path.abspath(opts.script)
    sys.argv = [script, *opts.args]
    sys.path.insert(0, os.path.dirname(script))
    sys.setswitchinterval(max(opts.interval / 5, 1e-5))
    sampler = Sampler(opts.interval)

    common: Any = importlib.import_module("common")  # the script's own, via sys.path[0]

    base = common.CpuMeter

    class SampledCpuMeter(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            sampler.active += 1

        def stop(self, prefix: str = "cpu") -> dict[str, Any]:
            sampler.active -= 1
            out: dict[str, Any] = super().stop(prefix=prefix)
            return out

    common.CpuMeter = SampledCpuMeter
    try:
        runpy.run_path(script, run_name="__main__")
    finally:
        text = sampler.report(opts.top, opts.threads)
        if opts.report:
            with open(opts.report, "w") as f:
                f.write(text)
        else:
            sys.stderr.write(text)


if __name__ == "__main__":
    main()
