"""A sweep of 16 configurations x 1,000 replications with 1 and with 2 worker processes; prints figures.

The configurations: the full-feature (one-100) scenario with 1 to 8 lanes per role, planned by the
``list`` and ``improve`` algorithms. One worker runs them in this process, one after the other; two
workers use the local process pool (forked after the simulator is imported). Each timing is the whole
``sweep()`` call (planning, simulating, pairing, the Pareto front); 1 and 2 workers alternate, the
first round is a warm-up, and the median, minimum and maximum over the rounds are printed with the
load average seen before and after, since other work on the machine bends the ratio. Both runs must
give the same numbers.

    .venv/bin/python benchmarks/sweep_scaling.py                  # fast engine (auto), 5 rounds
    .venv/bin/python benchmarks/sweep_scaling.py --engine simpy --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from cycleplan.core.loading import load_scenario
from cycleplan.workflows.sweep import SweepResult, sweep

SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "full-feature.yaml"


def comparable(result: SweepResult) -> str:
    data = result.model_dump(mode="json", exclude={"runtime_s", "backend", "workers"})
    for configuration in data["configurations"]:
        configuration.pop("runtime_s")
    return str(data)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", "--replications", type=int, default=1000)
    parser.add_argument("--engine", default="auto", choices=["simpy", "fast", "auto"])
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds after one warm-up round")
    args = parser.parse_args()
    scenario = load_scenario(SCENARIO)
    lanes = range(1, 9)
    algorithms = ["list", "improve"]

    def run(workers: int) -> tuple[float, SweepResult]:
        began = time.perf_counter()
        result = sweep(
            scenario,
            lanes,
            algorithms=algorithms,
            replications=args.replications,
            engine=args.engine,
            workers=workers,
        )
        return time.perf_counter() - began, result

    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    times: dict[int, list[float]] = {1: [], 2: []}
    results: dict[int, str] = {}
    for round_number in range(args.rounds + 1):
        for workers in (1, 2):
            seconds, result = run(workers)
            results[workers] = comparable(result)
            if round_number:
                times[workers].append(seconds)
    assert results[1] == results[2], "1 and 2 workers disagree"
    print(
        f"sweep: 16 configurations (lanes 1-8 x {', '.join(algorithms)}) x {args.replications:,} "
        f"replications, engine {args.engine}, {args.rounds} rounds"
    )
    for workers, seconds in times.items():
        print(
            f"  {workers} worker{'s' if workers > 1 else ' '}  median {statistics.median(seconds):6.2f} s  "
            f"(min {min(seconds):.2f}, max {max(seconds):.2f})"
        )
    ratios = [one / two for one, two in zip(times[1], times[2], strict=True)]
    print(
        f"  speedup of 2 workers over 1: median {statistics.median(ratios):.2f}x "
        f"(per round {', '.join(f'{ratio:.2f}' for ratio in ratios)})"
    )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
