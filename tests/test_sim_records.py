"""The engine's records measured as arrays agree with ``metrics()`` of the trace written from them.

``metrics(trace)`` is the one definition of what a run measures; the simulator measures whole batches
from compact records instead (:func:`cycleplan.sim.records.measure`). Over random scenarios (every
feature: failures and cancellations, races, sync points, shared resources, rate limits, both dispatch
modes), every replication's array values must equal what ``metrics()`` reads from that replication's
trace.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import SCENARIOS
from test_sim_properties import check_trace, scenarios

from cycleplan.core.loading import load_scenario
from cycleplan.core.metrics import TraceMetrics, metrics
from cycleplan.core.model import Scenario
from cycleplan.planner import plan
from cycleplan.sim.layout import build_layout
from cycleplan.sim.records import Measures, measure, trace
from cycleplan.sim.simulation import Simulator


def assert_agree(measured: Measures, column: int, names: list[str], expected: TraceMetrics) -> None:
    def close(got: float, want: float, what: str) -> None:
        assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9), (what, got, want)

    for name, values in measured.values.items():
        want = float(expected.completed) if name == "completed" else float(getattr(expected, name))
        close(float(values[column]), want, name)
    for cause, values in measured.waits_min.items():
        close(float(values[column]), expected.waits_min[cause], f"waits_min.{cause}")
    for lane, values in measured.utilization_by_lane.items():
        close(float(values[column]), expected.utilization_by_lane.get(lane, 0.0), f"lane {lane}")
    for role, values in measured.utilization_by_role.items():
        close(float(values[column]), expected.utilization_by_role[role], f"role {role}")
    for role, values in measured.tokens_by_role.items():
        close(float(values[column]), float(expected.tokens_by_role.get(role, 0)), f"tokens {role}")
    for role, values in measured.cost_by_role.items():
        close(float(values[column]), expected.cost_by_role.get(role, 0.0), f"cost {role}")
    critical = {name for position, name in enumerate(names) if measured.critical[position, column]}
    assert critical == set(expected.critical)
    for position, name in enumerate(names):
        span = expected.tasks.get(name)
        finish = measured.finish[position, column]
        if not math.isnan(finish):
            assert span is not None
            close(float(finish), span.finish_min, f"finish {name}")


def check_scenario(scenario: Scenario, dispatch: str, replications: int = 6, seed: int = 5) -> None:
    simulator = Simulator(build_layout(plan(scenario)), seed, dispatch, ideal=False)
    programs = simulator.programs(0, replications)
    records, _, _ = simulator.run_batch(programs, "simpy")
    measured = measure(simulator.parallel, programs, records, 1.0)
    for column in range(replications):
        events = trace(simulator.parallel, programs, records, column, dict(simulator.header), "run")
        check_trace(scenario, events)
        expected = metrics(events)
        assert_agree(measured, column, simulator.parallel.names, expected)
        cycles = [event for event in events if event.action == "cycle_completed"]
        assert measured.attempts[column] == len(cycles)
        # The cumulative curves end at the totals (the grid's last point gathers whatever ends later).
        assert measured.tokens_curve[column, -1] == pytest.approx(expected.tokens_total)
        assert measured.cost_curve[column, -1] == pytest.approx(expected.cost_usd)
        assert np.all(np.diff(measured.tokens_curve[column]) >= 0)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(), st.sampled_from(["plan", "dynamic"]), st.integers(0, 3))
def test_array_measures_equal_metrics_of_the_trace(scenario: Scenario, dispatch: str, seed: int) -> None:
    check_scenario(scenario, dispatch, seed=seed)


@pytest.mark.parametrize("name", sorted(path.name for path in SCENARIOS.glob("*.yaml")))
def test_every_example_agrees(name: str) -> None:
    check_scenario(load_scenario(SCENARIOS / name), "plan", replications=4)


def test_a_failing_race_and_cancel_parallel_agree() -> None:
    failure: dict[str, Any] = {"probability_per_cycle": 0.5, "max_retries": 1, "cancel_parallel": True}
    scenario = Scenario.model_validate(
        {
            "name": "hard",
            "roles": {"a": {"lanes": 2, "failure": failure, "sync": {"minutes": 0.5}}, "b": {}},
            "tasks": [
                {"id": "x", "role": "a", "cycles": 3, "emits": {"go": 1}},
                {"id": "y", "role": "a", "cycles": 2, "race": "r"},
                {"id": "z", "role": "b", "cycles": 2, "race": "r", "waits": {"go": 2}},
                {"id": "w", "role": "b", "cycles": 1, "after": ["y"]},
            ],
        }
    )
    for dispatch in ("plan", "dynamic"):
        check_scenario(scenario, dispatch, replications=30)
