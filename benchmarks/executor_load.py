"""The executor's overhead per event and its peak memory, with 100 lanes.

Two measurements:

1. ``bookkeeping``: the orchestrator with an agent that returns at once, so that all the time is the
   executor's own (lanes, waits, slots, committing each event to SQLite, waking waiters). Reports
   microseconds of wall time per event.
2. ``emulated``: 100 lanes against the loopback emulator with rate limits binding (429s with
   retry-after), the official SDK and HTTP included. Reports wall time, events, 429s, and the
   executor's share of the process's CPU per event.

Peak memory is the process's peak resident set size (``ru_maxrss``), measured in a fresh process per
measurement.

    .venv/bin/python benchmarks/executor_load.py            # both, 100 lanes
    .venv/bin/python benchmarks/executor_load.py --lanes 200 --tasks-per-lane 5
    .venv/bin/python benchmarks/executor_load.py --against 8071fee     # bookkeeping, both, one run

``--forecaster busy``: ``bookkeeping`` with a stand-in forecaster that holds the CPU (and Python's lock)
for ``--busy-seconds`` a call (0.5 by default, the most the real forecast may take: one-100's takes
0.02 s, and under rate limits the race for the buckets is run only up to about half a second,
``cycleplan.sim.forecast.RACE_WORK``), called as a live run calls it (each task event, at least every
few seconds, never two at once); ``stub`` answers at once; ``none`` (the default) has none.

    .venv/bin/python benchmarks/executor_load.py --only bookkeeping --forecaster busy

``--forecaster compare``: ``bookkeeping`` with no forecaster and with the busy one, each in a fresh
process, alternately, ``--rounds`` times; prints both medians and their ratio (the live forecast's target:
at most 1.5x). Its runs have 50 tasks a lane unless ``--tasks-per-lane`` says otherwise: a run of 5 a lane
lasts 0.4 s, less than one forecast and the four times as long the executor then keeps for itself, so
the first forecast alone would weigh as half the run; no real run is that short.

    .venv/bin/python benchmarks/executor_load.py --forecaster compare --rounds 5

``--otlp live``: ``bookkeeping`` with the live OpenTelemetry export on
(:mod:`cycleplan.workflows.live_export`), its spans sent over OTLP/HTTP to a sink on loopback (a
process of its own); reports microseconds per event during the run and counting the post-run flush too
(the executor waits for the last spans to go). ``OTEL_BSP_SCHEDULE_DELAY`` (ms) is the exporter's
batching delay, 5,000 by default. ``--otlp compare``: off and live alternately, each in a fresh process,
``--rounds`` times; prints the medians and both ratios (the target: at most 1.1x).

    .venv/bin/python benchmarks/executor_load.py --otlp compare --rounds 5

``--against REV``: ``bookkeeping`` with this checkout and with revision REV of the repository (each
installed in a scratch folder, each running its own revision's measure in a fresh process), alternately,
``--rounds`` times; prints both medians and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from revisions import installed

from cycleplan.core.model import Scenario
from cycleplan.executor.backend import CycleOutcome, CycleRequest, Usage
from cycleplan.executor.clock import Clock
from cycleplan.executor.orchestrator import Orchestrator, Policy
from cycleplan.executor.replay import replay
from cycleplan.planner import plan
from cycleplan.store.runs import RunStore


def scenario(lanes: int, tasks_per_lane: int, cycles: int, limited: bool) -> Scenario:
    tasks: list[dict[str, Any]] = []
    for index in range(lanes * tasks_per_lane):
        task: dict[str, Any] = {"id": f"t{index:05d}", "role": "agent", "cycles": cycles}
        if index >= lanes:
            task["after"] = [f"t{index - lanes:05d}"]
        if index == 0:
            task["emits"] = {"kickoff": 1}
        elif index < lanes and index % 10 == 0:
            task["waits"] = {"kickoff": 1}
        tasks.append(task)
    data: dict[str, Any] = {
        "name": "load",
        "roles": {"agent": {"lanes": lanes, "cycle": {"kind": "fixed", "value_min": 1}}},
        "tasks": tasks,
    }
    if limited:
        data["rate_limits"] = {"requests_per_min": 0.4 * lanes, "input_tokens_per_min": 50_000 * lanes}
    return Scenario.model_validate(data)


class InstantBackend:
    """An agent that finishes every cycle at once with fixed usage: only the executor's work is left."""

    name = "instant"

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def context_tokens(self, role_name: str) -> int:
        return 0

    async def run_cycle(self, request: CycleRequest) -> CycleOutcome:
        await asyncio.sleep(0)
        return CycleOutcome(ok=True, duration_ms=0.0, usage=Usage(100, 50, 0, 0))


FORECAST = {
    "at_min": 0.0,
    "finish_min_from_start": {"p10": 1.0, "p50": 2.0, "p90": 3.0},
    "cost_usd_total": {"p10": 1.0, "p50": 2.0, "p90": 3.0},
    "cost_to_complete_usd": {"p10": 1.0, "p50": 2.0, "p90": 3.0},
    "tokens_total": {"p10": 1, "p50": 2, "p90": 3},
    "replications": 1000,
    "p_within_budget": None,
    "p_by_deadline": None,
}


def stand_in(kind: str, busy_s: float = 0.5) -> Any:
    """A forecaster for the measurement: None, one that answers at once, or one that computes for
    ``busy_s`` seconds of CPU in Python (holding the interpreter's lock, as pure-Python work does)."""
    if kind == "none":
        return None

    def forecast(trace: Any, now_min: float) -> dict[str, Any]:
        if kind == "busy":
            until = time.thread_time() + busy_s
            while time.thread_time() < until:
                sum(range(1000))
        return FORECAST | {"at_min": now_min}

    return forecast


SINK = """
import http.server, sys
class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
print(server.server_address[1], flush=True)
server.serve_forever()
"""
"""An OTLP/HTTP endpoint that takes every request and keeps nothing: where the live export sends."""


def bookkeeping(
    lanes: int,
    tasks_per_lane: int,
    cycles: int,
    forecaster: str = "none",
    otlp: str = "off",
    busy_s: float = 0.5,
) -> dict[str, Any]:
    sink: subprocess.Popen[str] | None = None
    live: Any = None
    with tempfile.TemporaryDirectory() as folder:
        # As `execute --otlp-endpoint` does, the exporting process starts before the plan is made.
        if otlp == "live":
            from cycleplan.workflows.live_export import LiveExport, endpoint_settings

            # At low priority: it stands in for a collector on another machine, which costs this one nothing.
            sink = subprocess.Popen(
                ["nice", "-n", "19", sys.executable, "-c", SINK], stdout=subprocess.PIPE, text=True
            )
            assert sink.stdout is not None
            port = int(sink.stdout.readline())
            settings = endpoint_settings(f"http://127.0.0.1:{port}")
            build = os.environ.get("CYCLEPLAN_OTLP_BUILD_S")
            if build:
                settings = dataclasses.replace(settings, build_s=float(build))
            live = LiveExport(Path(folder) / "runs.db", settings)
        the_plan = plan(scenario(lanes, tasks_per_lane, cycles, limited=False))
        store = RunStore(Path(folder) / "runs.db")
        # Leased, as the executor holds its runs: every event's write checks the lease.
        store.create_run(
            "bench", agent="instant", source="", scenario="load", options={}, plan_json="{}", lease=True
        )
        progress = replay([], [t.id for t in the_plan.scenario.all_tasks()])
        orchestrator = Orchestrator(
            the_plan,
            InstantBackend(),
            store,
            "bench",
            clock=Clock(),
            policy=Policy(retry_backoff_s=0),
            progress=progress,
            run_folder=Path(folder) / "run",
            workdirs={},
            header={},
            forecaster=stand_in(forecaster, busy_s),
            observers=[live] if live is not None else None,
        )
        started = time.perf_counter()
        cpu = time.process_time()
        status = asyncio.run(orchestrator.run(resumed=False))
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu
        sent: dict[str, Any] = {}
        if live is not None:
            sent = live.close()
        flushed = time.perf_counter() - started
        if sink is not None:
            sink.kill()
            sink.wait()
        stored = store.trace("bench")
        events = sum(1 for event in stored if event.action != "forecast_updated")
        forecasts = len(stored) - events
        store.close()
    return {
        "measure": "bookkeeping",
        "forecaster": forecaster,
        "otlp": otlp,
        **({"spans_sent": sent["spans"], "export_errors": sent["errors"]} if otlp == "live" else {}),
        "us_per_event_with_flush": round(flushed / events * 1e6, 1),
        "forecasts": forecasts,
        "status": status,
        "lanes": lanes,
        "events": events,
        "wall_s": round(wall, 3),
        "us_per_event": round(wall / events * 1e6, 1),
        "cpu_us_per_event": round(cpu / events * 1e6, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def emulated(lanes: int, tasks_per_lane: int, cycles: int, time_scale: float) -> dict[str, Any]:
    from cycleplan.executor import ExecuteOptions, execute
    from cycleplan.store import RunStore

    the_plan = plan(scenario(lanes, tasks_per_lane, cycles, limited=True))
    with tempfile.TemporaryDirectory() as folder:
        options = ExecuteOptions(agent="emulated", time_scale=time_scale, retry_backoff_s=0)
        started = time.perf_counter()
        cpu = time.process_time()
        result = execute(the_plan, options, store=Path(folder) / "runs.db", progress="none")
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu
        with RunStore(Path(folder) / "runs.db") as runs:
            trace = runs.trace(result.run_id)
    rate_limited = sum(int(e.metadata.get("rate_limited", 0)) for e in trace)
    return {
        "measure": "emulated",
        "status": result.status,
        "lanes": lanes,
        "events": len(trace),
        "requests_429": rate_limited,
        "wall_s": round(wall, 3),
        "makespan_min": round(result.summary["makespan_min"], 2),
        "cpu_ms_per_event_incl_sdk_http_emulator": round(cpu / len(trace) * 1e3, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def against(revision: str, lanes: int, tasks_per_lane: int, cycles: int, rounds: int) -> None:
    """Microseconds per event of ``bookkeeping`` here and at ``revision``, alternating, fresh processes."""
    figures: dict[str, list[float]] = {"old": [], "new": []}
    sizes = ["--lanes", str(lanes), "--tasks-per-lane", str(tasks_per_lane), "--cycles", str(cycles)]
    with installed(revision) as sides:
        scripts = {"old": sides.old_source / "benchmarks" / "executor_load.py", "new": Path(__file__)}
        for _ in range(rounds):
            for name, site in (("old", sides.old_site), ("new", sides.new_site)):
                done = subprocess.run(
                    [sys.executable, str(scripts[name]), "--only", "bookkeeping", *sizes],
                    env={**os.environ, "PYTHONPATH": str(site)},
                    cwd=sides.scratch,
                    check=True,
                    capture_output=True,
                    text=True,
                )
                figures[name].append(json.loads(done.stdout)["us_per_event"])
    old, new = statistics.median(figures["old"]), statistics.median(figures["new"])
    print(f"bookkeeping, {lanes} lanes, median of {rounds} alternating rounds (microseconds per event):")
    print(f"  {revision}: {old:>8.1f}   ({', '.join(f'{f:.1f}' for f in figures['old'])})")
    print(f"  this checkout: {new:>8.1f}   ({', '.join(f'{f:.1f}' for f in figures['new'])})")
    print(f"  this checkout takes {new / old:.2f}x the time per event of {revision}")


def forecaster_cost(lanes: int, tasks_per_lane: int, cycles: int, rounds: int, busy_s: float) -> None:
    """Microseconds per event of ``bookkeeping`` with no forecaster and with the busy one, alternating."""
    figures: dict[str, list[float]] = {"none": [], "busy": []}
    forecasts: list[int] = []
    sizes = ["--lanes", str(lanes), "--tasks-per-lane", str(tasks_per_lane), "--cycles", str(cycles)]
    sizes += ["--busy-seconds", str(busy_s)]
    for _ in range(rounds):
        for kind in figures:
            argv = [sys.executable, __file__, "--only", "bookkeeping", "--forecaster", kind, *sizes]
            row = json.loads(subprocess.run(argv, check=True, capture_output=True, text=True).stdout)
            figures[kind].append(row["us_per_event"])
            if kind == "busy":
                forecasts.append(row["forecasts"])
    off, live = statistics.median(figures["none"]), statistics.median(figures["busy"])
    print(f"bookkeeping, {lanes} lanes, median of {rounds} alternating rounds (microseconds per event):")
    print(f"  no forecaster:   {off:>8.1f}   ({', '.join(f'{f:.1f}' for f in figures['none'])})")
    busy = ", ".join(f"{f:.1f}" for f in figures["busy"])
    print(f"  busy forecaster: {live:>8.1f}   ({busy}; {busy_s} s of CPU a call)")
    print(f"  forecasts made per run: {', '.join(str(n) for n in forecasts)}")
    print(f"  a live forecast takes {live / off:.2f}x the time per event (target at most 1.5x)")


def otlp_cost(lanes: int, tasks_per_lane: int, cycles: int, rounds: int) -> None:
    """Microseconds per event of ``bookkeeping`` with the live OTLP export off and on, alternating."""
    rows: dict[str, list[dict[str, Any]]] = {"off": [], "live": []}
    sizes = ["--lanes", str(lanes), "--tasks-per-lane", str(tasks_per_lane), "--cycles", str(cycles)]
    for _ in range(rounds):
        for kind in rows:
            argv = [sys.executable, __file__, "--only", "bookkeeping", "--otlp", kind, *sizes]
            rows[kind].append(
                json.loads(subprocess.run(argv, check=True, capture_output=True, text=True).stdout)
            )
    delay = os.environ.get("OTEL_BSP_SCHEDULE_DELAY", "5000")
    off = statistics.median(r["us_per_event"] for r in rows["off"])
    during = statistics.median(r["us_per_event"] for r in rows["live"])
    flushed = statistics.median(r["us_per_event_with_flush"] for r in rows["live"])
    print(f"bookkeeping, {lanes} lanes, median of {rounds} alternating rounds (microseconds per event):")
    print(
        f"  export off:              {off:>8.1f}   ({', '.join(str(r['us_per_event']) for r in rows['off'])})"
    )
    runs = ", ".join(str(r["us_per_event"]) for r in rows["live"])
    print(f"  live, during the run:    {during:>8.1f}   ({runs})")
    print(
        f"  live, with the flush:    {flushed:>8.1f}   "
        f"({', '.join(str(r['us_per_event_with_flush']) for r in rows['live'])})"
    )
    print(
        f"  spans sent per run: {', '.join(str(r['spans_sent']) for r in rows['live'])}; events per run: "
        f"{rows['live'][0]['events']}; OTEL_BSP_SCHEDULE_DELAY={delay} ms"
    )
    errors = [e for r in rows["live"] for e in r["export_errors"]]
    if errors:
        print(f"  export errors: {errors[:3]}")
    print(
        f"  live export takes {during / off:.2f}x the time per event during the run, {flushed / off:.2f}x "
        "counting the post-run flush (target at most 1.1x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lanes", type=int, default=100)
    parser.add_argument("--tasks-per-lane", type=int, help="5, or 50 for --forecaster compare")
    parser.add_argument("--cycles", type=int, default=4)
    parser.add_argument("--time-scale", type=float, default=2_000.0)
    parser.add_argument("--only", choices=["bookkeeping", "emulated"])
    parser.add_argument("--forecaster", choices=["none", "stub", "busy", "compare"], default="none")
    parser.add_argument("--busy-seconds", type=float, default=0.5, help="CPU a busy forecast holds a call.")
    parser.add_argument("--otlp", choices=["off", "live", "compare"], default="off")
    parser.add_argument("--against", metavar="REV", help="time bookkeeping against revision REV too")
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="alternating rounds for --against, --forecaster compare and --otlp compare",
    )
    args = parser.parse_args()
    if args.tasks_per_lane is None:
        args.tasks_per_lane = 50 if args.forecaster == "compare" else 5
    if args.forecaster == "compare":
        forecaster_cost(args.lanes, args.tasks_per_lane, args.cycles, args.rounds, args.busy_seconds)
        return
    if args.otlp == "compare":
        otlp_cost(args.lanes, args.tasks_per_lane, args.cycles, args.rounds)
        return
    if args.against:
        against(args.against, args.lanes, args.tasks_per_lane, args.cycles, args.rounds)
        return
    if args.only == "bookkeeping":
        print(
            json.dumps(
                bookkeeping(
                    args.lanes,
                    args.tasks_per_lane,
                    args.cycles,
                    args.forecaster,
                    args.otlp,
                    args.busy_seconds,
                )
            )
        )
        return
    if args.only == "emulated":
        print(json.dumps(emulated(args.lanes, args.tasks_per_lane, args.cycles, args.time_scale)))
        return
    # Each measurement in a fresh process, so that each peak RSS is its own.
    for only in ("bookkeeping", "emulated"):
        argv = [sys.executable, __file__, "--only", only, "--lanes", str(args.lanes)]
        argv += ["--tasks-per-lane", str(args.tasks_per_lane), "--cycles", str(args.cycles)]
        argv += ["--time-scale", str(args.time_scale)]
        print(subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
