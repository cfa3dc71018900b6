"""Properties every planning algorithm must keep on random scenarios, checked by the independent checker.

Random scenarios from the shared generator (:mod:`scenario_strategies`): a random DAG of 1-25 tasks over
1-4 roles of 1-3 lanes, sync points, an optional ``max_parallel``, extra resources and race groups of 2-3
unrelated members; no stochastic model, which the planner does not read.
"""

from __future__ import annotations

import functools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scenario_strategies import scenarios as random_scenarios
from schedule_checker import check_plan

from cycleplan.core.model import Plan, Scenario
from cycleplan.planner import ALGORITHMS, RULES, plan

try:  # the exact algorithm is an optional extra
    import ortools  # noqa: F401

    HAVE_ORTOOLS = True
except ImportError:  # pragma: no cover - depends on the environment
    HAVE_ORTOOLS = False

scenarios = functools.partial(
    random_scenarios,
    max_tasks=25,
    max_roles=4,
    stochastic=False,
    failures=False,
    costs=False,
    loops=False,
    subagents=False,
)
"""The planner sees lanes, dependencies, sync points, resources, max_parallel and races, not the model."""


def _algorithms() -> list[str]:
    return [name for name in ALGORITHMS if name != "cpsat" or HAVE_ORTOOLS]


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(scenario=scenarios(), rule=st.sampled_from(sorted(RULES)))
def test_list_and_sequential_plans_keep_every_rule(scenario: Scenario, rule: str) -> None:
    for algorithm, used_rule in (("list", rule), ("sequential", None)):
        result = plan(scenario, algorithm=algorithm, rule=used_rule)
        check_plan(scenario, result)
        assert Plan.model_validate_json(result.model_dump_json()) == result
        assert plan(scenario, algorithm=algorithm, rule=used_rule) == result


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios(), seed=st.integers(0, 3))
def test_improve_keeps_every_rule_and_never_loses_to_list(scenario: Scenario, seed: int) -> None:
    result = plan(scenario, algorithm="improve", seed=seed, schedules=60)
    check_plan(scenario, result)
    assert result.makespan_min <= plan(scenario, algorithm="list").makespan_min + 1e-9
    assert Plan.model_validate_json(result.model_dump_json()) == result
    assert plan(scenario, algorithm="improve", seed=seed, schedules=60) == result


@pytest.mark.skipif(not HAVE_ORTOOLS, reason="the exact algorithm needs: pip install cycleplan[optimal]")
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios())
def test_cpsat_keeps_every_rule_and_is_never_worse(scenario: Scenario) -> None:
    result = plan(scenario, algorithm="cpsat", time_limit_s=2.0)
    check_plan(scenario, result)
    assert Plan.model_validate_json(result.model_dump_json()) == result
    reference = plan(scenario, algorithm="list").makespan_min
    assert result.makespan_min <= reference + 1e-6
    if result.proven_optimal:
        assert result.makespan_min <= plan(scenario, algorithm="improve", schedules=60).makespan_min + 1e-6
