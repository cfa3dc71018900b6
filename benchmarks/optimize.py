"""How few replications optimize spends, and how it scales on Dask; prints figures.

Default: for three scenarios with at most 200 configurations each, the successive-halving search and
the exhaustive one (every configuration at 200 replications) on the same seed: configurations,
replications used against the exhaustive count and their share, and whether the choice equals the
exhaustive best (or lies in its statistical tie: a paired bootstrap of their P90 makespans on the same
200 draws that cannot tell them apart). Both run in this process.

``--dask-only``: a space of more than 10,000 configurations (the full feature with three models for
each of its eight roles and one or two backend lanes: 3^8 x 2 = 13,122) searched on a Dask LocalCluster
with 1 worker and then with 2 (single-threaded processes), timing the whole ``optimize()`` call of each
in one run and printing the ratio, with the load average before and after (other work on the machine
bends it). Both must give the same choice.

    .venv/bin/python benchmarks/optimize.py
    .venv/bin/python benchmarks/optimize.py --seed 3
    .venv/bin/python benchmarks/optimize.py --dask-only
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from cycleplan.core.loading import load_scenario
from cycleplan.core.model import ModelOption, Scenario
from cycleplan.workflows.optimize import OptimizeResult, optimize, paired_bootstrap

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
SPACES: dict[str, dict[str, Any]] = {
    "full-feature": {"lanes": {"backend": [1, 2]}, "budget_usd": 4.5},
    "payment": {"lanes": {}, "budget_usd": None},
    "course-crud": {"lanes": {"backend": [1, 2, 3, 4]}, "budget_usd": 2.0},
}


def _p90_rows(values: np.ndarray) -> np.ndarray:
    found: np.ndarray = np.percentile(values, 90, axis=1)
    return found


def _makespans(scenario: Scenario, result: OptimizeResult, seed: int) -> np.ndarray:
    from cycleplan.sim.simulation import simulate
    from cycleplan.workflows.optimize import configured_plan

    planned = configured_plan(scenario, result.chosen.lanes, result.chosen.models)
    prediction = simulate(planned, replications=200, seed=seed, engine="auto")
    return np.asarray(prediction.replications.values["makespan_min"])


def replications(seed: int) -> None:
    print(f"{'scenario':<14}{'configs':>8}{'used':>9}{'exhaustive':>12}{'share':>8}  choice")
    for name, space in SPACES.items():
        scenario = load_scenario(SCENARIOS / f"{name}.yaml")
        options: dict[str, Any] = {**space, "seed": seed, "workers": 1}
        halving = optimize(scenario, **options)
        exhaustive = optimize(scenario, exhaustive=True, **options)
        if halving.chosen.label == exhaustive.chosen.label:
            verdict = "equal to the exhaustive best"
        else:
            _, low, high = paired_bootstrap(
                _makespans(scenario, exhaustive, seed), _makespans(scenario, halving, seed), _p90_rows, seed
            )
            tie = low <= 0 <= high
            verdict = (
                f"{'within the tie of' if tie else 'WORSE than'} the exhaustive best "
                f"(P90 difference 95% CI {low:+.1f} to {high:+.1f} min)"
            )
        share = halving.replications_used / exhaustive.replications_used
        print(
            f"{name:<14}{halving.configurations:>8}{halving.replications_used:>9,}"
            f"{exhaustive.replications_used:>12,}{share:>8.1%}  {verdict}"
        )
        print(f"{'':<14}chosen: {halving.chosen.label}")


def every_role_on_three_models(scenario: Scenario) -> Scenario:
    """The full feature with each of its roles choosing among Sonnet (its own), Opus and Haiku."""
    options = [
        ModelOption(
            model="claude-opus-4-6", duration_factor=0.75, tokens_factor=0.9, failure_probability=0.01
        ),
        ModelOption(
            model="claude-haiku-4-5", duration_factor=1.25, tokens_factor=1.2, failure_probability=0.06
        ),
    ]
    roles = {
        name: scenario.role(name).model_copy(update={"models": options}) for name in scenario.role_names()
    }
    return scenario.model_copy(update={"roles": roles})


def dask_scaling(seed: int, budget: float) -> None:
    from distributed import Client, LocalCluster

    scenario = every_role_on_three_models(load_scenario(SCENARIOS / "full-feature.yaml"))
    options: dict[str, Any] = {"lanes": {"backend": [1, 2]}, "budget_usd": budget, "seed": seed}
    timings = {}
    chosen = {}
    used = 0
    for workers in (1, 2):
        before = os.getloadavg()[0]
        with (
            LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=50,
            ) as cluster,
            Client(cluster) as client,
        ):
            from cycleplan.workflows.fanout import DaskRunner

            # Import what a configuration needs on every worker before the clock starts.
            client.run(lambda: __import__("cycleplan.workflows.optimize") and None)
            began = time.perf_counter()
            result = optimize(scenario, runner=DaskRunner(client, workers), **options)
            timings[workers] = time.perf_counter() - began
        chosen[workers] = result.chosen.label
        used = result.replications_used
        print(
            f"{workers} worker{'s' if workers > 1 else ''}: {result.configurations:,} configurations, "
            f"{used:,} replications ({used / result.replications_exhaustive:.1%} of exhaustive), "
            f"{timings[workers]:.1f} s; load average {before:.2f} -> {os.getloadavg()[0]:.2f}"
        )
    assert chosen[1] == chosen[2], chosen
    print(f"chosen: {chosen[1]}")
    print(
        f"speedup of 2 workers over 1: {timings[1] / timings[2]:.2f}x "
        "(target at least 1.7x on an idle machine)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--dask-only", action="store_true", help="only the Dask scaling of a 13,122 space")
    parser.add_argument("--budget", type=float, default=5.0, help="the budget of the Dask run (USD)")
    arguments = parser.parse_args()
    print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}")
    if not arguments.dask_only:
        replications(arguments.seed)
    else:
        dask_scaling(arguments.seed, arguments.budget)


if __name__ == "__main__":
    main()
