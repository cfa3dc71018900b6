"""Fidelity of the simulator, measured against emulated runs of the same model.

The emulated agent draws every cycle's duration, tokens and failure from the same model and the same
draws as the simulator (seed ``s`` of a run is replication 0 of ``simulate(..., seed=s)``); the executor
then runs the plan for real, at a time scale, through the SDK, HTTP, the run store and, where a scenario
has them, the rate limits' 429s. For each scenario: plan it, predict it (``--replications`` from seed 0),
execute it ``--runs`` times with seeds 1, 2, ... and hold each run against the prediction with
:func:`cycleplan.workflows.comparison.compare_run`.

The executor's own overhead is real time, so the time scale stretches it: each scenario runs at the time
scale that makes its predicted median run last ``--seconds`` real seconds (between 50x and 5000x),
unless ``--time-scale`` fixes one. Under binding rate limits every refused request costs a round trip,
so there the scale matters most. Per scenario and over all runs it prints:

- ``coverage``: the share of runs whose makespan fell inside the predicted P10-P90 (a calibrated
  prediction covers 80%; 60-95% is accepted), and the same for speedup, tokens and cost;
- ``speedup``: the mean actual speedup against the predicted mean, and the relative error (within 10%
  is accepted);
- ``makespan``: the mean actual makespan's relative error against the predicted mean;
- ``paired``: the mean relative error of each run's makespan against the simulator's replication on
  the very same draws: what the executor itself adds (its overhead, stretched by the time scale, and
  how 429s and retries differ from the simulator's queue at the rate limits);
- ``CRPS``: the mean continuous ranked probability score of the predicted makespan, in minutes and
  relative to the predicted mean makespan (lower is better).

The default scenarios are ``course-crud`` (events and handoffs between three roles), ``rag`` (two
independent roles) and ``rate-limited`` (six lanes held by a limit of one request a minute).

    .venv/bin/python benchmarks/fidelity.py                   # 20 runs of each, about 12 s a run
    .venv/bin/python benchmarks/fidelity.py --runs 30 --time-scale 500 scenarios/payment.yaml
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cycleplan.core.loading import load_scenario
from cycleplan.executor import ExecuteOptions, execute
from cycleplan.planner import plan
from cycleplan.sim import run_replication, simulate
from cycleplan.workflows.comparison import Comparison, Fidelity, compare_run, fidelity

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SCENARIOS = [
    ROOT / "scenarios" / "course-crud.yaml",
    ROOT / "scenarios" / "rag.yaml",
    ROOT / "scenarios" / "rate-limited.yaml",
]
COVERAGE_ACCEPTED = (0.60, 0.95)
SPEEDUP_ERROR_ACCEPTED = 0.10
SCALE_RANGE = (50.0, 5_000.0)


def time_scale_for(median_min: float, seconds: float) -> float:
    """The time scale at which a run of ``median_min`` scenario minutes lasts ``seconds`` real seconds,
    kept within :data:`SCALE_RANGE`."""
    return min(max(median_min * 60.0 / seconds, SCALE_RANGE[0]), SCALE_RANGE[1])


@dataclass(frozen=True)
class Measured:
    """One scenario's runs: each compared with the prediction, and its error on the same draws."""

    scenario: str
    comparisons: list[Comparison]
    paired: list[float]
    time_scale: float
    wall_s: float


def measure(
    path: Path, runs: int, seconds: float, time_scale: float | None, replications: int, folder: Path
) -> Measured:
    """Predict ``path``, run it ``runs`` times against the emulator and compare each run."""
    the_plan = plan(load_scenario(path))
    prediction = simulate(the_plan, replications=replications, seed=0, engine="auto")
    if time_scale is None:
        time_scale = time_scale_for(prediction.summaries["makespan_min"].p50, seconds)
    store = folder / f"{path.stem}.db"
    comparisons: list[Comparison] = []
    paired: list[float] = []
    began = time.perf_counter()
    for seed in range(1, runs + 1):
        options = ExecuteOptions(
            agent="emulated", time_scale=time_scale, seed=seed, max_output_tokens=100_000
        )
        result = execute(the_plan, options, store=store, progress="none")
        comparison = compare_run(store, result.run_id, prediction, prediction_source="simulated")
        comparisons.append(comparison)
        same_draws = run_replication(the_plan, 0, seed=seed).metrics.makespan_min
        paired.append(comparison.makespan_min.actual / same_draws - 1.0)
    return Measured(path.stem, comparisons, paired, time_scale, time.perf_counter() - began)


def row(name: str, scores: Fidelity, paired: list[float], measured: Measured | None) -> dict[str, Any]:
    by = scores.coverage_by_quantity
    low, high = COVERAGE_ACCEPTED
    accepted = low <= scores.coverage <= high and abs(scores.speedup_error) <= SPEEDUP_ERROR_ACCEPTED
    return {
        "scenario": name,
        "runs": scores.runs,
        "time_scale": None if measured is None else round(measured.time_scale, 1),
        "coverage": scores.coverage,
        "coverage_speedup": by["speedup"],
        "coverage_tokens": by["tokens_total"],
        "coverage_cost": by["cost_usd"],
        "speedup_actual": scores.mean_actual_speedup,
        "speedup_predicted": scores.mean_predicted_speedup,
        "speedup_error": scores.speedup_error,
        "makespan_error": scores.makespan_error,
        "paired_error": sum(paired) / len(paired),
        "crps_min": scores.crps_min,
        "crps_relative": scores.crps_relative,
        "accepted": accepted,
        "wall_s": None if measured is None else round(measured.wall_s, 1),
    }


def show(rows: list[dict[str, Any]], runs: int, replications: int) -> str:
    lines = [
        f"fidelity: {runs} emulated runs per scenario (seeds 1-{runs}) against {replications:,} simulated "
        f"replications (seed 0); accepted: makespan coverage {COVERAGE_ACCEPTED[0]:.0%}-"
        f"{COVERAGE_ACCEPTED[1]:.0%} and speedup error within {SPEEDUP_ERROR_ACCEPTED:.0%}",
        "",
        f"{'scenario':<14} {'runs':>4} {'scale':>6}  {'coverage: makespan speedup tokens cost':<40} "
        f"{'speedup actual / predicted, error':<34} {'makespan':>8} {'paired':>7} {'CRPS':>17}  ok",
    ]
    for r in rows:
        scale = "" if r["time_scale"] is None else f"{r['time_scale']:.0f}x"
        coverage = (
            f"{r['coverage']:>18.0%} {r['coverage_speedup']:>7.0%} {r['coverage_tokens']:>6.0%} "
            f"{r['coverage_cost']:>4.0%}"
        )
        speedup = f"{r['speedup_actual']:.3f}x / {r['speedup_predicted']:.3f}x, {r['speedup_error']:+.1%}"
        crps = f"{r['crps_min']:.2f} min ({r['crps_relative']:.1%})"
        lines.append(
            f"{r['scenario']:<14} {r['runs']:>4} {scale:>6}  {coverage:<40} {speedup:<34} "
            f"{r['makespan_error']:>+8.1%} {r['paired_error']:>+7.1%} {crps:>17}  "
            f"{'yes' if r['accepted'] else 'NO'}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="*", type=Path, help="Scenario files (default: three examples).")
    parser.add_argument("--runs", type=int, default=20, help="Emulated runs per scenario.")
    parser.add_argument(
        "--seconds", type=float, default=12.0, help="Real seconds a median run should last (sets the scale)."
    )
    parser.add_argument("--time-scale", type=float, help="One time scale for every scenario instead.")
    parser.add_argument("--replications", type=int, default=2_000)
    parser.add_argument("--json", action="store_true", help="Print the rows as JSON lines.")
    args = parser.parse_args()
    # The SDK warns about every call to a model it knows is deprecated; the scenarios name such models.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    rows: list[dict[str, Any]] = []
    pooled: list[Comparison] = []
    pooled_paired: list[float] = []
    with tempfile.TemporaryDirectory() as folder:
        for path in args.scenarios or DEFAULT_SCENARIOS:
            measured = measure(
                path, args.runs, args.seconds, args.time_scale, args.replications, Path(folder)
            )
            rows.append(row(measured.scenario, fidelity(measured.comparisons), measured.paired, measured))
            pooled += measured.comparisons
            pooled_paired += measured.paired
            print(
                f"  {measured.scenario}: {args.runs} runs at {measured.time_scale:.0f}x in "
                f"{measured.wall_s:.0f} s",
                file=sys.stderr,
            )
    rows.append(row("overall", fidelity(pooled), pooled_paired, None))
    if args.json:
        for r in rows:
            print(json.dumps(r))
    else:
        print(show(rows, args.runs, args.replications))
    if not all(r["accepted"] for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
