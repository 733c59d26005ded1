"""Workload (e) events_messages: ping-pong latency between two workflows.

Both pairs run in one process against one fresh database. ROUNDS=200, every round
measured (the median is reported). Workflow IDs are fixed strings so each side knows its
peer in advance. Timestamps are time.perf_counter_ns() taken inside workflow code (same
process, so one-way latencies across the two workflows are comparable).

messages (send -> recv):
  ponger(n, pinger_id):  repeat n: v = recv("ping"); send(pinger_id, v, "pong")
  pinger(n, ponger_id):  repeat n: t0; send(ponger_id, i, "ping"); recv("pong"); t1
  rtt = t1 - t0 (two hops); one_way = (ponger's recv returned) - t0 of the same round.
  The ponger is started first, then the pinger.

events (set_event -> get_event):
  ev_responder(n, a_id): repeat i<n: v = get_event(a_id, f"a{i}"); set_event(f"b{i}", v)
  ev_initiator(n, b_id): repeat i<n: t0; set_event(f"a{i}", i); get_event(b_id, f"b{i}"); t1
  rtt and one_way exactly as above (a distinct key per round, never overwritten).
  The responder is started first, then the initiator.
All recv/get_event calls use a 30 s timeout (never reached in a valid run). A durakit
workflow takes one input, so (n, peer_id) is passed as a tuple.
Same parameters and JSON keys as the reference's events_messages.py.
"""

from __future__ import annotations

import time
from typing import Any

from common import CpuMeter, base_args, emit, lat_summary, make_app, reset_database

import durakit as dk

ROUNDS = 200
TIMEOUT_S = 30.0

T: dict[str, dict[int, int]] = {
    "msg_send": {},
    "msg_recv": {},
    "msg_back": {},
    "ev_set": {},
    "ev_get": {},
    "ev_back": {},
}


def ponger(ctx: dk.Context, args: tuple[int, str]) -> int:
    n, pinger_id = args
    for _ in range(n):
        v = ctx.recv("ping", TIMEOUT_S, type=int)
        T["msg_recv"][v] = time.perf_counter_ns()
        ctx.send(pinger_id, v, "pong")
    return n


def pinger(ctx: dk.Context, args: tuple[int, str]) -> int:
    n, ponger_id = args
    for i in range(n):
        T["msg_send"][i] = time.perf_counter_ns()
        ctx.send(ponger_id, i, "ping")
        v = ctx.recv("pong", TIMEOUT_S, type=int)
        T["msg_back"][i] = time.perf_counter_ns()
        assert v == i, f"pong {v} != {i}"
    return n


def ev_responder(ctx: dk.Context, args: tuple[int, str]) -> int:
    n, a_id = args
    for i in range(n):
        v = ctx.get_event(a_id, f"a{i}", TIMEOUT_S, type=int)
        assert v == i, f"event a{i} = {v}"
        T["ev_get"][i] = time.perf_counter_ns()
        ctx.set_event(f"b{i}", v)
    return n


def ev_initiator(ctx: dk.Context, args: tuple[int, str]) -> int:
    n, b_id = args
    for i in range(n):
        T["ev_set"][i] = time.perf_counter_ns()
        ctx.set_event(f"a{i}", i)
        v = ctx.get_event(b_id, f"b{i}", TIMEOUT_S, type=int)
        T["ev_back"][i] = time.perf_counter_ns()
        assert v == i, f"event b{i} = {v}"
    return n


def main() -> None:
    p = base_args(__doc__)
    p.add_argument("--rounds", type=int, default=ROUNDS)
    args = p.parse_args()
    n = args.rounds
    if not args.no_reset:
        reset_database(args.db_url)
    app = make_app(args.db_url)
    for fn in (ponger, pinger, ev_responder, ev_initiator):
        app.register_workflow(fn)
    app.launch()
    metrics: dict[str, Any] = {"rounds": n}

    def xacts_per_round(prefix: str) -> float | None:
        x = metrics.get(f"{prefix}_cpu_write_xacts")
        return None if x is None else round(x / n, 2)

    # ---- messages ----
    cpu = CpuMeter(args.db_url)
    t0 = time.perf_counter()
    h_pong = app.run_workflow(ponger, (n, "msg-pinger"), workflow_id="msg-ponger")
    h_ping = app.run_workflow(pinger, (n, "msg-ponger"), workflow_id="msg-pinger")
    assert h_ping.get_result() == n
    assert h_pong.get_result() == n
    metrics["msg_total_s"] = round(time.perf_counter() - t0, 3)
    metrics.update(cpu.stop(prefix="msg_cpu"))
    metrics["msg_write_xacts_per_round"] = xacts_per_round("msg")
    rtt = [T["msg_back"][i] - T["msg_send"][i] for i in range(n)]
    one = [T["msg_recv"][i] - T["msg_send"][i] for i in range(n)]
    metrics.update(lat_summary(rtt, "msg_rtt"))
    metrics.update(lat_summary(one, "msg_one_way"))

    # ---- events ----
    cpu = CpuMeter(args.db_url)
    t0 = time.perf_counter()
    h_b = app.run_workflow(ev_responder, (n, "ev-initiator"), workflow_id="ev-responder")
    h_a = app.run_workflow(ev_initiator, (n, "ev-responder"), workflow_id="ev-initiator")
    assert h_a.get_result() == n
    assert h_b.get_result() == n
    metrics["ev_total_s"] = round(time.perf_counter() - t0, 3)
    metrics.update(cpu.stop(prefix="ev_cpu"))
    metrics["ev_write_xacts_per_round"] = xacts_per_round("ev")
    rtt = [T["ev_back"][i] - T["ev_set"][i] for i in range(n)]
    one = [T["ev_get"][i] - T["ev_set"][i] for i in range(n)]
    metrics.update(lat_summary(rtt, "ev_rtt"))
    metrics.update(lat_summary(one, "ev_one_way"))

    app.shutdown()
    emit(
        "events_messages",
        {
            "rounds": n,
            "pattern": "ping-pong between two workflows in one process",
            "timeouts_s": int(TIMEOUT_S),
            "wakeup": "in-process hub; Postgres LISTEN/NOTIFY across processes",
        },
        metrics,
        args.db_url,
    )


if __name__ == "__main__":
    main()
