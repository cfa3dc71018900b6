"""The fast engine (the max-plus recursion) against the SimPy engine: fed the same draws, the same times.

Over random plans with sync points, lane order, shared resources, retries, races, subagents and agent
loops, every replication
the fast engine keeps has the SimPy engine's makespan to 1e-9 (and its other records), and
``simulate(engine="fast")`` predicts what ``simulate(engine="simpy")`` predicts. Models the recursion
cannot express are refused with a reason (``auto`` then picks SimPy).
"""

from __future__ import annotations

import functools
import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scenario_strategies import scenarios as random_scenarios
from support import SCENARIOS
from typer.testing import CliRunner

from cycleplan.cli import app
from cycleplan.core.loading import load_scenario
from cycleplan.core.model import Scenario
from cycleplan.planner import plan
from cycleplan.sim import SimulationError, fast, simulate
from cycleplan.sim.layout import build_layout
from cycleplan.sim.simulation import Simulator

static_scenarios = functools.partial(random_scenarios, max_tasks=8)
"""Random scenarios the fast engine takes: plan dispatch, no rate limits, everything else
(:mod:`scenario_strategies`)."""


def compare_records(scenario: Scenario, seed: int, replications: int = 12) -> tuple[int, int]:
    """Fast against SimPy on one batch; returns (replications kept by the fast engine, handed back)."""
    simulator = Simulator(build_layout(plan(scenario)), seed, "plan", ideal=False)
    if simulator.static_reason() is not None:
        return 0, 0  # the planner's order cannot be kept; SimPy stalls and cancels, fast declines
    programs = simulator.programs(0, replications)
    reference, reference_sequential, _ = simulator.run_batch(programs, "simpy")
    quick, handed = fast.run(simulator.parallel, programs)
    kept = ~handed
    assert np.allclose(quick.makespan[kept], reference.makespan[kept], rtol=0, atol=1e-9)
    for name in ("taken", "end", "sync_wait", "sync_paid", "blocked"):
        got, want = getattr(quick, name)[:, kept], getattr(reference, name)[:, kept]
        assert np.array_equal(np.isnan(got), np.isnan(want)), name
        assert np.allclose(got, want, rtol=0, atol=1e-9, equal_nan=True), name
    for name in ("lane", "status", "reason", "stop_segment"):
        assert np.array_equal(getattr(quick, name)[:, kept], getattr(reference, name)[:, kept]), name
    for got, want in zip(quick.segment_start, reference.segment_start, strict=True):
        assert np.allclose(got[kept], want[kept], rtol=0, atol=1e-9, equal_nan=True)
    assert np.allclose(quick.emitted[:, kept], reference.emitted[:, kept], rtol=0, atol=1e-9, equal_nan=True)
    _, fast_sequential, _ = simulator.run_batch(programs, "fast")
    assert np.allclose(fast_sequential, reference_sequential, rtol=0, atol=1e-9)
    return int(kept.sum()), int(handed.sum())


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(static_scenarios(), st.integers(0, 50))
def test_fast_gives_the_simpy_times_on_random_plans(scenario: Scenario, seed: int) -> None:
    compare_records(scenario, seed)


def test_most_random_replications_stay_with_the_fast_engine() -> None:
    """The identity above is not vacuous: over random plans the fast engine keeps many replications (it
    hands back only those with a task out of retries, or an exact tie in a race)."""
    kept = handed = 0

    @settings(
        max_examples=40,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(static_scenarios(), st.integers(0, 50))
    def count(scenario: Scenario, seed: int) -> None:
        nonlocal kept, handed
        here, back = compare_records(scenario, seed)
        kept += here
        handed += back

    count()
    assert kept >= 150, (kept, handed)  # of 40 plans x 12 replications


def reproducible(prediction: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(prediction.to_json())
    data["config"].pop("runtime_s")
    data["config"].pop("engine")
    data["config"].pop("engine_fallbacks")
    return data


@pytest.mark.parametrize("name", ["full-feature.yaml", "payment.yaml", "three-features.yaml"])
def test_fast_and_simpy_predict_the_same(name: str) -> None:
    planned = plan(load_scenario(SCENARIOS / name))
    slow = simulate(planned, replications=300, seed=4, engine="simpy")
    quick = simulate(planned, replications=300, seed=4, engine="fast")
    assert quick.config.engine == "fast" and slow.config.engine == "simpy"
    for key, values in slow.replications.values.items():
        assert np.allclose(quick.replications.values[key], values, rtol=1e-9, atol=1e-9), key
    assert quick.criticality == slow.criticality
    assert reproducible(quick)["trace"] == reproducible(slow)["trace"]
    assert quick.tasks == slow.tasks
    assert quick.cumulative == slow.cumulative


def test_fast_with_failures_hands_replications_to_simpy() -> None:
    scenario = Scenario.model_validate(
        {
            "name": "flaky",
            "roles": {"w": {"lanes": 2, "failure": {"probability_per_cycle": 0.3, "max_retries": 1}}},
            "tasks": [
                {"id": "a", "role": "w", "cycles": 3},
                {"id": "b", "role": "w", "cycles": 2, "after": ["a"]},
                {"id": "c", "role": "w", "cycles": 2},
            ],
        }
    )
    planned = plan(scenario)
    slow = simulate(planned, replications=200, seed=1, engine="simpy")
    quick = simulate(planned, replications=200, seed=1, engine="fast")
    assert 0 < quick.config.engine_fallbacks < 200
    assert quick.replications.values["failures"] == slow.replications.values["failures"]
    assert np.allclose(
        quick.replications.values["makespan_min"], slow.replications.values["makespan_min"], atol=1e-9
    )
    assert np.allclose(
        quick.replications.values["cost_usd"], slow.replications.values["cost_usd"], rtol=1e-12
    )


def test_models_the_recursion_cannot_express_are_refused_with_a_reason() -> None:
    planned = plan(load_scenario(SCENARIOS / "full-feature.yaml"))
    limited = Scenario.model_validate(
        {**planned.scenario.model_dump(), "rate_limits": {"input_tokens_per_min": 20_000}}
    )
    with pytest.raises(SimulationError, match="rate limits"):
        simulate(planned, limited, replications=5, engine="fast")
    with pytest.raises(SimulationError, match="dynamic dispatch"):
        simulate(planned, replications=5, engine="fast", dispatch="dynamic")
    assert simulate(planned, limited, replications=5, engine="auto").config.engine == "simpy"
    assert simulate(planned, replications=5, engine="auto").config.engine == "fast"
    assert simulate(planned, replications=5, engine="auto", ideal=True).config.engine == "fast"


def test_cli_engine_option() -> None:
    runner = CliRunner()
    path = str(SCENARIOS / "course-crud.yaml")
    quick = runner.invoke(app, ["simulate", path, "-n", "50", "--engine", "fast", "--json"])
    slow = runner.invoke(app, ["simulate", path, "-n", "50", "--engine", "simpy", "--json"])
    assert quick.exit_code == 0 and slow.exit_code == 0, quick.output + slow.output
    assert json.loads(quick.stdout)["speedup"] == pytest.approx(json.loads(slow.stdout)["speedup"], rel=1e-9)
    refused = runner.invoke(app, ["simulate", path, "-n", "5", "--engine", "fast", "--dispatch", "dynamic"])
    assert refused.exit_code == 2
    assert "dynamic dispatch" in refused.output and "--engine simpy" in refused.output
    bad = runner.invoke(app, ["simulate", path, "--engine", "warp"])
    assert bad.exit_code == 2 and "simpy, fast, auto" in bad.output
