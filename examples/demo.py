"""durakit demo: a workflow survives its worker being killed halfway through.

    python examples/demo.py

The demo starts a worker process (this file, run with the argument ``worker``) that runs
a four-step checkout workflow on the embedded SQLite store. As soon as step 2 is
checkpointed, the demo kills the worker with SIGKILL -- no clean-up, no ``finally`` --
and starts a new one. The new worker recovers the workflow: steps 1 and 2 return their
recorded results without running, step 3 (cut off by the kill) runs again, step 4 runs,
and the order is done. Every step writes to a side-effect log, so the demo can show at
the end that no checkpointed step ran again: only the step in flight at the kill did,
since a step runs at least once (exactly once only from its checkpoint on).

Needs only ``pip install -e .``; the database lives in a temporary directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import attrs

import durakit as dk

WORKFLOW_ID = "order-42"
APP_VERSION = "demo-1"  # fixed, so that the restarted worker recovers the first one's work
STEPS = ("reserve_stock", "charge_card", "ship_parcel", "send_email")
SECONDS = {"reserve_stock": 0.6, "charge_card": 0.6, "ship_parcel": 2.0, "send_email": 0.6}


@attrs.frozen
class Order:
    order_id: str
    item: str
    amount_cents: int


@attrs.frozen
class Receipt:
    order_id: str
    reservation: str
    payment: str
    tracking_number: str
    email: str


ORDER = Order(order_id="42", item="espresso machine", amount_cents=24900)
Checkout = Callable[[dk.Context, Order], Receipt]


# -- the application: used by the worker, and by the parent to watch the database ----------
def make_app(
    database_url: str, log: Path, executor_id: str | None = None
) -> tuple[dk.Durakit, Checkout]:
    """The demo's engine and its checkout workflow."""
    app = dk.Durakit(
        dk.Config(
            app_name="durakit-demo",
            database_url=database_url,
            application_version=APP_VERSION,
            executor_id=executor_id,
        )
    )

    def work(name: str, result: str) -> str:
        """Pretend to call a service; log the start and the completed side effect."""
        number = STEPS.index(name) + 1
        print(f"step {number}/4 {name}: running ...", flush=True)
        _log(log, "start", name)
        time.sleep(SECONDS[name])
        _log(log, "done", name)
        print(f"step {number}/4 {name}: done -> {result}", flush=True)
        return result

    @dk.step(name="reserve_stock")
    def reserve_stock(order: Order) -> str:
        return work("reserve_stock", f"RES-{order.order_id}")

    @dk.step(name="charge_card")
    def charge_card(order: Order) -> str:
        return work("charge_card", f"PAY-{order.amount_cents}")

    @dk.step(name="ship_parcel")
    def ship_parcel(order: Order) -> str:
        return work("ship_parcel", f"TRACK-{order.order_id}-001")

    @dk.step(name="send_email")
    def send_email(order: Order) -> str:
        return work("send_email", f"MAIL-{order.order_id}")

    @app.workflow(name="checkout")
    def checkout(ctx: dk.Context, order: Order) -> Receipt:
        print(f"workflow {ctx.workflow_id} starts (completed steps replay silently)", flush=True)
        reservation = reserve_stock(order)
        payment = charge_card(order)
        tracking = ship_parcel(order)
        email = send_email(order)
        return Receipt(order.order_id, reservation, payment, tracking, email)

    return app, checkout


def _log(log: Path, event: str, step: str) -> None:
    """Append ``"<event> <step> <pid>"``, on disk before the step goes on."""
    with log.open("a") as f:
        f.write(f"{event} {step} {os.getpid()}\n")
        f.flush()
        os.fsync(f.fileno())


def worker(database_url: str, log: Path) -> None:
    """The worker process: launch (which recovers pending work), run the order, wait."""
    app, checkout = make_app(database_url, log)
    with app:
        app.run_workflow(checkout, ORDER, workflow_id=WORKFLOW_ID).get_result()
        print(f"workflow {WORKFLOW_ID} finished", flush=True)


# -- the parent: run, kill, restart, explain ---------------------------------------------------
def start_worker(
    number: int, database_url: str, log: Path
) -> tuple[subprocess.Popen[str], threading.Thread]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "worker", database_url, str(log)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    prefix = f"    worker #{number} (pid {proc.pid}) | "

    def relay() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            print(prefix + line.rstrip(), flush=True)

    thread = threading.Thread(target=relay, daemon=True)
    thread.start()
    return proc, thread


def wait_for_checkpoints(app: dk.Durakit, count: int, timeout: float = 30.0) -> list[dk.StepInfo]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        steps = app.get_workflow_steps(WORKFLOW_ID)
        if len(steps) >= count:
            return steps
        time.sleep(0.01)
    raise SystemExit(f"the worker did not checkpoint {count} steps in {timeout} s")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="durakit-demo-") as tmp:
        db = Path(tmp) / "durakit-demo.db"
        log = Path(tmp) / "side-effects.log"
        url = f"sqlite:///{db}"
        print("durakit demo: a checkout workflow of 4 steps, and a worker that gets killed")
        print(f"database: {db} (SQLite, removed at the end)\n")

        # The parent watches the same database through its own engine; its executor ID
        # differs, so it never recovers (runs) the worker's workflows itself.
        watcher, _ = make_app(url, log, executor_id="demo-watcher")
        with watcher:
            print("1. Start worker #1; it runs workflow", WORKFLOW_ID)
            first, relay = start_worker(1, url, log)
            before = wait_for_checkpoints(watcher, 2)
            first.kill()  # SIGKILL: the process gets no chance to clean up
            first.wait()
            relay.join()
            status = watcher.retrieve_workflow(WORKFLOW_ID).get_status()
            print(
                f"\n2. Step 2 was checkpointed, so worker #1 got SIGKILL "
                f"(exit code {first.returncode})."
            )
            print(f"   The database says: {WORKFLOW_ID} is {status.status.value}, with steps")
            for s in before:
                print(f"     {s.step_id + 1}. {s.name} = {s.output!r}")
            nxt = len(before)  # the first step without a checkpoint
            cut_off = nxt < len(STEPS) and f"start {STEPS[nxt]} " in log.read_text()
            if cut_off:
                print(f"   recorded. Step {nxt + 1} had started but not finished: no checkpoint.\n")
            else:
                print(f"   recorded. Step {nxt + 1} had not started yet.\n")

            print("3. Start worker #2; launch() recovers the pending workflow")
            second, relay = start_worker(2, url, log)
            second.wait()
            relay.join()
            if second.returncode != 0:
                print(f"worker #2 failed (exit code {second.returncode})")
                return 1
            receipt = watcher.retrieve_workflow(WORKFLOW_ID, Receipt).get_result()

        return report(before, first.pid, second.pid, log, receipt)


def report(before: list[dk.StepInfo], first: int, second: int, log: Path, receipt: Receipt) -> int:
    workers = {first: "worker #1", second: "worker #2"}
    started: dict[str, list[str]] = {name: [] for name in STEPS}
    done: dict[str, list[str]] = {name: [] for name in STEPS}
    for line in log.read_text().splitlines():
        event, step, pid = line.split()
        (started if event == "start" else done)[step].append(workers[int(pid)])
    recorded = {s.name for s in before}

    print("\n4. What happened to each step:")
    for number, name in enumerate(STEPS, 1):
        if name in recorded and "worker #2" not in started[name]:
            what = "ran in worker #1; replayed from its checkpoint in worker #2 (not re-run)"
        elif started[name] == ["worker #1", "worker #2"] and done[name] == ["worker #2"]:
            what = "was running when worker #1 was killed; ran again (to completion) in #2"
        elif started[name] == ["worker #2"]:
            what = "ran in worker #2"
        else:
            what = f"started in {started[name]}, completed in {done[name]}"
        print(f"   {number}. {name:<13} {what}")

    print(f"\nResult: {receipt}")
    rerun = [name for name in STEPS if name in recorded and started[name] != ["worker #1"]]
    if rerun:
        print(f"Unexpected: these checkpointed steps ran again: {rerun}")
        return 1
    not_once = [name for name in STEPS if len(done[name]) != 1]
    if not_once:
        print(f"Unexpected: these steps did not run to completion exactly once: {not_once}")
        return 1
    print(f"The {len(recorded)} steps checkpointed before the kill did not run again.")
    for name in STEPS:
        if len(started[name]) > 1:
            print(
                f"{name} was running when the kill hit, before its checkpoint, so it ran again:"
                " steps are at least once (make their side effects idempotent)."
            )
    print("Each step ran to completion exactly once.")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        worker(sys.argv[2], Path(sys.argv[3]))
    else:
        sys.exit(main())
