"""How long ``plan()`` takes with its default algorithm (``improve``) on plans of 100 tasks; prints figures.

The target: plans of up to 100 tasks in under half a second. Scenarios are the seeded random ones of
:mod:`sim_throughput` (8 roles, random dependencies, some tasks publishing events that others wait for)
at 100 tasks, made tight enough that the search spends its whole budget rather than stopping at the
critical-path bound: one lane per role and a one-unit shared resource every fifth task needs. Each is
also planned with its waits and emits removed, so that both of the planner's schedulers are timed: the
fast array scheduler (no sync points) and the general one (waits and emits). For each scenario: the
median CPU and wall time of ``--repeats`` calls; then the median and the largest over the seeds.

    .venv/bin/python benchmarks/plan_time.py
    .venv/bin/python benchmarks/plan_time.py --seeds 20 --tasks 100
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from sim_throughput import random_scenario

from cycleplan.core.model import Scenario
from cycleplan.planner import plan

TARGET_S = 0.5


def tightened(scenario: Scenario, sync_points: bool) -> Scenario:
    """One lane per role, a shared resource every fifth task needs; without waits and emits unless
    ``sync_points``."""
    data = scenario.model_dump(exclude_defaults=True)
    for role in data["roles"].values():
        role["lanes"] = 1
    data["resources"] = {"staging": {"capacity": 1}}
    for position, task in enumerate(data["tasks"]):
        if position % 5 == 0:
            task["requires"] = {"staging": 1}
        if not sync_points:
            task.pop("waits", None)
            task.pop("emits", None)
    return Scenario.model_validate(data)


def timed(scenario: Scenario, repeats: int) -> tuple[float, float, str]:
    """Median CPU seconds, median wall seconds, and the algorithm that planned."""
    cpu: list[float] = []
    wall: list[float] = []
    algorithm = ""
    for _ in range(repeats):
        began_cpu, began_wall = time.process_time(), time.perf_counter()
        algorithm = plan(scenario).algorithm
        cpu.append(time.process_time() - began_cpu)
        wall.append(time.perf_counter() - began_wall)
    return statistics.median(cpu), statistics.median(wall), algorithm


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=10, help="random scenarios of each kind")
    parser.add_argument("--repeats", type=int, default=3, help="median of this many calls")
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    for kind in ("no sync points (array scheduler)", "waits and emits (general scheduler)"):
        rows = []
        for seed in range(args.seeds):
            scenario = tightened(random_scenario(args.tasks, seed), sync_points=kind.startswith("waits"))
            rows.append(timed(scenario, args.repeats))
        cpu = [row[0] for row in rows]
        wall = [row[1] for row in rows]
        algorithms = sorted({row[2] for row in rows})
        print(
            f"{args.tasks} tasks, {kind}, {args.seeds} scenarios, {', '.join(algorithms)}: "
            f"CPU median {statistics.median(cpu):.3f} s, max {max(cpu):.3f} s; "
            f"wall max {max(wall):.3f} s  (target < {TARGET_S} s: "
            f"{'met' if max(wall) < TARGET_S else 'missed'})"
        )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
