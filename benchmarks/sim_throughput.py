"""Replications per second of the SimPy and fast engines, against bare SimPy loops; prints figures.

Two plans: one-100 (the built-in template, 12 tasks, 100 cycles) and a random 200-task plan (seeded).
For each, with the same seed and replications:

- ``end to end``: ``simulate(engine=...)`` whole: drawing, each task's program, the engine (parallel run
  and one-lane baseline), measuring every replication, summaries, per-task percentiles, the cumulative
  curves and the median replication's trace.
- ``engine only``: the engine alone on programs computed beforehand: for SimPy, the parallel run and the
  baseline of every replication, each run's records kept as a row of Python lists; for fast, the
  recursion over the whole batch (parallel and baselines, records as arrays, and any replication it
  hands back run by SimPy). Drawing, programs and measuring are excluded on both sides.
- ``bare SimPy, same timeouts``: a SimPy loop with none of our abstractions (a process per lane walking
  the plan's order, plain events for dependencies and awaited events, one process for the baseline)
  that performs exactly the timeouts our engine performs: one per segment (a stretch of cycles between
  sync points) and one per sync handoff, with the same durations, computed beforehand. It keeps no
  records. This is the like-for-like comparison for ``engine only``.
- ``bare SimPy, per cycle``: the same loop with one timeout per cycle attempt, as a naive model would.
- ``shared by both engines``: generating the random numbers alone (every task's blocks of draws), and
  drawing every task's randomness and working out its program, then
  measuring the records, for the fast engine's batch; both engines run exactly this code. Its time per
  replication bounds any end-to-end ratio: no engine, however fast, can make ``simulate`` quicker than
  drawing and measuring, so the printed ceiling is the SimPy end-to-end time over this shared time.

Both engines' makespans are checked to agree to 1e-9 for every replication.

Agent loops: the fast engine end to end on one-100 with every role's cycles as loops of 1 call and of
20 calls (the same growth, output and minutes per call), and the ratio of their times: a loop is billed
in closed form, so 20 calls should cost little more than 1.

``--against REV``: the fast engine end to end on one-100 (no loops, no subagents: the model every
existing scenario uses) with this checkout and with revision REV of the repository, each installed in a
scratch folder and timed in its own process, alternately, ``--rounds`` times; prints both rates and
their ratio.

    .venv/bin/python benchmarks/sim_throughput.py                 # both plans, default sizes
    .venv/bin/python benchmarks/sim_throughput.py -n 2000 --plan one-100
    .venv/bin/python benchmarks/sim_throughput.py --plan none --loops --against 3f47e06
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Generator
from typing import Any

import numpy as np
import simpy
from revisions import installed

from cycleplan.core.draws import BLOCK, draw_block
from cycleplan.core.model import Plan, Scenario
from cycleplan.planner import plan
from cycleplan.sim import simulate
from cycleplan.sim.curves import CumulativeSketch
from cycleplan.sim.engine import Run
from cycleplan.sim.layout import build_layout
from cycleplan.sim.programs import Programs
from cycleplan.sim.records import measure
from cycleplan.sim.shape import Batch
from cycleplan.sim.simulation import Simulator


def random_scenario(tasks: int = 200, seed: int = 42) -> Scenario:
    """A seeded random scenario: 8 roles of 2 lanes, a random dependency graph, some sync points."""
    rng = np.random.default_rng(seed)
    roles = {f"role{index}": {"lanes": 2} for index in range(8)}
    listed: list[dict[str, Any]] = []
    emitters: list[tuple[str, str]] = []
    for index in range(tasks):
        cycles = int(rng.integers(1, 11))
        task: dict[str, Any] = {"id": f"t{index}", "role": f"role{int(rng.integers(0, 8))}", "cycles": cycles}
        if index:
            count = int(rng.integers(0, 3))
            task["after"] = sorted({f"t{int(rng.integers(max(0, index - 30), index))}" for _ in range(count)})
        if cycles > 1 and rng.random() < 0.1:
            event = f"e{index}"
            task["emits"] = {event: int(rng.integers(1, cycles))}
            emitters.append((event, task["id"]))
        elif emitters and rng.random() < 0.1:
            event, _ = emitters[int(rng.integers(0, len(emitters)))]
            task["waits"] = {event: int(rng.integers(1, cycles + 1))}
        listed.append(task)
    return Scenario.model_validate({"name": f"random-{tasks}", "roles": roles, "tasks": listed})


def bare_simpy(simulator: Simulator, programs: Programs, per_cycle: bool) -> Callable[[], list[float]]:
    """A bare SimPy loop over every replication: the parallel run and the one-lane baseline."""
    shape = simulator.parallel
    layout = simulator.layout
    names = shape.names
    after = [[shape.index[dep] for dep in layout.tasks[name].after] for name in names]
    segments = [task.segments for task in simulator.shapes]
    order = [shape.index[layout.parallel.units[unit].members[0]] for unit in layout.sequential_order]
    if per_cycle:
        durations = [program.duration_min.tolist() for program in programs.tasks]
    else:
        durations = [program.segment_min.tolist() for program in programs.tasks]
    slots = [range(task.slots) for task in simulator.shapes]

    def work(env: simpy.Environment, task: int, row: int, fired: dict[str, simpy.Event] | None
             ) -> Generator[simpy.Event, Any, None]:  # fmt: skip
        minutes = durations[task][row]
        for position, segment in enumerate(segments[task]):
            if fired is not None:
                for event in segment.waits:
                    if not fired[event].triggered:
                        yield fired[event]
            if segment.sync_min > 0:
                yield env.timeout(segment.sync_min)
            if per_cycle:
                attempts = simulator.shapes[task].attempts
                for slot in slots[task][segment.first_slot : segment.end_slot]:
                    if minutes[slot] > 0 or slot % attempts == 0:
                        yield env.timeout(minutes[slot])
            else:
                yield env.timeout(minutes[position])
            if fired is not None:
                for event in segment.emits:
                    fired[event].succeed()

    def replication(row: int) -> float:
        env = simpy.Environment()
        done = [env.event() for _ in names]
        fired = {event: env.event() for event in layout.emitter}

        def lane(queue: tuple[int, ...]) -> Generator[simpy.Event, Any, None]:
            for task in queue:
                for dep in after[task]:
                    if not done[dep].triggered:
                        yield done[dep]
                yield from work(env, task, row, fired)
                done[task].succeed()

        for queue in shape.queues:
            env.process(lane(queue))
        env.run()
        baseline = simpy.Environment()

        def one_lane() -> Generator[simpy.Event, Any, None]:
            for task in order:
                yield from work(baseline, task, row, None)

        baseline.process(one_lane())
        baseline.run()
        return float(env.now)

    return lambda: [replication(row) for row in range(programs.count)]


def timed(function: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """The median wall time of ``repeats`` calls (garbage collected before each), and the last result."""
    times = []
    result = None
    for _ in range(repeats):
        gc.collect()
        began = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - began)
    return statistics.median(times), result


def bench(name: str, planned: Plan, replications: int, fast_replications: int, repeats: int) -> None:
    simulator = Simulator(build_layout(planned), 0, "plan", ideal=False)
    programs = simulator.programs(0, replications)
    batch = Batch(simulator.parallel, programs)
    chosen = simulator.chosen(programs)

    def simpy_engine() -> list[float]:
        makespans = [Run(simulator.parallel, batch, row).run().makespan for row in range(programs.count)]
        for row in range(programs.count):
            simulator.baseline_by_simpy(programs, chosen, row)
        return makespans

    def fast_engine() -> list[float]:
        records, _, _ = simulator.run_batch(programs, "fast")
        return list(records.makespan)

    def end_to_end(engine: str, count: int) -> Callable[[], Any]:
        return lambda: simulate(planned, replications=count, seed=0, engine=engine)

    simpy_end, slow = timed(end_to_end("simpy", replications), repeats)
    fast_end, quick = timed(end_to_end("fast", fast_replications), repeats)
    simpy_only, slow_makespans = timed(simpy_engine, repeats)
    fast_only, quick_makespans = timed(fast_engine, repeats)
    bare_same, bare_makespans = timed(bare_simpy(simulator, programs, per_cycle=False), repeats)
    bare_cycle, _ = timed(bare_simpy(simulator, programs, per_cycle=True), repeats)
    drawing, drawn = timed(lambda: simulator.programs(0, fast_replications), repeats)
    blocks = range(-(-fast_replications // BLOCK))
    random_only, _ = timed(
        lambda: [
            draw_block(s.task, s.role, 0, block, key=s.key) for s in simulator.shapes for block in blocks
        ],
        repeats,
    )
    fast_records, _, _ = simulator.run_batch(drawn, "fast")
    sketch = CumulativeSketch(simulator.layout.plan.makespan_min)
    step_min = sketch.step_for(float(fast_records.makespan.max()))
    measuring, _ = timed(lambda: measure(simulator.parallel, drawn, fast_records, step_min), repeats)
    worst = float(np.max(np.abs(np.asarray(slow_makespans) - np.asarray(quick_makespans))))
    worst_bare = float(np.max(np.abs(np.asarray(slow_makespans) - np.asarray(bare_makespans))))
    shared = quick.replications.values["makespan_min"][:replications]
    worst_end = float(
        np.max(np.abs(np.asarray(slow.replications.values["makespan_min"]) - np.asarray(shared)))
    )

    def rate(seconds: float, count: int) -> str:
        return f"{count / seconds:>12,.0f} replications/s"

    tasks = len(planned.scenario.all_tasks())
    cycles = sum(task.cycles for task in planned.scenario.all_tasks())
    print(f"{name}: {tasks} tasks, {cycles} cycles, {len(planned.lanes)} lanes")
    print(f"  end to end  simpy   {rate(simpy_end, replications)}  ({replications:,} replications)")
    print(f"  end to end  fast    {rate(fast_end, fast_replications)}  ({fast_replications:,} replications)")
    print(f"  engine only simpy   {rate(simpy_only, replications)}")
    print(f"  engine only fast    {rate(fast_only, replications)}")
    print(f"  bare SimPy, same timeouts {rate(bare_same, replications)}")
    print(f"  bare SimPy, per cycle     {rate(bare_cycle, replications)}")
    print(f"  shared: random numbers alone {rate(random_only, len(blocks) * BLOCK)}")
    print(f"  shared: drawing and programs {rate(drawing, fast_replications)}")
    print(f"  shared: measuring            {rate(measuring, fast_replications)}")
    ratio_end = (fast_replications / fast_end) / (replications / simpy_end)
    ceiling = (simpy_end / replications) / ((drawing + measuring) / fast_replications)
    floor = (simpy_end / replications) / (random_only / (len(blocks) * BLOCK))
    print(f"  fast / simpy, end to end     {ratio_end:8.1f}x")
    print(f"  fast / simpy, engine only    {simpy_only / fast_only:8.1f}x")
    print(f"  end-to-end ceiling of any engine over simpy (shared work alone) {ceiling:6.1f}x")
    print(f"  ... and if programs and measuring cost nothing (random numbers alone) {floor:6.1f}x")
    print(f"  simpy engine / bare, same timeouts   {simpy_only / bare_same:5.2f}x the time")
    print(f"  simpy engine / bare, per cycle       {simpy_only / bare_cycle:5.2f}x the time")
    print(f"  simpy end to end / bare, same timeouts {simpy_end / bare_same:5.2f}x the time")
    print(
        f"  largest makespan difference, fast vs simpy: {worst:.1e} min (engine), "
        f"{worst_end:.1e} (end to end)"
    )
    print(f"  largest makespan difference, bare loop vs simpy: {worst_bare:.1e} min")


LOOP = {
    "growth": {"median": 900, "p90": 4000},
    "output": {"median": 150, "p90": 600},
    "minutes": {"median_min": 0.15, "p90_min": 0.5},
    "compaction": {"threshold_tokens": 160_000, "summary_tokens": 15_000, "minutes": 1.0},
}
ROLES = ("director", "backend", "frontend", "integration", "quality", "designer", "ops", "documenter")


def loops(replications: int, repeats: int) -> None:
    """one-100 with every role's cycles as agent loops of 1 and of 20 calls, fast engine end to end."""
    rates = {}
    for calls in (1, 20):
        loop = {**LOOP, "per_cycle": {"median": calls, "p90": calls}}
        scenario = Scenario.model_validate(
            {
                "name": f"one-100, {calls} calls",
                "template": "one-100",
                "roles": {r: {"calls": loop} for r in ROLES},
            }
        )
        planned = plan(scenario)
        seconds, _ = timed(
            lambda planned=planned: simulate(planned, replications=replications, engine="fast"), repeats
        )
        rates[calls] = replications / seconds
        print(
            f"  one-100, loops of {calls:>2} call(s) per cycle: {rates[calls]:>10,.0f} replications/s (fast)"
        )
    print(f"  20 calls per cycle take {rates[1] / rates[20]:.2f}x the time of 1 (fast engine, end to end)")


PROBE = """
import statistics, sys, time
from cycleplan.core.model import Scenario
from cycleplan.planner import plan
from cycleplan.sim import simulate
planned = plan(Scenario(name="one-100", template="one-100"))
simulate(planned, replications=256, engine="fast")
times = []
for _ in range(3):
    began = time.perf_counter()
    simulate(planned, replications=int(sys.argv[1]), engine="fast")
    times.append(time.perf_counter() - began)
print(int(sys.argv[1]) / statistics.median(times))
"""


def against(revision: str, replications: int, rounds: int) -> None:
    """This checkout against ``revision``: one-100, fast engine end to end, each in its own process."""
    rates: dict[str, list[float]] = {"new": [], "old": []}
    with installed(revision) as sides:
        for _ in range(rounds):
            for name, site in (("old", sides.old_site), ("new", sides.new_site)):
                done = subprocess.run(
                    [sys.executable, "-c", PROBE, str(replications)],
                    env={**os.environ, "PYTHONPATH": str(site)},
                    cwd=sides.scratch,
                    check=True,
                    capture_output=True,
                    text=True,
                )
                rates[name].append(float(done.stdout.strip()))
    old, new = statistics.median(rates["old"]), statistics.median(rates["new"])
    print(
        f"one-100, fast engine end to end, {replications:,} replications, "
        f"median of {rounds} alternating rounds:"
    )
    print(f"  {revision}: {old:>10,.0f} replications/s   ({', '.join(f'{r:,.0f}' for r in rates['old'])})")
    print(f"  this checkout: {new:>10,.0f} replications/s   ({', '.join(f'{r:,.0f}' for r in rates['new'])})")
    print(f"  this checkout takes {old / new:.3f}x the time of {revision}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", "--replications", type=int, default=1024, help="SimPy and bare loops")
    parser.add_argument("--fast-replications", type=int, default=20_480, help="end to end, fast engine")
    parser.add_argument("--repeats", type=int, default=3, help="median of this many timings")
    parser.add_argument("--plan", choices=["one-100", "random-200", "both", "none"], default="both")
    parser.add_argument("--loops", action="store_true", help="time agent loops of 1 and 20 calls per cycle")
    parser.add_argument("--against", metavar="REV", help="time one-100 (fast) against revision REV too")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds for --against")
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    if args.plan in ("one-100", "both"):
        bench("one-100", plan(Scenario(name="one-100", template="one-100")), args.replications,
              args.fast_replications, args.repeats)  # fmt: skip
    if args.plan in ("random-200", "both"):
        random_plan = plan(random_scenario(), algorithm="list")
        bench("random 200-task plan", random_plan, max(args.replications // 4, 64),
              max(args.fast_replications // 10, 256), args.repeats)  # fmt: skip
    if args.loops:
        loops(args.fast_replications, args.repeats)
    if args.against:
        against(args.against, args.fast_replications, args.rounds)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
