"""The simulator checked against emulated runs of the same model: a fast version of benchmarks/fidelity.py.

Eight runs in all, four of a scenario without rate limits and four of one in which they bind, each held
against a prediction of its plan. Each run's draws are fixed by its seed (replication 0 of that seed), so
only the executor's timing varies from one test session to the next; the bounds leave room for it.
The full check (20 runs a scenario, coverage and CRPS printed) is ``benchmarks/fidelity.py``.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from cycleplan.executor import ExecuteOptions, execute
from cycleplan.planner import plan
from cycleplan.sim import run_replication, simulate

from cycleplan.comparison import Comparison, compare_run, fidelity
from cycleplan.loading import parse_scenario
from cycleplan.model import Plan

pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")

RUNS = 4
FREE = """
    name: free
    spec: "Feature: course CRUD."
    roles:
      backend: {cycle: {median_min: 5, p90_min: 8}}
      frontend: {cycle: {median_min: 5, p90_min: 8}, sync: {minutes: 1, handoff_tokens: 400}}
    tasks:
      - {id: backend, role: backend, cycles: 4, emits: {schema_ready: 2}}
      - {id: frontend, role: frontend, cycles: 4, waits: {schema_ready: 2}}
      - {id: quality, role: backend, cycles: 2, after: [backend, frontend]}
"""
LIMITED = """
    name: limited
    spec: "Feature: developer documentation."
    # Six writers want two requests a minute; the organisation allows one. One writer alone is not held.
    rate_limits: {requests_per_min: 1}
    roles:
      writer: {lanes: 6, cycle: {median_min: 3, p90_min: 5}}
      reviewer: {cycle: {median_min: 3, p90_min: 5}}
    tasks:
"""
LIMITED += "".join(f"      - {{id: page-{n:02d}, role: writer, cycles: 2}}\n" for n in range(1, 13))
LIMITED += (
    "      - {id: review, role: reviewer, cycles: 2, after: ["
    + ", ".join(f"page-{n:02d}" for n in range(1, 13))
    + "]}\n"
)


@dataclass(frozen=True)
class Runs:
    plan: Plan
    comparisons: list[Comparison]
    same_draws: list[float]
    """Each run's makespan as the simulator's replication on the very same draws makes it."""


def _runs(text: str, time_scale: float, folder: Path) -> Runs:
    the_plan = plan(parse_scenario(textwrap.dedent(text)))
    prediction = simulate(the_plan, replications=500, seed=0, engine="auto")
    comparisons = []
    same_draws = []
    for seed in range(1, RUNS + 1):
        options = ExecuteOptions(
            agent="emulated", time_scale=time_scale, seed=seed, max_output_tokens=100_000
        )
        result = execute(the_plan, options, store=folder / "runs.db", progress="none")
        assert result.status == "complete"
        comparisons.append(compare_run(folder / "runs.db", result.run_id, prediction))
        same_draws.append(run_replication(the_plan, 0, seed=seed).metrics.makespan_min)
    return Runs(the_plan, comparisons, same_draws)


@pytest.fixture(scope="module")
def free(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    # About 60 scenario minutes a run: two seconds each.
    return _runs(FREE, 2_000, tmp_path_factory.mktemp("free"))


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    # About 30 scenario minutes a run, with a refused request every few seconds of scenario time: a lower
    # scale keeps the executor's round trips small against the minutes they stand for.
    return _runs(LIMITED, 300, tmp_path_factory.mktemp("limited"))


def test_the_rate_limits_bind_in_the_prediction_and_in_the_runs(limited: Runs) -> None:
    prediction = limited.comparisons[0].prediction
    assert prediction.summaries["waits_min.rate_limit"].p10 > 5
    assert prediction.summaries["makespan_min"].p50 > 1.3 * limited.plan.makespan_min
    assert all(c.waits_min["rate_limit"].actual > 5 for c in limited.comparisons)


@pytest.mark.parametrize("name", ["free", "limited"])
def test_runs_bill_what_the_simulator_draws_and_take_about_as_long(
    name: str, request: pytest.FixtureRequest
) -> None:
    runs: Runs = request.getfixturevalue(name)
    for seed, (comparison, simulated) in enumerate(zip(runs.comparisons, runs.same_draws, strict=True), 1):
        replication = run_replication(runs.plan, 0, seed=seed).metrics
        assert comparison.tokens_total.actual == replication.tokens_total
        assert comparison.cost_usd.actual == pytest.approx(replication.cost_usd)
        # The executor only adds time (its overhead, stretched by the time scale; 429 round trips).
        assert 0.99 * simulated <= comparison.makespan_min.actual <= 1.25 * simulated


def test_coverage_and_speedup_over_the_runs(free: Runs, limited: Runs) -> None:
    everything = free.comparisons + limited.comparisons
    scores = fidelity(everything)
    assert scores.runs == 2 * RUNS
    # A calibrated P10-P90 covers 80% of runs; of eight fixed draws, at least half, whatever the timing.
    assert scores.coverage >= 0.5
    for runs in (free, limited):
        per_scenario = fidelity(runs.comparisons)
        assert abs(per_scenario.speedup_error) <= 0.15
        assert abs(per_scenario.makespan_error) <= 0.2
        assert 0 < per_scenario.crps_relative < 0.2
