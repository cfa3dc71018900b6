"""The array scheduler (planner/arrays.py) against the Timeline (planner/problem.py) it stands in for.

The same activity list must give the same schedule from both: every start, finish and lane. The random
scenarios widen step by step, from lanes alone to resources, ``max_parallel`` and subagents (every
feature the array scheduler takes); sync points and races it does not take, and the planner must never
hand it a problem that has them.
"""

from __future__ import annotations

import math
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scenario_strategies import scenarios
from schedule_checker import check_plan

from cycleplan.core.model import Scenario
from cycleplan.planner import plan
from cycleplan.planner.arrays import Compact, compact, to_placements
from cycleplan.planner.problem import Problem, Timeline, nominal_durations, topological_order

PLANNER_ONLY = {"stochastic": False, "failures": False, "costs": False, "loops": False}
"""What the planner does not read."""

STEPS: dict[str, dict[str, bool]] = {
    "lanes": {"resources": False, "max_parallel": False, "syncs": False, "races": False, "subagents": False},
    "resources": {"max_parallel": False, "syncs": False, "races": False, "subagents": False},
    "max_parallel": {"syncs": False, "races": False, "subagents": False},
    "subagents": {"syncs": False, "races": False},
}
"""The features switched off at each step: each step adds one to the one before."""

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TOLERANCE = 1e-6


def _problem(scenario: Scenario) -> tuple[Problem, Compact]:
    problem = Problem.from_scenario(scenario)
    arrays = compact(problem, nominal_durations(scenario))
    assert arrays is not None
    return problem, arrays


def _random_order(problem: Problem, data: st.DataObject) -> list[int]:
    """An activity list that respects every dependency, in an order drawn at random."""
    rank = data.draw(st.permutations(range(len(problem.activities))), label="priority")
    return [activity.index for activity in topological_order(problem, lambda a: (rank[a.index],))]


def _timeline(problem: Problem, order: list[int]) -> Timeline:
    timeline = Timeline(problem, nominal_durations(problem.scenario))
    for index in order:
        timeline.place(problem.activities[index])
    return timeline


@pytest.mark.parametrize("step", list(STEPS))
@SETTINGS
@given(data=st.data())
def test_an_activity_list_gets_timeline_schedule(step: str, data: st.DataObject) -> None:
    features = {**PLANNER_ONLY, **STEPS[step]}
    scenario = data.draw(scenarios(max_tasks=20, max_roles=4, **features), label="scenario")
    problem, arrays = _problem(scenario)
    order = _random_order(problem, data)
    timeline = _timeline(problem, order)

    starts, makespan, _ = arrays.serial(order)
    placements = to_placements(problem, arrays, order)
    assert math.isclose(makespan, timeline.makespan, abs_tol=TOLERANCE)
    assert placements.keys() == timeline.placed.keys()
    for index, expected in timeline.placed.items():
        name = problem.activities[index].name
        assert math.isclose(starts[index], expected.start, abs_tol=TOLERANCE), name
        placed = placements[index]
        assert math.isclose(placed.start, expected.start, abs_tol=TOLERANCE), name
        assert math.isclose(placed.end, expected.end, abs_tol=TOLERANCE), name
        assert placed.lanes == expected.lanes, name
        assert placed.first_cycle.keys() == expected.first_cycle.keys()


def _mirrored(scenario: Scenario) -> Scenario:
    """The scenario with every ``after`` link turned around: its forward schedules are the original's
    backward ones, in reversed time."""
    data: dict[str, Any] = scenario.model_dump(exclude_defaults=True)
    successors: dict[str, list[str]] = {task["id"]: [] for task in data["tasks"]}
    for task in data["tasks"]:
        for pred in task.get("after", []):
            successors[pred].append(task["id"])
    for task in data["tasks"]:
        task.pop("after", None)
        if successors[task["id"]]:
            task["after"] = successors[task["id"]]
    return Scenario.model_validate(data)


@SETTINGS
@given(data=st.data())
def test_a_backward_pass_is_the_timeline_of_the_mirrored_problem(data: st.DataObject) -> None:
    scenario = data.draw(scenarios(max_tasks=20, max_roles=4, **PLANNER_ONLY, **STEPS["subagents"]))
    problem, arrays = _problem(scenario)
    mirrored = Problem.from_scenario(_mirrored(scenario))
    assert [a.name for a in mirrored.activities] == [a.name for a in problem.activities]
    order = _random_order(mirrored, data)  # successors first in the original problem
    timeline = _timeline(mirrored, order)

    reversed_starts, span, _ = arrays.serial(order, backward=True)
    assert math.isclose(span, timeline.makespan, abs_tol=TOLERANCE)
    for index, expected in timeline.placed.items():
        assert math.isclose(reversed_starts[index], expected.start, abs_tol=TOLERANCE)


def test_a_task_keeps_the_lane_it_takes_instead_of_moving_between_lanes_gaps() -> None:
    # Two backend lanes. ``schema`` runs 0-2 on lane 1, ``api`` 1-3 on lane 2, ``migrate`` 3-5 on lane 1.
    # ``tests`` may start at 2 and takes 2 minutes: from 2 to 4 only one backend task runs at a time, but
    # on lane 2 until 3 and on lane 1 from 3, so no one lane is free from 2 to 4. A lane is one agent and
    # a task does not change agents halfway: ``tests`` starts at 3, on lane 2.
    fixed = {"kind": "fixed", "value_min": 1}
    scenario = Scenario.model_validate(
        {
            "name": "gap",
            "roles": {"backend": {"lanes": 2, "cycle": fixed}, "ops": {"lanes": 2, "cycle": fixed}},
            "tasks": [
                {"id": "setup", "role": "ops", "cycles": 1},
                {"id": "schema", "role": "backend", "cycles": 2},
                {"id": "api", "role": "backend", "cycles": 2, "after": ["setup"]},
                {"id": "prepare", "role": "ops", "cycles": 3},
                {"id": "migrate", "role": "backend", "cycles": 2, "after": ["prepare"]},
                {"id": "tests", "role": "backend", "cycles": 2, "after": ["schema"]},
            ],
        }
    )
    problem, arrays = _problem(scenario)
    order = [a.index for a in problem.activities]
    placements = to_placements(problem, arrays, order)
    placed = {problem.activities[i].name: (p.start, p.lanes) for i, p in placements.items()}
    assert placed == {
        "setup": (0.0, (("ops", 1),)),
        "schema": (0.0, (("backend", 1),)),
        "api": (1.0, (("backend", 2),)),
        "prepare": (0.0, (("ops", 2),)),
        "migrate": (3.0, (("backend", 1),)),
        "tests": (3.0, (("backend", 2),)),
    }
    assert arrays.serial(order)[:2] == ([0.0, 0.0, 1.0, 0.0, 3.0, 3.0], 5.0)
    timeline = _timeline(problem, order)
    assert {problem.activities[i].name: (p.start, p.lanes) for i, p in timeline.placed.items()} == placed


@SETTINGS
@given(  # no subagents: the independent checker does not know them
    scenario=scenarios(max_tasks=12, max_roles=3, **PLANNER_ONLY, syncs=True, races=True, subagents=False)
)
def test_problems_with_sync_points_or_races_never_reach_the_array_scheduler(scenario: Scenario) -> None:
    problem = Problem.from_scenario(scenario)
    unsupported = any(a.is_race or any(t.waits for t in a.members) for a in problem.activities)
    arrays = compact(problem, nominal_durations(scenario))
    assert (arrays is None) == unsupported
    if not unsupported:
        return
    refused = AssertionError("the array scheduler was handed a problem with sync points or races")
    with mock.patch.object(Compact, "serial", side_effect=refused):
        result = plan(scenario, algorithm="improve", schedules=30)
    check_plan(scenario, result)
