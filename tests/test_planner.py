"""The planner on scenarios whose right answer is known: the one-100 template, races, caps, every rule and
every algorithm, each plan also passed through the independent checker."""

from __future__ import annotations

import builtins
import itertools
from typing import Any

import pytest
from schedule_checker import check_plan

from cycleplan.core.model import Plan, Scenario
from cycleplan.planner import ALGORITHMS, DEFAULT_ALGORITHM, DESCRIPTIONS, RULES, plan
from cycleplan.planner.problem import Problem

try:
    import ortools  # noqa: F401

    HAVE_ORTOOLS = True
except ImportError:  # pragma: no cover - depends on the environment
    HAVE_ORTOOLS = False

needs_ortools = pytest.mark.skipif(not HAVE_ORTOOLS, reason="cpsat needs: pip install cycleplan[optimal]")

ONE_100_PATH = ["foundation", "backend", "auth", "knowledge", "quality", "performance", "deploy", "complete"]


def one_100(**lanes: int) -> Scenario:
    return Scenario.model_validate(
        {"template": "one-100", "roles": {role: {"lanes": count} for role, count in lanes.items()}}
    )


def race_scenario() -> Scenario:
    """Two approaches race; review waits for the race; a third task runs beside it."""
    return Scenario.model_validate(
        {
            "roles": {
                "backend": {"lanes": 2, "cycle": {"kind": "fixed", "value_min": 2.0}},
                "quality": {"lanes": 2, "cycle": {"kind": "fixed", "value_min": 3.0}},
            },
            "tasks": [
                {"id": "setup", "role": "backend", "cycles": 1},
                {"id": "quick", "role": "backend", "cycles": 2, "after": ["setup"], "race": "approach"},
                {"id": "thorough", "role": "backend", "cycles": 5, "after": ["setup"], "race": "approach"},
                {"id": "review", "role": "quality", "cycles": 1, "after": ["quick", "thorough"]},
                {"id": "tests", "role": "quality", "cycles": 2, "after": ["setup"]},
            ],
        }
    )


def capped_scenario() -> Scenario:
    """Four independent tasks of four roles, at most two at once."""
    return Scenario.model_validate(
        {
            "max_parallel": 2,
            "roles": {name: {"cycle": {"kind": "fixed", "value_min": 1.0}} for name in "abcd"},
            "tasks": [{"id": f"t{name}", "role": name, "cycles": 3} for name in "abcd"],
        }
    )


def resource_scenario() -> Scenario:
    """One staging server shared by three tasks of different roles, plus waits and emits."""
    return Scenario.model_validate(
        {
            "roles": {
                "backend": {"lanes": 2, "cycle": {"kind": "fixed", "value_min": 1.5}},
                "frontend": {"cycle": {"kind": "fixed", "value_min": 2.5}},
                "ops": {"cycle": {"kind": "fixed", "value_min": 1.0}},
            },
            "resources": {"staging": {"capacity": 1}},
            "tasks": [
                {
                    "id": "api",
                    "role": "backend",
                    "cycles": 4,
                    "emits": {"types": 1},
                    "requires": {"staging": 1},
                },
                {"id": "ui", "role": "frontend", "cycles": 3, "waits": {"types": 2}},
                {"id": "db", "role": "backend", "cycles": 2, "requires": {"staging": 1}},
                {
                    "id": "ship",
                    "role": "ops",
                    "cycles": 2,
                    "after": ["api", "ui"],
                    "requires": {"staging": 1},
                },
            ],
        }
    )


SCENARIOS = {
    "one-100": one_100,
    "one-100-backend-2": lambda: one_100(backend=2),
    "race": race_scenario,
    "max-parallel": capped_scenario,
    "resources-and-waits": resource_scenario,
}


def planned(result: Plan, task_id: str) -> Any:
    return next(task for _, task in result.planned_tasks() if task.task == task_id)


# --------------------------------------------------------------------------------------------------
# one-100


@pytest.mark.parametrize("algorithm", ["list", "improve"])
def test_one_100_with_one_lane_per_role_takes_65_wall_cycles(algorithm: str) -> None:
    scenario = one_100()
    result = plan(scenario, algorithm=algorithm)
    check_plan(scenario, result)
    assert result.wall_cycles == 65
    assert result.template_cycles == 100
    assert result.cycle_map == "100 template cycles -> 65 wall cycles"
    # The frontend starts right after the backend's 2nd cycle, when schema_ready is emitted.
    assert planned(result, "frontend").start_cycle == 12
    assert planned(result, "frontend").lane_start_cycle == 10
    assert result.critical_path == ONE_100_PATH


def test_one_100_with_two_backend_lanes_takes_57_and_puts_integration_on_the_critical_path() -> None:
    scenario = one_100(backend=2)
    result = plan(scenario)
    check_plan(scenario, result)
    assert result.wall_cycles == 57
    assert "integration" in result.critical_path
    assert result.proven_optimal is True  # 57 is the critical path itself


def test_the_sequential_algorithm_takes_every_cycle_one_after_the_other() -> None:
    scenario = one_100()
    result = plan(scenario, algorithm="sequential")
    check_plan(scenario, result)
    assert result.wall_cycles == 100
    assert result.makespan_min == result.sequential_min == 300
    assert result.speedup == 1
    assert [lane.lane for lane in result.lanes] == ["sequential"]


@pytest.mark.parametrize("rule", sorted(RULES))
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_priority_rule_gives_a_valid_plan(rule: str, name: str) -> None:
    scenario = SCENARIOS[name]()
    result = plan(scenario, algorithm="list", rule=rule)
    check_plan(scenario, result)
    assert result.rule == rule


# --------------------------------------------------------------------------------------------------
# races, caps, resources


def test_a_race_starts_its_members_together_and_ends_when_the_first_finishes() -> None:
    scenario = race_scenario()
    result = plan(scenario, algorithm="list")
    check_plan(scenario, result)
    quick, thorough, review = (planned(result, name) for name in ("quick", "thorough", "review"))
    assert quick.start_min == thorough.start_min == 2.0
    assert quick.finish_min == thorough.finish_min == 6.0  # quick wins after 2 cycles of 2 minutes
    assert review.lane_start_min == 6.0
    sequential = plan(scenario, algorithm="sequential")
    check_plan(scenario, sequential)
    # One lane runs only the fastest member; the other is listed as never started.
    assert planned(sequential, "thorough").finish_min == planned(sequential, "thorough").start_min
    assert sequential.sequential_min == 2 + 4 + 3 + 6


def test_max_parallel_binds_when_lanes_would_allow_more() -> None:
    scenario = capped_scenario()
    result = plan(scenario)
    check_plan(scenario, result)
    assert result.makespan_min == 6.0
    assert result.lower_bounds["max_parallel"] == 6.0
    assert result.proven_optimal is True
    unlimited = plan(scenario.model_copy(update={"max_parallel": None}))
    assert unlimited.makespan_min == 3.0


def test_a_shared_resource_is_used_by_one_task_at_a_time() -> None:
    scenario = resource_scenario()
    for algorithm in ALGORITHMS:
        if algorithm == "cpsat" and not HAVE_ORTOOLS:
            continue
        result = plan(scenario, algorithm=algorithm)
        check_plan(scenario, result)
        users = sorted(
            (task.lane_start_min, task.finish_min)
            for _, task in result.planned_tasks()
            if task.task in ("api", "db", "ship")
        )
        assert all(first[1] <= second[0] + 1e-9 for first, second in itertools.pairwise(users))


# --------------------------------------------------------------------------------------------------
# every algorithm, the entry point, determinism


def available_algorithms() -> list[str]:
    return [name for name in ALGORITHMS if name != "cpsat" or HAVE_ORTOOLS]


@pytest.mark.parametrize("algorithm", available_algorithms())
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_algorithm_gives_a_valid_plan(algorithm: str, name: str) -> None:
    scenario = SCENARIOS[name]()
    result = plan(scenario, algorithm=algorithm)
    check_plan(scenario, result)
    assert result.algorithm == algorithm
    assert Plan.model_validate_json(result.model_dump_json()) == result
    if algorithm != "sequential":
        assert result.makespan_min <= plan(scenario, algorithm="list").makespan_min + 1e-9


def test_every_algorithm_is_described() -> None:
    assert set(DESCRIPTIONS) == set(ALGORITHMS)
    assert DEFAULT_ALGORITHM == "improve"


def test_improve_is_the_default_and_is_deterministic_for_a_seed() -> None:
    scenario = resource_scenario()
    assert plan(scenario).algorithm == "improve"
    assert plan(scenario, seed=3) == plan(scenario, seed=3)


def test_plan_refuses_unknown_algorithms_rules_and_options() -> None:
    scenario = one_100()
    with pytest.raises(ValueError, match="unknown algorithm 'fastest'"):
        plan(scenario, algorithm="fastest")
    with pytest.raises(ValueError, match="unknown priority rule"):
        plan(scenario, rule="random")
    with pytest.raises(ValueError, match="does not take schedules"):
        plan(scenario, algorithm="list", schedules=10)
    # An option left at None is the algorithm's default, not an error.
    assert plan(scenario, algorithm="list", schedules=None).algorithm == "list"


def test_a_race_member_depending_on_its_group_through_another_task_is_refused() -> None:
    # The scenario's own checks refuse it; the planner refuses it too, so no plan silently drops tasks.
    from cycleplan.planner.problem import RaceLoopError, _refuse_race_loops

    scenario = race_scenario()
    problem = Problem.from_scenario(scenario)
    race = next(activity for activity in problem.activities if activity.is_race)
    setup = problem.activity_of["setup"]
    looped = [
        activity
        if activity.index != setup
        else type(activity)(activity.index, activity.name, activity.members, (race.index,), (race.index,))
        for activity in problem.activities
    ]
    with pytest.raises(RaceLoopError, match="race group 'approach'"):
        _refuse_race_loops(looped)


# --------------------------------------------------------------------------------------------------
# regressions found by the property tests


def test_a_waiter_that_takes_its_lane_before_its_emitter_is_timed_again_without_error() -> None:
    # The wall-cycle view used to re-place activities in start order, which put a task before the
    # emitter it waits for (a KeyError here); a chain of waits and a shared lane then had no valid
    # placement order at all. It is now a replay in time.
    scenario = Scenario.model_validate(
        {
            "roles": {name: {"cycle": {"kind": "fixed", "value_min": 1.0}} for name in ("b", "f", "q")},
            "tasks": [
                {"id": "t0", "role": "b", "cycles": 1},
                {"id": "t1", "role": "b", "cycles": 1, "emits": {"e1": 1}},
                {
                    "id": "t2",
                    "role": "f",
                    "cycles": 1,
                    "after": ["t0"],
                    "waits": {"e1": 1},
                    "emits": {"e2": 1},
                },
                {"id": "t3", "role": "f", "cycles": 1, "waits": {"e2": 1}, "race": "r"},
                {"id": "t4", "role": "b", "cycles": 1, "after": ["t0"], "emits": {"e0": 1}},
                {"id": "t5", "role": "f", "cycles": 1, "waits": {"e0": 1}},
                {"id": "t6", "role": "q", "cycles": 1, "race": "r"},
            ],
        }
    )
    for rule in RULES:
        check_plan(scenario, plan(scenario, algorithm="list", rule=rule))


def test_the_sequential_baseline_runs_the_same_race_member_in_minutes_and_in_cycles() -> None:
    # The member that is fastest in minutes (3 short cycles) is not the one with fewer cycles.
    scenario = Scenario.model_validate(
        {
            "roles": {"a": {"lanes": 2, "cycle": {"kind": "fixed", "value_min": 1.0}}},
            "tasks": [
                {"id": "short-cycles", "role": "a", "cycles": 3, "duration_multiplier": 0.5, "race": "r"},
                {"id": "few-cycles", "role": "a", "cycles": 2, "race": "r"},
            ],
        }
    )
    result = plan(scenario, algorithm="sequential")
    check_plan(scenario, result)
    assert planned(result, "short-cycles").finish_cycle == 3


# --------------------------------------------------------------------------------------------------
# the exact algorithm


@needs_ortools
def test_cpsat_proves_one_100_optimal() -> None:
    scenario = one_100()
    result = plan(scenario, algorithm="cpsat", time_limit_s=20)
    check_plan(scenario, result)
    assert result.makespan_min == 195
    assert result.proven_optimal is True


@needs_ortools
def test_cpsat_finds_a_race_plan_no_worse_than_the_heuristics() -> None:
    scenario = race_scenario()
    result = plan(scenario, algorithm="cpsat", time_limit_s=10)
    check_plan(scenario, result)
    assert result.proven_optimal is True
    assert result.makespan_min <= plan(scenario).makespan_min


def test_cpsat_without_ortools_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from cycleplan.planner.cpsat import MissingExtraError

    real_import = builtins.__import__

    def no_ortools(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("ortools"):
            raise ImportError(f"No module named '{name}'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ortools)
    with pytest.raises(MissingExtraError, match=r"pip install cycleplan\[optimal\]") as caught:
        plan(one_100(), algorithm="cpsat")
    assert isinstance(caught.value, ImportError)


# --------------------------------------------------------------------------------------------------
# the checker itself


def _moved(result: Plan, task_id: str, by: float) -> Plan:
    """``result`` with one task's whole row shifted by ``by`` minutes (and cycles alike)."""
    lanes = []
    for lane in result.lanes:
        rows = []
        for row in lane.tasks:
            if row.task == task_id:
                row = row.model_copy(
                    update={
                        "start_min": row.start_min + by,
                        "finish_min": row.finish_min + by,
                        "lane_start_min": (row.lane_start_min or 0.0) + by,
                    }
                )
            rows.append(row)
        lanes.append(lane.model_copy(update={"tasks": rows}))
    return result.model_copy(update={"lanes": lanes})


def test_the_checker_catches_broken_plans() -> None:
    from schedule_checker import violations

    scenario = one_100()
    result = plan(scenario, algorithm="list")
    assert violations(scenario, result) == []
    # auth runs on backend-1 right after backend: start it early and it overlaps, before its dependency.
    early = violations(scenario, _moved(result, "auth", -6.0))
    assert any("lane backend-1 runs backend" in v and "auth" in v for v in early)
    assert any("auth takes its lane" in v and "before backend finishes" in v for v in early)
    # The frontend may not start its first cycle before schema_ready.
    assert any(
        "frontend: first cycle recorded at 33.0, replayed at 36.0" in v
        for v in violations(scenario, _moved(result, "frontend", -3.0))
    )
    # A task planned twice, or not at all.
    doubled = result.model_copy(
        update={"lanes": [*result.lanes, result.lanes[0].model_copy(update={"lane": "extra"})]}
    )
    assert any("planned 2 times" in v for v in violations(scenario, doubled))
    # Two staging users at once.
    shared = resource_scenario()
    good = plan(shared, algorithm="list")
    db = next(row for _, row in good.planned_tasks() if row.task == "db")
    api = next(row for _, row in good.planned_tasks() if row.task == "api")
    clash = violations(shared, _moved(good, "db", (api.lane_start_min or 0.0) - (db.lane_start_min or 0.0)))
    assert any("staging in use" in v for v in clash)
