"""Restart PostgreSQL twice while hundreds of workflows run: everything finishes, once.

A child process (tests/pg_restart_worker.py) starts WORKFLOWS workflows of STEPS steps:
FIRST_WAVE at once, the rest trickled in, so that starts as well as checkpoints meet the
outage. Each step appends ``"<workflow> <step> <pid> <nonce>"`` (fsync'd) to a side-effect
file and returns ``"<step>/<nonce>"``. While they run, the test restarts the server
twice: once with ``pg_ctlcluster ... restart`` (fast shutdown: sessions terminated,
open transactions rolled back) and once with an immediate stop (no shutdown checkpoint:
backends die where they stand, a commit can be durable with its reply lost, the server
runs crash recovery), a pause, and a start.

The child has one process and is never killed, so every step function must run exactly
once: a step re-runs only if its checkpoint was not written, and a checkpoint whose
reply was lost is recognised by the store on retry rather than reported as someone
else's. So: every workflow SUCCESS with the outputs of its single step executions, no
PENDING row, one side-effect line per step, nothing logged at ERROR, and the client
(another pool, another LISTEN connection) sees the same results.

The server it restarts is its own: a throwaway cluster made with Debian's
``pg_createcluster`` (first PostgreSQL version in /etc/postgresql, trust authentication)
on a free port of 127.0.0.1, dropped at the end. The shared server on 5432 that every
other test uses is never touched. Needs root or the postgres user; skips otherwise,
failing under CI=true.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import socket
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import psycopg
import pytest

import durakit as dk
from tests.pg_restart_worker import workflow_id
from tests.proc_support import start_worker

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

WORKFLOWS = 240
FIRST_WAVE = 200
STEPS = 12
STEP_SECONDS = 0.4  # mean; a workflow is ~5 s of steps, the restarts stall it more
TRICKLE_SECONDS = 0.1  # the last 40 starts are spread over 4 s, across both restarts
FIRST_RESTART_AT = 0.1  # fraction of all steps done when the first restart begins
PAUSE_SECONDS = 0.3  # between the server being back and the second restart
DOWN_SECONDS = 1.5  # the pause between the immediate stop and the start
CHILD_TIMEOUT = 90.0

CLUSTER_DIR = Path("/etc/postgresql")
PROBE_S = 0.05


# -- controlling the server -------------------------------------------------------------------
@attrs.frozen
class Cluster:
    """This test's own cluster, driven by pg_ctlcluster."""

    url: str
    version: str
    name: str

    problems: list[str] = attrs.field(factory=list)

    def ctl(self, *args: str) -> float:
        """Run ``pg_ctlcluster <version> <name> <args>``; how long it took. A failure is
        noted in ``problems`` (the server is brought back up at the end in any case)."""
        began = time.monotonic()
        done = subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", self.version, self.name, *args],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            self.problems.append(f"pg_ctlcluster {' '.join(args)}: {done.stderr.strip()}")
        return time.monotonic() - began

    def is_up(self) -> bool:
        try:
            with psycopg.connect(self.url, connect_timeout=2):
                return True
        except psycopg.Error:
            return False

    def wait_up(self, timeout: float = 60.0) -> float:
        """Wait until a connection succeeds; seconds waited."""
        began = time.monotonic()
        while not self.is_up():
            if time.monotonic() - began > timeout:
                pytest.fail(f"Postgres did not come back within {timeout} s")
            time.sleep(0.1)
        return time.monotonic() - began

    def ensure_up(self) -> None:
        """Start the server if a restart left it down (always called on the way out)."""
        if self.is_up():
            return
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", self.version, self.name, "start"],
            check=False,
            capture_output=True,
            timeout=120,
        )
        self.wait_up()


class Prober:
    """Connects every PROBE_S seconds from a thread; records when the server was down."""

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.outages: list[tuple[float, float]] = []  # (first failure, next success)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        down: float | None = None
        while not self._stop.wait(PROBE_S):
            now = time.monotonic()
            if not self._cluster.is_up():
                down = now if down is None else down
            elif down is not None:
                self.outages.append((down, now))
                down = None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def private_cluster() -> Iterator[Cluster]:
    """A new cluster of its own on a free port, dropped on exit; or skip (fail under
    CI=true) saying why there can be none."""
    why = None
    versions = sorted(p.name for p in CLUSTER_DIR.iterdir()) if CLUSTER_DIR.is_dir() else []
    if shutil.which("pg_createcluster") is None or not versions:
        why = "pg_createcluster and a PostgreSQL version in /etc/postgresql are needed"
    elif os.geteuid() != 0 and os.environ.get("USER") != "postgres":
        why = "creating a cluster needs root or the postgres user"
    if why is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but cannot run the restart test: {why}")
        pytest.skip(why)
    version, name, port = versions[0], f"durakit_restart_{os.getpid()}", _free_port()
    created = subprocess.run(
        ["pg_createcluster", version, name, "-p", str(port), "--start", "--", "--auth=trust"],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    try:
        if created.returncode != 0:
            pytest.fail(f"pg_createcluster failed: {created.stderr.strip()}")
        cluster = Cluster(
            url=f"postgresql://postgres@127.0.0.1:{port}/postgres", version=version, name=name
        )
        cluster.wait_up()
        yield cluster
    finally:
        subprocess.run(
            ["pg_dropcluster", "--stop", version, name],
            check=False,
            capture_output=True,
            timeout=120,
        )


# -- reading what happened ----------------------------------------------------------------------
Lines = dict[tuple[str, int], list[tuple[int, str]]]  # (workflow, step) -> [(pid, nonce)]


def read_effects(path: Path) -> Lines:
    lines: Lines = defaultdict(list)
    text = path.read_text() if path.exists() else ""
    for number, line in enumerate(text.splitlines(), 1):
        parts = line.split(" ")
        assert len(parts) == 4, f"side-effect line {number} is torn: {line!r}"
        lines[parts[0], int(parts[1])].append((int(parts[2]), parts[3]))
    return lines


def unfinished(lines: Lines) -> int:
    """Workflows whose last step has not run yet (started or not)."""
    return sum((workflow_id(i), STEPS - 1) not in lines for i in range(WORKFLOWS))


def wait_for_steps(path: Path, child: subprocess.Popen[bytes], count: int) -> Lines:
    deadline = time.monotonic() + CHILD_TIMEOUT
    while time.monotonic() < deadline:
        lines = read_effects(path)
        if sum(len(v) for v in lines.values()) >= count:
            return lines
        if child.poll() is not None:
            pytest.fail(f"the worker exited early with {child.returncode}")
        time.sleep(0.02)
    pytest.fail(f"fewer than {count} steps ran in {CHILD_TIMEOUT} s")


def read_line(child: subprocess.Popen[bytes], word: str, log: Path, timeout: float) -> str:
    """The rest of the worker's next stdout line, which must start with ``word``."""
    assert child.stdout is not None
    ready, _, _ = select.select([child.stdout], [], [], timeout)
    line = child.stdout.readline().decode() if ready else ""
    head, _, rest = line.strip().partition(" ")
    if head != word:
        pytest.fail(
            f"expected {word!r} from the worker, got {line[:200]!r} (exit code "
            f"{child.poll()}); its log ends:\n{log.read_text()[-5000:]}"
        )
    return rest


@attrs.frozen
class Row:
    status: dk.StatusType
    output: Any
    attempts: int
    steps: list[tuple[int, str, Any]]


def read_database(url: str, schema: str) -> dict[str, Row]:
    with dk.Client(url, schema) as client:
        return {
            r.workflow_id: Row(
                r.status,
                r.output,
                r.attempts,
                [(s.step_id, s.name, s.output) for s in client.get_workflow_steps(r.workflow_id)],
            )
            for r in client.list_workflows(load_input=False)
        }


# -- the test -------------------------------------------------------------------------------------
def test_workflows_survive_postgres_restarts(tmp_path: Path) -> None:
    effects = tmp_path / "effects.txt"
    log_path = tmp_path / "worker.log"
    total_steps = WORKFLOWS * STEPS
    restarts: list[str] = []
    began = time.monotonic()
    schema = "durakit"
    with private_cluster() as cluster, log_path.open("wb") as log:
        url = cluster.url
        child = start_worker(
            "pg_restart_worker",
            [
                f"--db={url}",
                f"--schema={schema}",
                f"--effects={effects}",
                f"--workflows={WORKFLOWS}",
                f"--first-wave={FIRST_WAVE}",
                f"--steps={STEPS}",
                f"--step-seconds={STEP_SECONDS}",
                f"--trickle-seconds={TRICKLE_SECONDS}",
            ],
            stderr=log,
        )
        try:
            read_line(child, "launched", log_path, 30.0)
            read_line(child, "started", log_path, 30.0)
            prober = Prober(cluster)
            prober.start()
            try:
                lines = wait_for_steps(effects, child, int(total_steps * FIRST_RESTART_AT))
                running = [unfinished(lines)]
                took = cluster.ctl("restart")  # fast shutdown, then start
                restarts.append(f"restart: {took:.1f} s")

                time.sleep(PAUSE_SECONDS)
                running.append(unfinished(read_effects(effects)))
                took = cluster.ctl("stop", "--mode=immediate")
                time.sleep(DOWN_SECONDS)
                took += DOWN_SECONDS + cluster.ctl("start")
                restarts.append(f"immediate stop, pause, start: {took:.1f} s")
            finally:
                cluster.ensure_up()
                prober.stop()
            try:
                summary = json.loads(read_line(child, "summary", log_path, CHILD_TIMEOUT))
            except pytest.fail.Exception as exc:
                stuck = {w: r.status.value for w, r in read_database(url, schema).items()}
                stuck = {w: v for w, v in stuck.items() if v != dk.StatusType.SUCCESS.value}
                pytest.fail(f"{exc}\nnot SUCCESS in the database: {stuck}")
            code = child.wait(30.0)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            if child.stdout is not None:
                child.stdout.close()
        rows = read_database(url, schema)
    assert code == 0, f"the worker exited with {code}:\n{log_path.read_text()[-5000:]}"
    # Both restarts hit the run while at least FIRST_WAVE workflows were unfinished.
    assert min(running) >= FIRST_WAVE, f"workflows unfinished at the restarts: {running}"
    assert len(prober.outages) >= 2, f"the server was never seen down: {prober.outages}"

    ids = [workflow_id(i) for i in range(WORKFLOWS)]
    lines = read_effects(effects)
    assert not summary["failures"], summary["failures"]
    assert not summary["observer_failures"], summary["observer_failures"]
    assert not summary["log_errors"], "\n".join(summary["log_errors"])
    assert sorted(rows) == ids, "a workflow is missing, or one too many was created"
    stranded = [w for w, r in rows.items() if r.status is not dk.StatusType.SUCCESS]
    assert not stranded, f"not SUCCESS: {[(w, rows[w].status) for w in stranded]}"
    for wid in ids:
        expected = []
        for n in range(STEPS):
            runs = lines.get((wid, n), [])
            assert len(runs) == 1, f"{wid}: step {n} ran {len(runs)} times: {runs}"
            expected.append(f"{n}/{runs[0][1]}")
        row = rows[wid]
        assert row.steps == [(n, f"step_{n}", expected[n]) for n in range(STEPS)], wid
        assert row.output == expected, f"{wid}: recorded output is not its one run's"
        assert summary["results"][wid] == expected, f"{wid}: the engine returned another result"
        assert summary["observed"][wid] == expected, f"{wid}: the client saw another result"
        assert row.attempts == 1, f"{wid} was recovered, yet its process never died"
    assert sum(len(v) for v in lines.values()) == total_steps
    assert {pid for runs in lines.values() for pid, _ in runs} == {child.pid}

    # The restarts must have hurt: calls failed and were retried, and some stalled.
    counts = summary["log_counts"]
    retried = counts.get("durakit.backends.postgres_pool DEBUG", 0)
    assert retried > 0, f"no store call was retried; the restarts missed the run: {counts}"
    # Warnings: an outage is logged when it starts and ends, by each of the worker's two
    # stores (the engine's and the client's), not per retried call.
    warned = counts.get("durakit.backends.health WARNING", 0)
    assert warned <= 2 * 2 * len(prober.outages), f"more than down/up per outage: {counts}"
    assert not any(k.endswith("WARNING") and "health" not in k for k in counts), counts
    stall = summary["checkpoint_latency"]
    outages = ", ".join(f"{b - a:.2f} s" for a, b in prober.outages)
    print(
        f"\nrestart test: {WORKFLOWS} workflows x {STEPS} steps, "
        f"{time.monotonic() - began:.1f} s in all, worker run {summary['run_seconds']:.1f} s; "
        + "; ".join(restarts)
        + f"; unfinished workflows at the restarts {running}; server unreachable {outages}"
        + "".join(f"\n  {problem}" for problem in cluster.problems)
        + f"\n  checkpoint latency {stall}\n  start latency {summary['start_latency']}"
        + f"\n  client wake-up latency {summary['client_wake_latency']}"
        + f"\n  log records {counts}"
    )
