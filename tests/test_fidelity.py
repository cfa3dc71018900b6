"""The simulator checked against emulated runs of the same model: a fast version of benchmarks/fidelity.py.

Eight runs in all, five of a scenario without rate limits and three of one in which they bind, each held
against a prediction of its plan. Each run's draws are fixed by its seed (replication 0 of that seed), so
only the executor's timing varies from one test session to the next, and the bounds leave room for it:
the executor's overhead (stretched by the time scale, larger on a loaded machine) and, where the rate
limits bind, the order in which 429s and retries let the lanes through, which the simulator's queue
does not reproduce (the same draws come out a few percent either way).
The full check (20 runs a scenario, coverage and CRPS printed) is ``benchmarks/fidelity.py``.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from cycleplan.core.loading import parse_scenario
from cycleplan.core.model import Plan
from cycleplan.executor import ExecuteOptions, execute
from cycleplan.planner import plan
from cycleplan.sim import run_replication, simulate
from cycleplan.workflows.comparison import Comparison, compare_run, fidelity

pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")

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


def _runs(text: str, runs: int, time_scale: float, folder: Path) -> Runs:
    the_plan = plan(parse_scenario(textwrap.dedent(text)))
    prediction = simulate(the_plan, replications=500, seed=0, engine="auto")
    comparisons = []
    same_draws = []
    for seed in range(1, runs + 1):
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
    # About 40 scenario minutes a run: between two and three seconds each.
    return _runs(FREE, 5, 1_000, tmp_path_factory.mktemp("free"))


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    # About 35 scenario minutes a run, with refused requests all along: a lower scale keeps the executor's
    # round trips small against the scenario minutes they stand for (ten seconds a run).
    return _runs(LIMITED, 3, 200, tmp_path_factory.mktemp("limited"))


def test_the_rate_limits_bind_in_the_prediction_and_in_the_runs(limited: Runs) -> None:
    prediction = limited.comparisons[0].prediction
    assert prediction.summaries["waits_min.rate_limit"].p10 > 5
    assert prediction.summaries["makespan_min"].p50 > 1.3 * limited.plan.makespan_min
    assert all(c.waits_min["rate_limit"].actual > 5 for c in limited.comparisons)


@pytest.mark.parametrize(("name", "low", "high"), [("free", 0.99, 1.2), ("limited", 0.9, 1.4)])
def test_runs_bill_what_the_simulator_draws_and_take_about_as_long(
    name: str, low: float, high: float, request: pytest.FixtureRequest
) -> None:
    runs: Runs = request.getfixturevalue(name)
    for seed, (comparison, simulated) in enumerate(zip(runs.comparisons, runs.same_draws, strict=True), 1):
        replication = run_replication(runs.plan, 0, seed=seed).metrics
        assert comparison.tokens_total.actual == replication.tokens_total
        assert comparison.cost_usd.actual == pytest.approx(replication.cost_usd)
        # Without rate limits the executor only adds time; with them, the order of service differs too.
        assert low * simulated <= comparison.makespan_min.actual <= high * simulated


def test_coverage_and_speedup_over_the_runs(free: Runs, limited: Runs) -> None:
    everything = free.comparisons + limited.comparisons
    scores = fidelity(everything)
    assert scores.runs == 8
    # A calibrated P10-P90 covers 80% of runs. Four of these eight draws fall well inside the band (the
    # nearest 16% below its P90 on the simulator's own clock); three of the eight is left as the bound.
    assert scores.coverage >= 3 / 8
    for runs in (free, limited):
        per_scenario = fidelity(runs.comparisons)
        assert abs(per_scenario.speedup_error) <= 0.15
        assert abs(per_scenario.makespan_error) <= 0.2
        assert 0 < per_scenario.crps_relative < 0.2
