"""The simulator's engine against numbers known without it: the planner, chains, maxima of exponentials.

Statistical checks use fixed seeds and intervals from the simulation's own spread, so they are
deterministic and their tolerance is the confidence interval, not a guess.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from support import SCENARIOS

from cycleplan.core.loading import load_scenario
from cycleplan.core.model import Z90, Scenario
from cycleplan.planner import plan
from cycleplan.sim import run_replication, simulate
from cycleplan.sim.stats import confidence_interval

GUIDE_SCENARIOS = sorted(path.name for path in SCENARIOS.glob("*.yaml"))
ONE_100_ROLES = ("director", "backend", "frontend", "integration", "quality", "designer", "ops", "documenter")


def scenario(**fields: Any) -> Scenario:
    return Scenario.model_validate(fields)


def chain(cycle: dict[str, Any], cycles: int = 5) -> Scenario:
    return scenario(
        name="chain",
        roles={"worker": {"cycle": cycle}},
        tasks=[
            {"id": "a", "role": "worker", "cycles": cycles},
            {"id": "b", "role": "worker", "cycles": cycles, "after": ["a"]},
            {"id": "c", "role": "worker", "cycles": cycles, "after": ["b"]},
        ],
    )


# --------------------------------------------------------------------------------------------------
# Ideal mode and zero variance reproduce the planner


@pytest.mark.parametrize("name", GUIDE_SCENARIOS)
def test_ideal_mode_equals_the_plan_for_every_example(name: str) -> None:
    planned = plan(load_scenario(SCENARIOS / name))
    prediction = simulate(planned, replications=3, seed=1, ideal=True)
    for value in prediction.replications.values["makespan_min"]:
        assert value == pytest.approx(planned.makespan_min, rel=1e-12)
    for value in prediction.replications.values["sequential_min"]:
        assert value == pytest.approx(planned.sequential_min, rel=1e-12)
    assert prediction.summary("speedup").p50 == pytest.approx(planned.speedup, rel=1e-12)


@pytest.mark.parametrize("lanes", [{}, {"backend": 2}, {"backend": 3, "ops": 2}])
def test_zero_variance_equals_the_plan(lanes: dict[str, int]) -> None:
    roles = {role: {"cycle": {"median_min": 3, "p90_min": 3}} for role in ONE_100_ROLES}
    base = scenario(name="one-100 fixed", template="one-100", roles=roles).with_lanes(lanes)
    planned = plan(base)
    prediction = simulate(planned, replications=5, seed=3)
    assert prediction.summary("makespan_min").min == pytest.approx(planned.makespan_min, rel=1e-12)
    assert prediction.summary("makespan_min").max == pytest.approx(planned.makespan_min, rel=1e-12)
    assert prediction.summary("sequential_min").p50 == pytest.approx(planned.sequential_min, rel=1e-12)
    on_path = set(planned.critical_path)
    assert all(prediction.criticality[task] == 1.0 for task in on_path)


# --------------------------------------------------------------------------------------------------
# Analytic checks


def test_chain_mean_makespan_is_the_sum_of_the_means() -> None:
    median, p90 = 3.0, 6.0
    planned = plan(chain({"median_min": median, "p90_min": p90}))
    prediction = simulate(planned, replications=1500, seed=11)
    sigma = math.log(p90 / median) / Z90
    expected = 15 * median * math.exp(sigma**2 / 2)
    low, high = confidence_interval(prediction.replications.values["makespan_min"], 0.99)
    assert low <= expected <= high, (low, expected, high)


def test_parallel_exponentials_have_harmonic_mean_makespan() -> None:
    lanes, mean_min = 4, 2.0
    planned = plan(
        scenario(
            name="exponentials",
            roles={"worker": {"lanes": lanes, "cycle": {"kind": "exponential", "mean_min": mean_min}}},
            tasks=[{"id": f"t{i}", "role": "worker", "cycles": 1} for i in range(lanes)],
        )
    )
    prediction = simulate(planned, replications=3000, seed=5)
    harmonic = sum(1 / k for k in range(1, lanes + 1))
    expected = harmonic * mean_min
    low, high = confidence_interval(prediction.replications.values["makespan_min"], 0.99)
    assert low <= expected <= high, (low, expected, high)
    # The sequential baseline on the same draws is the sum: mean lanes x mean_min.
    low, high = confidence_interval(prediction.replications.values["sequential_min"], 0.99)
    assert low <= lanes * mean_min <= high


def test_busy_time_is_the_sum_of_sampled_durations_including_failed_attempts() -> None:
    planned = plan(
        scenario(
            name="flaky",
            roles={
                "worker": {"lanes": 2, "failure": {"probability_per_cycle": 0.3, "max_retries": 1}},
                "checker": {"failure": {"probability_per_cycle": 0.1, "max_retries": 3}},
            },
            tasks=[
                {"id": "a", "role": "worker", "cycles": 4},
                {"id": "b", "role": "worker", "cycles": 3},
                {"id": "c", "role": "checker", "cycles": 3, "after": ["a", "b"]},
            ],
        )
    )
    failed_attempts = 0
    for replication in range(30):
        run = run_replication(planned, replication, seed=2)
        expected = 0.0
        for task_id, span in run.metrics.tasks.items():
            if not span.lane:  # cancelled before it started
                continue
            draws = run.draws[task_id]
            for cycle in range(len(draws.duration_min[0])):
                ran_out = True
                for attempt in range(draws.attempts):
                    expected += draws.duration_min[attempt][cycle]
                    if not draws.failed[attempt][cycle]:
                        ran_out = False
                        break
                    failed_attempts += 1
                if ran_out:
                    break
        assert run.metrics.work_min == pytest.approx(expected, rel=1e-12)
    assert failed_attempts > 0


# --------------------------------------------------------------------------------------------------
# Dispatch


def test_plan_order_waits_where_dynamic_dispatch_takes_ready_work() -> None:
    # At nominal durations (upstream takes its median, 1 minute) the best plan runs "downstream" before
    # "other" on lane b, so that "tail" starts early. Plan dispatch keeps that order and holds lane b
    # until "downstream" is ready; dynamic dispatch gives the free lane to "other", which is ready.
    planned = plan(
        scenario(
            name="dispatch",
            roles={
                "a": {"cycle": {"kind": "empirical", "samples_min": [1, 1, 9]}},
                "b": {"cycle": {"kind": "fixed", "value_min": 4}},
                "c": {"cycle": {"kind": "fixed", "value_min": 10}},
            },
            tasks=[
                {"id": "upstream", "role": "a", "cycles": 1},
                {"id": "downstream", "role": "b", "cycles": 1, "after": ["upstream"]},
                {"id": "tail", "role": "c", "cycles": 1, "after": ["downstream"]},
                {"id": "other", "role": "b", "cycles": 1},
            ],
        )
    )
    assert planned.makespan_min == 15
    lane_b = next(lane for lane in planned.lanes if lane.role == "b")
    assert [row.task for row in lane_b.tasks] == ["downstream", "other"]
    seen = set()
    for replication in range(12):
        in_plan = run_replication(planned, replication, seed=4, dispatch="plan")
        dynamic = run_replication(planned, replication, seed=4, dispatch="dynamic")
        upstream = in_plan.draws["upstream"].duration_min[0][0]
        seen.add(upstream)
        assert in_plan.metrics.tasks["other"].start_min == upstream + 4
        assert dynamic.metrics.tasks["other"].start_min == 0
        # upstream 1: plan 1+4+10 = 15, dynamic 4+4+10 = 18; upstream 9: both 9+4+10 = 23
        assert in_plan.metrics.makespan_min == upstream + 14
        assert dynamic.metrics.makespan_min == max(upstream, 4) + 14
    assert seen == {1.0, 9.0}


# --------------------------------------------------------------------------------------------------
# Cycle durations, one distribution at a time


def _cycle_durations(cycle: dict[str, Any], multiplier: float = 1.0, replications: int = 40) -> list[float]:
    planned = plan(
        scenario(
            name="one task",
            roles={"worker": {"cycle": cycle}},
            tasks=[{"id": "t", "role": "worker", "cycles": 50, "duration_multiplier": multiplier}],
        )
    )
    values: list[float] = []
    for replication in range(replications):
        run = run_replication(planned, replication, seed=9)
        values += [
            event.metadata["duration_ms"] / 60_000 for event in run.trace if event.action == "cycle_completed"
        ]
    return values


def test_lognormal_cycles_have_the_given_median_and_p90() -> None:
    import numpy as np

    values = np.array(_cycle_durations({"median_min": 3, "p90_min": 5}))
    assert np.median(values) == pytest.approx(3, rel=0.05)
    assert np.percentile(values, 90) == pytest.approx(5, rel=0.06)
    assert (values > 0).all()


def test_gamma_cycles_have_the_given_mean_and_cv() -> None:
    import numpy as np

    values = np.array(_cycle_durations({"kind": "gamma", "mean_min": 4, "cv": 0.5}))
    half_width = 3 * 0.5 * 4 / np.sqrt(len(values))
    assert abs(values.mean() - 4) < half_width
    assert values.std() / values.mean() == pytest.approx(0.5, rel=0.1)


def test_fixed_and_empirical_cycles_and_the_multiplier() -> None:
    assert set(_cycle_durations({"kind": "fixed", "value_min": 2.5}, replications=2)) == {2.5}
    drawn = _cycle_durations({"kind": "empirical", "samples_min": [1, 2, 7]}, replications=5)
    assert set(drawn) == {1.0, 2.0, 7.0}
    doubled = _cycle_durations({"kind": "empirical", "samples_min": [1, 2, 7]}, multiplier=2, replications=5)
    assert doubled == [2 * value for value in drawn]
